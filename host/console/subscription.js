// One subscription: its settings and actions (edit, enable/disable, delete,
// secret, recover, try its plugin) and its attempts, newest first, paged
// with the API's cursor; an opened attempt shows what was sent and answered.

import { api, tenantPath } from './api.js';
import { h, fill, field, table, details, badge, time, pre, messages, confirmDialog, busy } from './dom.js';
import { stateOf, setEnabled, deleteWithConfirm } from './tenants.js';

const ATTEMPTS_PAGE = 20;

export async function subscriptionPage(root, tenant, id) {
  const t = encodeURIComponent(tenant);
  const notes = messages();
  const info = h('div', null, h('p', null, 'Loading…'));
  const actions = h('div', { class: 'actions' });
  const secretBox = h('div', { class: 'secret-box' });
  const attemptsBox = h('section', { 'aria-labelledby': 'attempts-h' });
  const opened = h('section', { class: 'attempt', 'aria-live': 'polite' });
  fill(root,
    h('p', { class: 'crumbs' }, h('a', { href: '#/' }, 'Tenants'), ' / ', h('a', { href: `#/t/${t}` }, tenant),
      ' / ', id),
    h('h1', null, `Subscription ${id}`), notes.el, info, actions, secretBox,
    recoverForm(tenant, id, notes), attemptsBox, opened);

  let sub = await api('GET', tenantPath(tenant, 'subscriptions', id));

  const showInfo = () => {
    fill(info, details([
      ['URL', h('span', { class: 'url' }, sub.url)],
      ['Events', sub.events.join(', ')],
      ['Description', sub.description],
      ['State', stateOf(sub)],
      ['Failing deliveries in a row', String(sub.consecutive_failures ?? 0)],
      ['Ordered', sub.ordered ? 'yes' : 'no'],
      ['Plugin', sub.plugin || 'none'],
      ['Plugin config', sub.plugin_config === null ? null : pre(JSON.stringify(sub.plugin_config), 'Plugin config')],
      ['Headers', Object.keys(sub.headers).length === 0 ? 'none'
        : h('ul', { class: 'plain' }, Object.entries(sub.headers).map(([k, v]) => h('li', null, h('code', null, k), ': ', v)))],
      ['Managed by', sub.managed_by],
      ['Created', time(sub.created_at)],
      ['Updated', time(sub.updated_at)],
    ], true));
    const sid = encodeURIComponent(id);
    const managed = sub.managed_by === 'config';
    const toggle = h('button', { type: 'button', disabled: managed }, sub.enabled ? 'Disable' : 'Enable');
    toggle.addEventListener('click', () => busy(toggle, async () => {
      try {
        sub = await setEnabled(tenant, sub, !sub.enabled);
        notes.ok(`Subscription ${sub.enabled ? 'enabled' : 'disabled'}.`);
        showInfo();
      } catch (err) {
        notes.show(err);
      }
    }));
    const remove = h('button', { type: 'button', class: 'danger', disabled: managed }, 'Delete');
    remove.addEventListener('click', () => busy(remove, async () => {
      try {
        if (await deleteWithConfirm(tenant, sub)) location.hash = `#/t/${t}`;
      } catch (err) {
        notes.show(err);
      }
    }));
    fill(actions,
      managed ? null : h('a', { class: 'button', href: `#/t/${t}/s/${sid}/edit` }, 'Edit'),
      toggle, remove,
      sub.plugin ? h('a', { class: 'button', href: `#/t/${t}/s/${sid}/try` }, 'Try the plugin') : null,
      secretButtons(tenant, id, managed, secretBox, notes));
  };
  showInfo();
  attempts(tenant, id, attemptsBox, opened, notes);
}

function secretButtons(tenant, id, managed, box, notes) {
  const show = h('button', { type: 'button' }, 'Show secret');
  show.addEventListener('click', () => busy(show, async () => {
    try {
      const { key } = await api('GET', tenantPath(tenant, 'subscriptions', id, 'secret'));
      fill(box, details([['Secret', h('code', { class: 'secret' }, key)]]));
    } catch (err) {
      notes.show(err);
    }
  }));
  const rotate = h('button', { type: 'button', disabled: managed }, 'Rotate secret');
  rotate.addEventListener('click', () => busy(rotate, async () => {
    const sure = await confirmDialog('Rotate the signing secret? For the rotation overlap, deliveries carry both '
      + 'the new and the old signature; after it, only the new one.', 'Rotate');
    if (!sure) return;
    try {
      const { key } = await api('POST', tenantPath(tenant, 'subscriptions', id, 'secret', 'rotate'));
      fill(box, details([['New secret', h('code', { class: 'secret' }, key)]]));
      notes.ok('Secret rotated.');
    } catch (err) {
      notes.show(err);
    }
  }));
  return [show, rotate];
}

