// One event: its fields, its payload (JSON pretty-printed, anything else
// as text) and its deliveries.

import { api, tenantPath } from './api.js';
import { h, fill, table, details, badge, time, messages } from './dom.js';
import { memberText, reindent } from './json_text.js';

/** The payload as the person should read it: a JSON payload re-indented
 * from the answer's own text (digits as sent), any other document as text. */
function payloadText(event, answerText) {
  if (typeof event.payload === 'string' && !/json/i.test(event.content_type)) return event.payload;
  return reindent(memberText(answerText, 'payload') ?? JSON.stringify(event.payload));
}

export async function eventPage(root, tenant, id) {
  const t = encodeURIComponent(tenant);
  const notes = messages();
  fill(root,
    h('p', { class: 'crumbs' }, h('a', { href: '#/' }, 'Tenants'), ' / ', h('a', { href: `#/t/${t}` }, tenant),
      ' / ', id),
    h('h1', null, `Event ${id}`), notes.el);
  let event;
  let answerText;
  try {
    answerText = await api('GET', tenantPath(tenant, 'events', id), { text: true });
    event = JSON.parse(answerText);
  } catch (err) {
    notes.show(err);
    return;
  }
  root.append(
    details([
      ['Type', event.type],
      ['Source id', event.source_id],
      ['Tenant', event.tenant],
      ['Received', time(event.timestamp)],
      ['Content type', event.content_type],
    ]),
    h('h2', null, 'Deliveries'),
    event.deliveries.length === 0 ? h('p', { class: 'muted' }, 'No subscription wanted it.')
      : table('Deliveries of this event', ['Delivery', 'Subscription', 'State', 'Attempts', 'Next attempt'],
        event.deliveries.map((d) => [
          h('code', null, d.id),
          h('a', { href: `#/t/${t}/s/${encodeURIComponent(d.subscription_id)}` }, d.subscription_id),
          badge(d.state), String(d.attempts), d.next_attempt_at ? time(d.next_attempt_at) : '—',
        ])),
    h('h2', null, 'Payload'),
    h('pre', { class: 'body', tabindex: '0', 'aria-label': 'Payload' }, payloadText(event, answerText)));
}
