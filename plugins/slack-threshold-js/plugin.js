// slack-threshold, in JavaScript: posts a Slack incoming-webhook message when a
// number in a JSON event crosses a threshold, and skips the delivery otherwise.
//
// The same `plugin_config` and the same output, byte for byte, as the Rust
// `plugins/slack-threshold` (its doc comment describes the keys); the golden
// test in `tests/e2e/languages.rs` compares them.

import { PluginError, deliverJson, log, skip } from 'hookshape-plugin';

const OPS = {
  '>': (v, t) => v > t,
  '>=': (v, t) => v >= t,
  '<': (v, t) => v < t,
  '<=': (v, t) => v <= t,
  '==': (v, t) => v === t,
  '!=': (v, t) => v !== t,
};

const FIELDS = ['pointer', 'op', 'threshold', 'on_missing', 'message', 'link_pointer', 'channel', 'username'];

/** A missing or non-numeric value, with what was found instead. */
class Missing extends Error {}

export function transform(event, subscription) {
  const config = readConfig(subscription.config());
  const payload = event.payloadValue();
  // A document (XML, CSV, ...) has no numbers to point at.
  const document = event.isJson() ? payload : undefined;
  const { pointer, op, threshold } = config;
  let value;
  try {
    value = readNumber(document, pointer);
  } catch (e) {
    if (!(e instanceof Missing)) throw e;
    const reason = `no number at ${pointer}: ${e.message}`;
    if (config.on_missing === 'skip') return skip(reason);
    throw new PluginError(reason);
  }
  const name = valueName(pointer);
  if (!OPS[op](value, threshold)) {
    return skip(`${name} ${num(value)} is not ${op} ${num(threshold)}`);
  }
  log.info(`${name} ${num(value)} is ${op} ${num(threshold)}: notifying Slack`);
  let link = null;
  if (document !== undefined) {
    const [found, url] = resolvePointer(document, config.link_pointer);
    if (found && typeof url === 'string' && isLinkable(url)) link = url;
    else if (found) log.warn(`${config.link_pointer} holds no http(s) URL, so the message has no link`);
  }
  return deliverJson(message(config, event, name, value, link));
}

/** The config with its defaults, or a `PluginError` naming the field. */
function readConfig(raw) {
  const list = (items) => items.map((f) => `\`${f}\``).join(', ');
  for (const key of Object.keys(raw)) {
    if (!FIELDS.includes(key)) {
      throw new PluginError(`invalid plugin config: unknown field \`${key}\`, expected one of ${list(FIELDS)}`);
    }
  }
  for (const key of ['pointer', 'op', 'threshold']) {
    if (!(key in raw)) throw new PluginError(`invalid plugin config: missing field \`${key}\``);
  }
  const config = {
    on_missing: 'error', message: null, link_pointer: '/report_run_url', channel: null, username: null, ...raw,
  };
  for (const key of ['pointer', 'link_pointer', 'message', 'channel', 'username']) {
    const optional = !['pointer', 'link_pointer'].includes(key);
    if (!(optional && config[key] === null) && typeof config[key] !== 'string') {
      throw new PluginError(`invalid plugin config at \`${key}\`: expected a string`);
    }
  }
  if (!Object.hasOwn(OPS, config.op)) {
    throw new PluginError(`invalid plugin config at \`op\`: unknown variant \`${config.op}\`, expected one of ${list(Object.keys(OPS))}`);
  }
  if (typeof config.threshold !== 'number') {
    throw new PluginError('invalid plugin config at `threshold`: expected a number');
  }
  if (!['error', 'skip'].includes(config.on_missing)) {
    throw new PluginError(`invalid plugin config at \`on_missing\`: unknown variant \`${config.on_missing}\`, expected \`error\` or \`skip\``);
  }
  for (const key of ['pointer', 'link_pointer']) {
    if (!config[key].startsWith('/')) {
      throw new PluginError(
        `invalid plugin config at \`${key}\`: ${quote(config[key])} is not a JSON pointer ` +
          '(it must start with \'/\', e.g. "/rows/0/revenue")',
      );
    }
  }
  return config;
}

