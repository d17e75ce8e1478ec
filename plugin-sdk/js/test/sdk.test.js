// The SDK's helpers, its host stand-in, and its copy of the WIT.

import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { Deliver, PluginError, Skip, component, deliver, deliverJson, dumps, log, skip } from '../index.js';
import { deliveredJson, event, failed, run, sampleEvent, skipped } from '../testing.js';

const HERE = dirname(fileURLToPath(import.meta.url));

test('the bundled WIT is a copy of plugin-sdk/wit', () => {
  const source = join(HERE, '..', '..', 'wit');
  const bundled = join(HERE, '..', 'wit');
  const names = readdirSync(source).filter((n) => n.endsWith('.wit')).sort();
  assert.deepEqual(readdirSync(bundled).filter((n) => n.endsWith('.wit')).sort(), names);
  for (const name of names) {
    assert.equal(readFileSync(join(bundled, name), 'utf8'), readFileSync(join(source, name), 'utf8'),
      `${name} differs: cp plugin-sdk/wit/*.wit plugin-sdk/js/wit/`);
  }
});

test('event helpers read JSON, text and documents', () => {
  assert.deepEqual(event('t', 'application/json', { a: [1, 2] }).json(), { a: [1, 2] });
  assert.ok(event('t', 'application/cloudevents+json; charset=utf-8').isJson());
  const xml = event('t', 'application/xml', '<a/>');
  assert.ok(!xml.isJson());
  assert.equal(xml.payloadValue(), '<a/>');
  assert.throws(() => event('t', 'text/plain', new Uint8Array([0xff])).text(), PluginError);
  assert.throws(() => event('t', 'application/json', '{').json(), /^PluginError: invalid event payload: /);
});

test('sample files become events', () => {
  const e = sampleEvent('{"type": "project.published", "content_type": "application/xml", "payload": "<p/>"}', 'atscale');
  assert.deepEqual([e.eventType, e.tenant, new TextDecoder().decode(e.payload)], ['project.published', 'atscale', '<p/>']);
});

test('JSON is written as hookshape writes it: compact, keys sorted', () => {
  assert.equal(dumps({ b: 'é\n', a: [1, null, true, { d: 1, c: 2 }] }), '{"a":[1,null,true,{"c":2,"d":1}],"b":"é\\n"}');
  const request = deliverJson({ x: 1 }).header('x-one', '1');
  assert.deepEqual([request.contentType, request.headers, request.json()], ['application/json', [['x-one', '1']], { x: 1 }]);
  assert.deepEqual(deliver('<a/>', 'application/xml').body, new TextEncoder().encode('<a/>'));
});

test('config is an object, and errors say so', () => {
  const echo = (e, s) => skip(JSON.stringify(s.config()));
  assert.equal(skipped(run(echo, event('t'), { k: 1 })), '{"k":1}');
  assert.equal(failed(run(echo, event('t'), [1])), 'invalid plugin config: expected an object, found an array');
});

test('a PluginError fails with its message alone; any other error with its name, message and frames', () => {
  assert.equal(failed(run(() => { throw new PluginError('no channel'); }, event('t'))), 'no channel');
  function ratio(n) {
    return n.missing.field;
  }
  const message = failed(run(() => ratio({}), event('t')));
  assert.match(message.split('\n')[0], /^TypeError: .*undefined/);
  assert.match(message, /ratio/);
  assert.equal(failed(run(() => { throw 'plain'; }, event('t'))), 'uncaught exception: plain');
  assert.match(failed(run(() => ({ text: 'hi' }), event('t'))), /^transform returned Object, not a request/);
});

test('logs are collected by the stand-in', () => {
  const report = run(() => { log.info('one'); log.warn('two'); return skip('quiet'); }, event('t'));
  assert.deepEqual(report.logs, [['info', 'one'], ['warn', 'two']]);
  assert.ok(report.outcome instanceof Skip);
});

test('the component export speaks the WIT: records in, a variant out, an error thrown as a string', () => {
  const lines = [];
  const wit = { id: 'e', tenant: 't', eventType: 'x', timestamp: 'ts', contentType: 'application/json', payload: new TextEncoder().encode('{"n":1}') };
  const sub = { id: 's', url: 'u', config: '{}' };
  const exported = component((e) => { log.info('hi'); return deliverJson(e.json()).header('a', 'b'); }, (l, m) => lines.push([l, m]));
  const out = exported(wit, sub);
  assert.equal(out.tag, 'deliver');
  assert.deepEqual([new TextDecoder().decode(out.val.body), out.val.contentType, out.val.headers], ['{"n":1}', 'application/json', [['a', 'b']]]);
  assert.deepEqual(lines, [['info', 'hi']]);
  assert.deepEqual(component(() => skip('no'), () => {})(wit, sub), { tag: 'skip', val: 'no' });
  assert.throws(() => component(() => { throw new Error('boom'); }, () => {})(wit, sub), (e) => typeof e === 'string' && e.startsWith('Error: boom'));
  assert.ok(new Deliver(new Uint8Array(), null, []).contentType === null);
});
