// The host stand-in: run a transform under `node --test`, without WebAssembly.
// `run` calls it exactly as the component export does (the same error
// conversion) and collects its log lines.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

import { Deliver, Event, Failed, Skip, Subscription, call, dumps, isJsonMediaType, setLogSink } from './index.js';

/** An event; a payload that is neither a Uint8Array nor a string is written as JSON. */
export function event(eventType, contentType = 'application/json', payload = '{}', tenant = 'acme') {
  if (typeof payload === 'string') payload = new TextEncoder().encode(payload);
  else if (!(payload instanceof Uint8Array)) payload = new TextEncoder().encode(dumps(payload));
  return new Event({
    id: 'evt_01TEST0000000000000000000',
    tenant,
    eventType,
    timestamp: '2026-01-01T00:00:00.000Z',
    contentType,
    payload,
  });
}

/** An event from an ingest body (`{type, content_type?, payload}`, as in hookshape's
 * `samples/`): a file path or the JSON text. */
export function sampleEvent(pathOrText, tenant = 'acme') {
  const text = String(pathOrText).trimStart().startsWith('{') ? String(pathOrText) : readFileSync(pathOrText, 'utf8');
  const body = JSON.parse(text);
  const contentType = body.content_type ?? 'application/json';
  const payload = typeof body.payload === 'string' && !isJsonMediaType(contentType) ? body.payload : dumps(body.payload);
  return event(body.type, contentType, payload, tenant);
}

/** Runs `transform` once with `config` as the `plugin_config`: `{outcome, logs}`. */
export function run(transform, ev, config = {}, url = 'https://receiver.example/hook') {
  const subscription = new Subscription({ id: 'sub_test', url, config: dumps(config) });
  const logs = [];
  const previous = setLogSink((level, message) => logs.push([level, message]));
  try {
    return { outcome: call(transform, ev, subscription), logs };
  } finally {
    setLogSink(previous);
  }
}

/** The JSON body of a delivery; fails the test on a skip or an error. */
export function deliveredJson(report) {
  assert.ok(report.outcome instanceof Deliver, `expected a delivery, got ${JSON.stringify(report.outcome)}`);
  return report.outcome.json();
}

/** The reason of a skip; fails the test otherwise. */
export function skipped(report) {
  assert.ok(report.outcome instanceof Skip, `expected a skip, got ${JSON.stringify(report.outcome)}`);
  return report.outcome.reason;
}

/** The error message of a failure; fails the test otherwise. */
export function failed(report) {
  assert.ok(report.outcome instanceof Failed, `expected an error, got ${JSON.stringify(report.outcome)}`);
  return report.outcome.message;
}