/** RFC 6901, as serde_json's `Value::pointer`: `[found, value]`. */
export function resolvePointer(document, pointer) {
  if (pointer === '') return [true, document];
  if (!pointer.startsWith('/')) return [false, undefined];
  let target = document;
  for (let token of pointer.split('/').slice(1)) {
    token = token.replaceAll('~1', '/').replaceAll('~0', '~');
    if (target !== null && typeof target === 'object' && !Array.isArray(target) && Object.hasOwn(target, token)) {
      target = target[token];
    } else if (Array.isArray(target) && /^(0|[1-9][0-9]*)$/.test(token) && Number(token) < target.length) {
      target = target[Number(token)];
    } else {
      return [false, undefined];
    }
  }
  return [true, target];
}

/** The number at `pointer`; a `Missing` with what was found instead. */
function readNumber(document, pointer) {
  if (document === undefined) throw new Missing('the payload is not JSON');
  const [found, value] = resolvePointer(document, pointer);
  if (!found) throw new Missing('nothing there');
  switch (typeof value) {
    case 'number':
      return value;
    case 'boolean':
      throw new Missing(`found boolean ${value}`);
    case 'string':
      throw new Missing(`found string ${quote(value)}`);
  }
  if (value === null) throw new Missing('found null');
  throw new Missing(Array.isArray(value) ? 'found an array' : 'found an object');
}

/** A string quoted as Rust's `{:?}` does for the usual cases. */
function quote(text) {
  const escaped = text.replace(/[\\"\n\t\r]/g, (c) => ({ '\\': '\\\\', '"': '\\"', '\n': '\\n', '\t': '\\t', '\r': '\\r' })[c]);
  return `"${escaped}"`;
}

/** The pointer's last segment, unescaped; the whole pointer for an array index. */
function valueName(pointer) {
  const last = pointer.slice(pointer.lastIndexOf('/') + 1);
  if (last === '' || /^[0-9]+$/.test(last)) return pointer;
  return last.replaceAll('~1', '/').replaceAll('~0', '~');
}

/** A number as Rust's `f64` Display writes it: shortest digits, never an exponent. */
export function num(value) {
  const text = Object.is(value, -0) ? '-0' : String(value);
  const match = /^(-?)(\d)(?:\.(\d+))?e([+-]\d+)$/.exec(text);
  if (!match) return text;
  const [, sign, first, rest = '', exp] = match;
  const digits = first + rest;
  const point = 1 + Number(exp);
  if (point <= 0) return `${sign}0.${'0'.repeat(-point)}${digits}`;
  if (point >= digits.length) return sign + digits + '0'.repeat(point - digits.length);
  return `${sign}${digits.slice(0, point)}.${digits.slice(point)}`;
}

/** A web URL that cannot break out of Slack's `<url|label>` syntax. */
function isLinkable(url) {
  // Rust's `char::is_whitespace() || char::is_control()`, and '|', spelled out:
  // the component's regular expressions have no Unicode property classes.
  return (url.startsWith('https://') || url.startsWith('http://')) &&
    !/[\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000|]/.test(url);
}

/** The three characters Slack's mrkdwn treats as markup. */
function escape(text) {
  return text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');
}

function headline(config, event, name, value) {
  if (config.message === null) return event.eventType;
  return config.message
    .replaceAll('{name}', name)
    .replaceAll('{value}', num(value))
    .replaceAll('{op}', config.op)
    .replaceAll('{threshold}', num(config.threshold))
    .replaceAll('{event_type}', event.eventType)
    .replaceAll('{tenant}', event.tenant);
}

/** The incoming-webhook body. */
function message(config, event, name, value, link) {
  const title = escape(headline(config, event, name, value));
  const who = escape(name);
  const [op, figure, threshold] = [escape(config.op), num(value), num(config.threshold)];
  const context = [escape(event.eventType), escape(event.tenant)];
  if (link !== null) context.unshift(`<${escape(link)}|Open>`);
  const body = {
    text: `${title}: ${who} is ${figure} (${op} ${threshold})`,
    blocks: [
      { type: 'section', text: { type: 'mrkdwn', text: `*${title}*\n${who} is *${figure}* (${op} ${threshold})` } },
      { type: 'context', elements: [{ type: 'mrkdwn', text: context.join(' · ') }] },
    ],
  };
  for (const key of ['channel', 'username']) {
    if (config[key] !== null) body[key] = config[key];
  }
  return body;
}
