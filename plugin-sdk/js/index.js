// hookshape-plugin: write hookshape webhook transforms in JavaScript.
//
// A plugin module exports `transform(event, subscription)`; `hookshape-plugin-build`
// bundles it with this file and makes it the component's export through
// `component()`. The same classes serve under `node --test` (see testing.js).

/** An expected failure: the attempt fails with exactly this message. */
export class PluginError extends Error {
  constructor(message) {
    super(message);
    this.name = 'PluginError';
  }
}

const decoder = () => new TextDecoder('utf-8', { fatal: true });

/** True for `application/json` and any `+json` media type. */
export function isJsonMediaType(contentType) {
  const essence = contentType.split(';')[0].trim().toLowerCase();
  return essence === 'application/json' || essence.endsWith('+json');
}

function decodeJson(text, what) {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new PluginError(`invalid ${what}: ${e.message}`);
  }
}

/** The event as ingested (the WIT `event` record). */
export class Event {
  constructor({ id, tenant, eventType, timestamp, contentType, payload }) {
    Object.assign(this, { id, tenant, eventType, timestamp, contentType });
    /** @type {Uint8Array} */
    this.payload = payload;
  }

  isJson() {
    return isJsonMediaType(this.contentType);
  }

  text() {
    try {
      return decoder().decode(this.payload);
    } catch (e) {
      throw new PluginError(`the event payload is not UTF-8 text: ${e.message}`);
    }
  }

  json() {
    return decodeJson(this.text(), 'event payload');
  }

  payloadValue() {
    return this.isJson() ? this.json() : this.text();
  }
}

/** The subscription the transform runs for (the WIT `subscription` record). */
export class Subscription {
  constructor({ id, url, config }) {
    Object.assign(this, { id, url });
    this.configJson = config;
  }

  /** The `plugin_config`, parsed: an object (`{}` when unset). */
  config() {
    const config = decodeJson(this.configJson, 'plugin config');
    if (config === null || typeof config !== 'object' || Array.isArray(config)) {
      throw new PluginError(`invalid plugin config: expected an object, found ${jsonType(config)}`);
    }
    return config;
  }
}

/** The JSON name of a parsed value's type, for messages. */
export function jsonType(value) {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return { boolean: 'a boolean', number: 'a number', string: 'a string' }[typeof value] ?? 'an object';
}

function sortKeys(_key, value) {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return value;
  return Object.fromEntries(Object.keys(value).sort().map((k) => [k, value[k]]));
}

/** JSON text as hookshape's Rust plugins write it (serde_json): compact, object keys
 * sorted. (JavaScript has one number type: `1.0` is written `1`.) */
export function dumps(value) {
  return JSON.stringify(value, sortKeys);
}

/** Send this request. A string body is sent as UTF-8. */
export function deliver(body, contentType = null, headers = []) {
  return new Deliver(typeof body === 'string' ? new TextEncoder().encode(body) : body, contentType, headers);
}

/** Send `value` as JSON (see `dumps`). */
export function deliverJson(value, headers = []) {
  return deliver(dumps(value), 'application/json', headers);
}

/** Send nothing; the delivery ends as `skipped` with this reason. */
export function skip(reason) {
  return new Skip(String(reason));
}

/** A request to send. */
export class Deliver {
  constructor(body, contentType, headers) {
    Object.assign(this, { body, contentType, headers: [...headers] });
  }

  /** Adds a header; returns the request, for chaining. */
  header(name, value) {
    this.headers.push([name, value]);
    return this;
  }

  /** The body parsed as JSON (for tests). */
  json() {
    return JSON.parse(new TextDecoder().decode(this.body));
  }
}

/** A skip, with its reason. */
export class Skip {
  constructor(reason) {
    this.reason = reason;
  }
}

/** A failed call, with the error message hookshape records. */
export class Failed {
  constructor(message) {
    this.message = message;
  }
}

const STACK_FRAMES = 3;

/** `Name: message`, then the innermost stack frames. */
export function describe(error) {
  if (!(error instanceof Error)) return `uncaught exception: ${String(error)}`;
  const head = `${error.name}: ${error.message}`;
  const frames = String(error.stack ?? '')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && l !== head && !l.startsWith(`${error.name}:`))
    .slice(0, STACK_FRAMES);
  return [head, ...frames.map((f) => `  ${f}`)].join('\n');
}

/** Runs `transform` as hookshape would: what it returned, or a `Failed`. */
export function call(transform, event, subscription) {
  let outcome;
  try {
    outcome = transform(event, subscription);
  } catch (e) {
    return new Failed(e instanceof PluginError ? e.message : describe(e));
  }
  if (!(outcome instanceof Deliver || outcome instanceof Skip)) {
    const what = outcome === null ? 'null' : outcome?.constructor?.name ?? typeof outcome;
    return new Failed(`transform returned ${what}, not a request (deliverJson(...), deliver(...)) or skip(reason)`);
  }
  return outcome;
}

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error'];
let sink = null;

/** Log lines kept on the delivery attempt: `log.info("...")`, `trace` ... `error`. */
export const log = Object.fromEntries(
  LEVELS.map((level) => [level, (message) => sink(level, String(message))]),
);

/** Where log lines go: the host's `log` import in a component, the stand-in's list in tests. */
export function setLogSink(next) {
  const previous = sink;
  sink = next;
  return previous;
}
setLogSink((level, message) => console.error(`[${level}] ${message}`));

/** The component's `transform` export (used by the build's entry module): a thrown
 * error becomes the `err` string, never a trap. */
export function component(transform, hostLog) {
  setLogSink(hostLog);
  return (event, subscription) => {
    const outcome = call(transform, new Event(event), new Subscription(subscription));
    if (outcome instanceof Failed) throw outcome.message;
    if (outcome instanceof Skip) return { tag: 'skip', val: outcome.reason };
    return {
      tag: 'deliver',
      val: { body: outcome.body, contentType: outcome.contentType ?? undefined, headers: outcome.headers },
    };
  };
}