function recoverForm(tenant, id, notes) {
  const since = h('input', { type: 'datetime-local', name: 'since', required: true, step: 1 });
  const button = h('button', { type: 'submit' }, 'Recover');
  const form = h('form', { class: 'inline' },
    field('Resend failed deliveries of events since (UTC)', since), button);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    busy(button, async () => {
      try {
        const stamp = since.value.length === 16 ? `${since.value}:00` : since.value;
        const { deliveries } = await api('POST', tenantPath(tenant, 'subscriptions', id, 'recover'),
          { json: { since: `${stamp}Z` } });
        notes.ok(`Recover: ${deliveries} failed ${deliveries === 1 ? 'delivery' : 'deliveries'} sent again.`);
      } catch (err) {
        notes.show(err);
      }
    });
  });
  return h('details', { class: 'recover' }, h('summary', null, 'Recover after an outage'), form);
}

/** The attempts list with a cursor stack for Newer / Older. */
function attempts(tenant, id, box, opened, notes) {
  const cursors = [null]; // cursors[i]: the `before` of page i
  let page = 0;
  const list = h('div');
  const newer = h('button', { type: 'button' }, 'Newer');
  const older = h('button', { type: 'button' }, 'Older');
  const refresh = h('button', { type: 'button' }, 'Refresh');
  const pager = h('nav', { class: 'pager', 'aria-label': 'Attempt pages', hidden: true }, newer, older);
  const load = async () => {
    const query = new URLSearchParams({ limit: String(ATTEMPTS_PAGE) });
    if (cursors[page]) query.set('before', cursors[page]);
    try {
      const { data, next } = await api('GET', `${tenantPath(tenant, 'subscriptions', id, 'attempts')}?${query}`);
      cursors[page + 1] = next;
      newer.disabled = page === 0;
      older.disabled = !next;
      pager.hidden = page === 0 && !next;
      fill(list, data.length === 0 ? h('p', { class: 'muted' }, 'No attempts yet.')
        : table('Attempts, newest first', ['Time', 'Outcome', 'Status', 'Duration', 'Try', 'Event', ''],
          data.map((a) => [
            time(a.created_at), badge(a.outcome), a.status_code === null ? '—' : String(a.status_code),
            `${a.duration_ms} ms`, String(a.attempt),
            h('a', { href: `#/t/${encodeURIComponent(tenant)}/e/${encodeURIComponent(a.event_id)}` }, a.event_type),
            h('button', { type: 'button', 'aria-label': `Open attempt ${a.id}`,
              onclick: () => openAttempt(tenant, a, opened, load) }, 'Open'),
          ])));
    } catch (err) {
      notes.show(err);
    }
  };
  newer.addEventListener('click', () => busy(newer, () => { page -= 1; return load(); }));
  older.addEventListener('click', () => busy(older, () => { page += 1; return load(); }));
  refresh.addEventListener('click', () => busy(refresh, load));
  fill(box, h('h2', { id: 'attempts-h' }, 'Attempts'),
    h('div', { class: 'actions' }, refresh), list, pager);
  load();
}

function openAttempt(tenant, a, box, reload) {
  const resend = h('button', { type: 'button' }, 'Resend');
  const result = messages();
  resend.addEventListener('click', () => busy(resend, async () => {
    try {
      const { delivery_id: delivery } = await api('POST', tenantPath(tenant, 'attempts', a.id, 'resend'));
      result.ok(`Resent as delivery ${delivery}.`);
      await reload();
    } catch (err) {
      result.show(err);
    }
  }));
  const headerRows = Object.entries(a.request_headers || {}).map(([k, v]) => [h('code', null, k), v]);
  const heading = h('h2', { tabindex: '-1' }, `Attempt ${a.id}`);
  fill(box, heading,
    details([
      ['Outcome', badge(a.outcome)],
      ['Status', a.status_code === null ? 'no answer' : String(a.status_code)],
      ['Error', a.error],
      ['Time', time(a.created_at)],
      ['Duration', `${a.duration_ms} ms`],
      ['Attempt', `${a.attempt} of delivery ${a.delivery_id}`],
      ['Event', h('a', { href: `#/t/${encodeURIComponent(tenant)}/e/${encodeURIComponent(a.event_id)}` },
        `${a.event_type} (${a.event_id})`)],
      ['Plugin sha256', a.plugin_sha256 ? h('code', null, a.plugin_sha256) : null],
    ]),
    h('div', { class: 'actions' }, resend), result.el,
    h('h3', null, 'Request headers'),
    headerRows.length ? table('Request headers sent', ['Header', 'Value'], headerRows) : h('p', null, 'None sent.'),
    h('h3', null, 'Request body', a.request_body_truncated ? ' (cut at 64 KiB)' : ''),
    a.request_body === null ? h('p', null, 'Nothing was sent.') : pre(a.request_body, 'Request body'),
    h('h3', null, 'Response body', a.response_body_truncated ? ' (cut at 64 KiB)' : ''),
    a.response_body === null ? h('p', null, 'No answer.') : pre(a.response_body, 'Response body'),
    h('h3', null, 'Plugin logs'),
    logList(a.plugin_logs));
  heading.focus();
  heading.scrollIntoView({ block: 'start' });
}

/** Plugin log lines, as text. */
export function logList(lines) {
  if (!lines || lines.length === 0) return h('p', { class: 'muted' }, 'No log lines.');
  return h('ol', { class: 'logs' }, lines.map((line) => h('li', null,
    h('span', { class: `level level-${['error', 'warn', 'info', 'debug', 'trace'].includes(line.level) ? line.level : 'info'}` },
      line.level), ' ', line.message)));
}
