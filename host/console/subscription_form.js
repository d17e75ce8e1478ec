// Creating (with verify) and editing a subscription.

import { api, tenantPath } from './api.js';
import { h, fill, field, checkbox, messages, busy, details } from './dom.js';

/** `Name: value` lines to a headers object. */
function parseHeaders(text) {
  const headers = {};
  for (const [i, line] of text.split('\n').entries()) {
    if (!line.trim()) continue;
    const colon = line.indexOf(':');
    if (colon < 1) throw new Error(`Headers, line ${i + 1}: write it as "Name: value".`);
    headers[line.slice(0, colon).trim()] = line.slice(colon + 1).trim();
  }
  return headers;
}

function parseEvents(text) {
  const events = text.split(/[\s,]+/).filter(Boolean);
  if (events.length === 0) throw new Error('Events: name at least one event type or pattern.');
  return events;
}

function parseConfig(text) {
  if (!text.trim()) return undefined;
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new Error(`Plugin config is not valid JSON: ${err.message}`);
  }
}

/** The create form (`id` null) or the edit form of subscription `id`. */
export async function subscriptionForm(root, tenant, id) {
  const t = encodeURIComponent(tenant);
  const notes = messages();
  const editing = id !== null;
  const heading = editing ? `Edit ${id}` : 'New subscription';
  fill(root,
    h('p', { class: 'crumbs' }, h('a', { href: '#/' }, 'Tenants'), ' / ',
      h('a', { href: `#/t/${t}` }, tenant),
      editing ? [' / ', h('a', { href: `#/t/${t}/s/${encodeURIComponent(id)}` }, id)] : null),
    h('h1', null, heading), notes.el);

  const current = editing ? await api('GET', tenantPath(tenant, 'subscriptions', id)) : null;
  const plugins = h('datalist', { id: 'plugin-names' });
  api('GET', '/v1/plugins').then(({ data }) => fill(plugins, data.map((p) => h('option', { value: p.name }))),
    () => {}); // a tenant-scoped token may not list plugins: the field stays free text

  const url = h('input', { type: 'url', name: 'url', required: true, value: current ? current.url : '',
    placeholder: 'https://example.com/hooks' });
  const events = h('input', { type: 'text', name: 'events', required: true, spellcheck: 'false',
    value: current ? current.events.join(', ') : '', placeholder: 'project.*, report_run_completed' });
  const description = h('input', { type: 'text', name: 'description', value: current?.description || '' });
  const headers = h('textarea', { name: 'headers', rows: 3, spellcheck: 'false',
    value: current ? Object.entries(current.headers).map(([k, v]) => `${k}: ${v}`).join('\n') : '' });
  const plugin = h('input', { type: 'text', name: 'plugin', list: 'plugin-names', spellcheck: 'false',
    value: current?.plugin || '' });
  const config = h('textarea', { name: 'plugin_config', rows: 5, spellcheck: 'false',
    value: current && current.plugin_config !== null ? JSON.stringify(current.plugin_config, null, 2) : '' });
  const ordered = checkbox('Ordered: one delivery at a time, in ingest order', { name: 'ordered',
    checked: current ? current.ordered : false });
  const enabled = checkbox('Enabled', { name: 'enabled', checked: current ? current.enabled : true });
  const verify = editing ? null : checkbox('Verify: send a webhook.test event now and store nothing unless it answers 2xx',
    { name: 'verify', checked: true });
  const submit = h('button', { type: 'submit' }, editing ? 'Save' : 'Create');
  const form = h('form', { class: 'card' },
    field('URL', url),
    field('Events', events, 'Exact types or patterns (project.*, *), separated by commas or spaces.'),
    field('Description', description),
    field('Headers', headers, 'One "Name: value" per line, added to every delivery.'),
    field('Plugin', plugin, 'The name of an uploaded or configured plugin; empty for none.'),
    plugins,
    field('Plugin config (JSON)', config, 'Handed to the plugin, e.g. {"pointer": "/rows/0/revenue", "op": ">", "threshold": 100000}.'),
    ordered, enabled, verify, submit);

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    busy(submit, async () => {
      notes.clear();
      let body;
      try {
        body = {
          url: url.value.trim(),
          events: parseEvents(events.value),
          headers: parseHeaders(headers.value),
          ordered: ordered.querySelector('input').checked,
          enabled: enabled.querySelector('input').checked,
        };
        const configValue = parseConfig(config.value);
        if (configValue !== undefined) body.plugin_config = configValue;
        if (editing) {
          body.description = description.value.trim() || null;
          body.plugin = plugin.value.trim() || null;
        } else {
          if (description.value.trim()) body.description = description.value.trim();
          if (plugin.value.trim()) body.plugin = plugin.value.trim();
          body.verify = verify.querySelector('input').checked;
        }
      } catch (err) {
        notes.show(err);
        return;
      }
      try {
        if (editing) {
          await api('PATCH', tenantPath(tenant, 'subscriptions', id), { json: body });
          location.hash = `#/t/${t}/s/${encodeURIComponent(id)}`;
          return;
        }
        const created = await api('POST', tenantPath(tenant, 'subscriptions'), { json: body });
        fill(root, h('p', { class: 'crumbs' }, h('a', { href: '#/' }, 'Tenants'), ' / ',
          h('a', { href: `#/t/${t}` }, tenant)),
        h('h1', { tabindex: '-1' }, 'Subscription created'),
        h('p', { class: 'ok', role: 'status' }, body.verify
          ? 'Verified: the webhook.test event was answered with a 2xx.'
          : 'Created without verification.'),
        details([
          ['Id', created.id],
          ['URL', created.url],
          ['Secret', h('code', { class: 'secret' }, created.secret)],
        ]),
        h('p', null, 'This is the only answer that shows the secret; read it again from the subscription page.'),
        h('p', null, h('a', { class: 'button', href: `#/t/${t}/s/${encodeURIComponent(created.id)}` },
          'Open the subscription')));
        root.querySelector('h1').focus();
      } catch (err) {
        // verification_failed carries the test event's result in its message.
        notes.show(err);
        notes.el.scrollIntoView({ block: 'nearest' });
      }
    });
  });
  root.append(form);
  url.focus();
}
