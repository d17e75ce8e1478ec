// JSON shown as the source sent it. hookshape keeps payloads byte for byte
// (12.50, 1E3, 18446744073709551617, \u00e9 are never re-printed), so the
// console re-indents JSON text token by token: JSON.parse and stringify
// would print 12.50 as 12.5 and round integers past 2^53.

/** Splits JSON text into tokens: strings (escapes kept), punctuation, and
 * literal runs (numbers, true, false, null). Returns null if it is not
 * plausibly JSON (an unterminated string, a stray character). */
function tokens(text) {
  const out = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === ' ' || c === '\n' || c === '\r' || c === '\t') {
      i += 1;
    } else if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      if (j >= text.length) return null;
      out.push(text.slice(i, j + 1));
      i = j + 1;
    } else if ('{}[]:,'.includes(c)) {
      out.push(c);
      i += 1;
    } else {
      const m = /^[-+0-9.eE]+|^true|^false|^null/.exec(text.slice(i, i + 400));
      if (!m) return null;
      out.push(m[0]);
      i += m[0].length;
    }
  }
  return out;
}

/** JSON text re-indented by two spaces, every token as written; anything
 * that is not JSON comes back unchanged. */
export function reindent(text) {
  if (typeof text !== 'string') return '';
  const list = tokens(text);
  const first = text.trimStart()[0];
  if (!list || list.length === 0 || (first !== '{' && first !== '[')) return text;
  let out = '';
  let depth = 0;
  const newline = () => `\n${'  '.repeat(depth)}`;
  for (let k = 0; k < list.length; k += 1) {
    const t = list[k];
    const next = list[k + 1];
    if (t === '{' || t === '[') {
      const empty = next === (t === '{' ? '}' : ']');
      out += t;
      if (empty) {
        out += next;
        k += 1;
      } else {
        depth += 1;
        out += newline();
      }
    } else if (t === '}' || t === ']') {
      depth = Math.max(0, depth - 1);
      out += newline() + t;
    } else if (t === ',') {
      out += `,${newline()}`;
    } else if (t === ':') {
      out += ': ';
    } else {
      out += t;
    }
  }
  return out;
}

/** The raw text of member `key` of the top-level object in `text`, or null. */
export function memberText(text, key) {
  const wanted = JSON.stringify(key);
  let depth = 0;
  let i = 0;
  let expectKey = false;
  while (i < text.length) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      const str = text.slice(i, j + 1);
      i = j + 1;
      if (depth === 1 && expectKey && str === wanted) {
        const colon = text.indexOf(':', i);
        return valueAt(text, colon + 1);
      }
      expectKey = false;
    } else {
      if (c === '{' || c === '[') depth += 1;
      else if (c === '}' || c === ']') depth -= 1;
      if ((c === '{' && depth === 1) || (c === ',' && depth === 1)) expectKey = true;
      i += 1;
    }
  }
  return null;
}

/** The JSON value starting at or after `start`, as text. */
function valueAt(text, start) {
  let i = start;
  while (/\s/.test(text[i])) i += 1;
  const begin = i;
  let depth = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      i = j + 1;
      if (depth === 0) return text.slice(begin, i);
      continue;
    }
    if (c === '{' || c === '[') depth += 1;
    else if (c === '}' || c === ']') {
      if (depth === 0) return text.slice(begin, i).trimEnd();
      depth -= 1;
      if (depth === 0) return text.slice(begin, i + 1);
    } else if (c === ',' && depth === 0) {
      return text.slice(begin, i).trimEnd();
    }
    i += 1;
  }
  return text.slice(begin).trimEnd();
}
