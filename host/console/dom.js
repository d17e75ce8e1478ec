// DOM helpers. Every string from the API (payloads, plugin logs, URLs,
// reasons) is hostile input: it becomes a text node or an attribute value,
// never markup. Nothing in the console uses innerHTML.

import { reindent } from './json_text.js';

/** Builds an element. `attrs`: `class`, `on<event>` handlers, `value` /
 * `checked` / `disabled` / `hidden` as properties, anything else as an
 * attribute (null/false leave it out). Children: nodes, strings (as text),
 * arrays, null. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else if (key === 'class') el.className = value;
    else if (['value', 'checked', 'disabled', 'hidden', 'selected'].includes(key)) el[key] = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces the children of `el`. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let nextId = 0;
/** A fresh id for label/input pairs. */
export function uid(prefix) {
  nextId += 1;
  return `${prefix}-${nextId}`;
}

/** A labelled form field: `control` is the input element (its id is set). */
export function field(label, control, hint) {
  control.id = control.id || uid('f');
  const hintEl = hint ? h('small', { id: `${control.id}-hint` }, hint) : null;
  if (hintEl) control.setAttribute('aria-describedby', hintEl.id);
  return h('div', { class: 'field' }, h('label', { for: control.id }, label), control, hintEl);
}

/** A labelled checkbox. */
export function checkbox(label, attrs) {
  const box = h('input', { type: 'checkbox', ...attrs });
  box.id = box.id || uid('c');
  return h('div', { class: 'field check' }, box, h('label', { for: box.id }, label));
}

/** A table with a header row; `rows` are arrays of cells (nodes or text).
 * On a narrow screen each row becomes a card, its cells labelled with
 * their column's name (`data-label`, from the fixed headers). */
export function table(caption, headers, rows) {
  return h('div', { class: 'table-wrap' },
    h('table', null,
      h('caption', null, caption),
      h('thead', null, h('tr', null, headers.map((name) => h('th', { scope: 'col' }, name)))),
      h('tbody', null, rows.map((cells) => h('tr', null,
        cells.map((cell, i) => h('td', { 'data-label': headers[i] }, cell)))))));
}

/** A description list from [term, value] pairs (null values are left out);
 * `wide`: two pairs a row on a wide screen. */
export function details(pairs, wide) {
  return h('dl', { class: wide ? 'details wide' : 'details' },
    pairs.filter(([, value]) => value !== null && value !== undefined)
      .map(([term, value]) => [h('dt', null, term), h('dd', null, value)]));
}

/** A block of preformatted text: JSON bodies pretty-printed, the rest as sent. */
export function pre(text, label) {
  return h('pre', { class: 'body', tabindex: '0', 'aria-label': label }, prettyBody(text));
}

/** JSON text re-indented (every token as sent); anything else unchanged. */
export function prettyBody(text) {
  if (text === null || text === undefined) return '';
  return reindent(String(text));
}

/** An RFC 3339 time as `YYYY-MM-DD HH:MM:SS UTC`, in a <time> element. */
export function time(rfc3339) {
  if (!rfc3339) return '';
  const date = new Date(rfc3339);
  const text = Number.isNaN(date.getTime())
    ? rfc3339
    : `${date.toISOString().slice(0, 19).replace('T', ' ')} UTC`;
  return h('time', { datetime: rfc3339 }, text);
}

/** A byte count in B / KiB / MiB. */
export function bytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/** An outcome or state as a badge (its class is from a fixed list). */
export function badge(word) {
  const known = ['delivered', 'failed', 'skipped', 'transform_failed', 'refused', 'pending',
    'cancelled', 'deliver', 'skip', 'error', 'enabled', 'disabled'];
  return h('span', { class: `badge ${known.includes(word) ? `b-${word}` : ''}` }, word);
}

/** An inline message area for a page or form: `show(err)` puts the API's
 * message (or any error's) in it, `ok(text)` a success, `clear()` empties it. */
export function messages() {
  const el = h('div', { class: 'messages' });
  return {
    el,
    show(err) {
      fill(el, h('p', { class: 'error', role: 'alert' }, err && err.message ? err.message : String(err)));
    },
    ok(...children) {
      fill(el, h('p', { class: 'ok', role: 'status' }, ...children));
    },
    clear() {
      el.replaceChildren();
    },
  };
}

/** Asks a yes/no question in a modal <dialog>; resolves true on confirm. */
export function confirmDialog(question, confirmLabel) {
  return new Promise((resolve) => {
    const dialog = h('dialog', { class: 'confirm', 'aria-labelledby': 'confirm-q' });
    const done = (answer) => {
      dialog.close();
      dialog.remove();
      resolve(answer);
    };
    const cancel = h('button', { type: 'button', onclick: () => done(false) }, 'Cancel');
    const yes = h('button', { type: 'button', class: 'danger', 'data-confirm': '', onclick: () => done(true) },
      confirmLabel);
    dialog.addEventListener('cancel', (e) => {
      e.preventDefault();
      done(false);
    });
    fill(dialog, h('p', { id: 'confirm-q' }, question), h('div', { class: 'actions' }, cancel, yes));
    document.body.append(dialog);
    dialog.showModal();
    cancel.focus();
  });
}

/** Runs `action` with `button` disabled meanwhile. */
export async function busy(button, action) {
  button.disabled = true;
  try {
    return await action();
  } finally {
    button.disabled = false;
  }
}

/** Shows `items` `size` at a time: `build(slice)` makes the list, with
 * Previous/Next buttons under it when there is more than one page. */
export function paged(items, size, build) {
  const el = h('div', { class: 'paged' });
  const pages = Math.max(1, Math.ceil(items.length / size));
  const show = (page) => {
    const prev = h('button', { type: 'button', disabled: page === 0, onclick: () => show(page - 1) }, 'Previous');
    const next = h('button', { type: 'button', disabled: page >= pages - 1, onclick: () => show(page + 1) }, 'Next');
    fill(el, build(items.slice(page * size, (page + 1) * size)),
      pages > 1 ? h('nav', { class: 'pager', 'aria-label': 'Pages' }, prev,
        h('span', null, `Page ${page + 1} of ${pages}`), next) : null);
  };
  show(0);
  return el;
}
