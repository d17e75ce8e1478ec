// Trying a subscription's plugin on a stored or pasted event with the
// dry-run route: nothing is sent or stored.

import { api, tenantPath } from './api.js';
import { h, fill, field, details, badge, pre, table, messages, busy } from './dom.js';
import { logList } from './subscription.js';

export async function tryPage(root, tenant, id) {
  const t = encodeURIComponent(tenant);
  const notes = messages();
  const result = h('section', { class: 'result', 'aria-live': 'polite' });
  fill(root,
    h('p', { class: 'crumbs' }, h('a', { href: '#/' }, 'Tenants'), ' / ', h('a', { href: `#/t/${t}` }, tenant),
      ' / ', h('a', { href: `#/t/${t}/s/${encodeURIComponent(id)}` }, id), ' / try'),
    h('h1', null, 'Try the plugin'), notes.el);
  const sub = await api('GET', tenantPath(tenant, 'subscriptions', id));
  root.append(h('p', null, sub.plugin
    ? `Runs ${sub.plugin} with this subscription's config. Nothing is sent or stored.`
    : 'This subscription has no plugin: the dry run shows the body hookshape would send as is.'));

  const stored = h('input', { type: 'radio', name: 'source', value: 'stored', id: 'src-stored', checked: true });
  const pasted = h('input', { type: 'radio', name: 'source', value: 'pasted', id: 'src-pasted' });
  const eventId = h('input', { type: 'text', name: 'event_id', placeholder: 'evt_…', spellcheck: 'false',
    list: 'recent-events' });
  // The events this subscription saw lately, to pick from.
  const recent = h('datalist', { id: 'recent-events' });
  api('GET', `${tenantPath(tenant, 'subscriptions', id, 'attempts')}?limit=50`).then(({ data }) => {
    const seen = new Map(data.map((a) => [a.event_id, a.event_type]));
    fill(recent, [...seen].map(([event, type]) => h('option', { value: event }, type)));
  }, () => {});
  const eventJson = h('textarea', { name: 'event', rows: 8, spellcheck: 'false',
    placeholder: '{"type": "report_run_completed", "payload": {...}}' });
  const sync = () => {
    eventId.disabled = !stored.checked;
    eventJson.disabled = stored.checked;
  };
  stored.addEventListener('change', sync);
  pasted.addEventListener('change', sync);
  sync();
  const run = h('button', { type: 'submit' }, 'Run');
  const form = h('form', { class: 'card' },
    h('fieldset', null, h('legend', null, 'Event'),
      h('div', { class: 'field check' }, stored, h('label', { for: 'src-stored' }, 'A stored event')),
      field('Event id', eventId, 'A stored event of this tenant; the list offers those this subscription saw lately.'),
      recent,
      h('div', { class: 'field check' }, pasted, h('label', { for: 'src-pasted' }, 'Paste an event')),
      field('Event JSON, as posted to /events', eventJson)),
    run);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    busy(run, async () => {
      notes.clear();
      let body;
      if (stored.checked) {
        body = { event_id: eventId.value.trim() };
      } else {
        try {
          body = { event: JSON.parse(eventJson.value) };
        } catch (err) {
          notes.show(new Error(`The event is not valid JSON: ${err.message}`));
          return;
        }
      }
      try {
        const answer = await api('POST', tenantPath(tenant, 'subscriptions', id, 'dry-run'), { json: body });
        showResult(result, answer);
      } catch (err) {
        result.replaceChildren();
        notes.show(err);
      }
    });
  });
  root.append(form, result);
  eventId.focus();
}

function showResult(box, answer) {
  const request = answer.request;
  const headerRows = request ? Object.entries(request.headers || {}).map(([k, v]) => [h('code', null, k), v]) : [];
  const heading = h('h2', { tabindex: '-1' }, 'Result');
  fill(box,
    heading,
    details([
      ['Outcome', h('span', { 'data-outcome': answer.outcome }, badge(answer.outcome))],
      ['Reason', answer.reason],
      ['Time', `${(answer.duration_us / 1000).toFixed(2)} ms`],
      ['Content type', request ? request.content_type : null],
    ]),
    request ? [
      h('h3', null, 'Headers it would send'),
      headerRows.length ? table('Headers', ['Header', 'Value'], headerRows) : h('p', { class: 'muted' }, 'None.'),
      h('h3', null, 'Body it would send'),
      pre(request.body, 'Body it would send'),
    ] : null,
    h('h3', null, 'Plugin logs'),
    logList(answer.plugin_logs));
  heading.focus();
  heading.scrollIntoView({ block: 'start' });
}
