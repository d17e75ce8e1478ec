// One event: its fields, its payload (JSON pretty-printed, anything else
// as text) and its deliveries.

import { api, tenantPath } from './api.js';
import { h, fill, table, details, badge, time, messages } from './dom.js';

/** The payload as the person should read it. */
export function payloadText(event) {
  if (typeof event.payload === 'string' && !/json/i.test(event.content_type)) return event.payload;
  return JSON.stringify(event.payload, null, 2);
}

export async function eventPage(root, tenant, id) {
  const t = encodeURIComponent(tenant);
  const notes = messages();
  fill(root,
    h('p', { class: 'crumbs' }, h('a', { href: '#/' }, 'Tenants'), ' / ', h('a', { href: `#/t/${t}` }, tenant),
      ' / ', id),
    h('h1', null, `Event ${id}`), notes.el);
  let event;
  try {
    event = await api('GET', tenantPath(tenant, 'events', id));
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
    h('pre', { class: 'body', tabindex: '0', 'aria-label': 'Payload' }, payloadText(event)));
}
