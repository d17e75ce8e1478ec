// The tenants the token may touch, and one tenant's subscriptions with their
// state and the enable / disable / delete actions.

import { api, tenantPath } from './api.js';
import { h, fill, field, table, badge, messages, confirmDialog, busy, paged } from './dom.js';

const PAGE = 25;

export async function tenantsPage(root) {
  const notes = messages();
  const list = h('div', null, h('p', null, 'Loading tenants…'));
  const name = h('input', { type: 'text', name: 'tenant', required: true, pattern: '[a-z0-9][a-z0-9_\\-]{0,63}',
    autocapitalize: 'off', spellcheck: 'false' });
  const open = h('form', { class: 'inline' }, field('Tenant name', name), h('button', { type: 'submit' }, 'Open'));
  open.addEventListener('submit', (e) => {
    e.preventDefault();
    location.hash = `#/t/${encodeURIComponent(name.value.trim())}`;
  });
  fill(root, h('h1', null, 'Tenants'), notes.el, list, h('h2', null, 'Open a tenant'), open);
  try {
    const { data } = await api('GET', '/v1/tenants');
    fill(list, data.length === 0
      ? h('p', null, 'No tenant has subscriptions yet. Open one by name below.')
      : paged(data, PAGE, (slice) => table('Tenants this token may manage',
        ['Tenant', 'Subscriptions', 'Disabled', 'Failing'],
        slice.map((t) => [h('a', { href: `#/t/${encodeURIComponent(t.tenant)}` }, t.tenant),
          String(t.subscriptions), String(t.disabled), String(t.failing)]))));
  } catch (err) {
    list.replaceChildren();
    notes.show(err);
  }
}

/** Enabled, or disabled with hookshape's reason (none when disabled by hand). */
export function stateOf(sub) {
  if (sub.enabled) return badge('enabled');
  return h('span', null, badge('disabled'), ' ', sub.disabled_reason || 'by hand');
}

/** Flips `enabled`; resolves to the updated subscription. */
export function setEnabled(tenant, sub, enabled) {
  return api('PATCH', tenantPath(tenant, 'subscriptions', sub.id), { json: { enabled } });
}

/** Deletes after a confirmation; resolves true when deleted. */
export async function deleteWithConfirm(tenant, sub) {
  const sure = await confirmDialog(`Delete subscription ${sub.id} (${sub.url})? Its pending deliveries are cancelled.`,
    'Delete');
  if (!sure) return false;
  await api('DELETE', tenantPath(tenant, 'subscriptions', sub.id));
  return true;
}

export async function tenantPage(root, tenant) {
  const notes = messages();
  const list = h('div', null, h('p', null, 'Loading subscriptions…'));
  const eventId = h('input', { type: 'text', name: 'event', required: true, placeholder: 'evt_…', spellcheck: 'false' });
  const openEvent = h('form', { class: 'inline' }, field('Event id', eventId),
    h('button', { type: 'submit' }, 'Open event'));
  openEvent.addEventListener('submit', (e) => {
    e.preventDefault();
    location.hash = `#/t/${encodeURIComponent(tenant)}/e/${encodeURIComponent(eventId.value.trim())}`;
  });
  fill(root,
    h('p', { class: 'crumbs' }, h('a', { href: '#/' }, 'Tenants'), ' / ', tenant),
    h('h1', null, `Tenant ${tenant}`),
    h('p', null, h('a', { class: 'button', href: `#/t/${encodeURIComponent(tenant)}/new` }, 'New subscription')),
    notes.el, list, h('h2', null, 'Find an event'), openEvent);

  const load = async () => {
    const { data } = await api('GET', tenantPath(tenant, 'subscriptions'));
    fill(list, data.length === 0 ? h('p', null, 'No subscriptions yet.')
      : paged(data, PAGE, (slice) => table(`Subscriptions of ${tenant}`,
        ['Subscription', 'URL', 'Events', 'State', 'Failing', 'Plugin', 'Actions'],
        slice.map((sub) => row(sub)))));
  };
  const row = (sub) => {
    const toggle = h('button', { type: 'button', 'aria-label': `${sub.enabled ? 'Disable' : 'Enable'} ${sub.id}` },
      sub.enabled ? 'Disable' : 'Enable');
    toggle.addEventListener('click', () => busy(toggle, async () => {
      try {
        const updated = await setEnabled(tenant, sub, !sub.enabled);
        notes.ok(`${updated.id} is now ${updated.enabled ? 'enabled' : 'disabled'}.`);
        await load();
      } catch (err) {
        notes.show(err);
      }
    }));
    const remove = h('button', { type: 'button', class: 'danger', 'aria-label': `Delete ${sub.id}` }, 'Delete');
    remove.addEventListener('click', () => busy(remove, async () => {
      try {
        if (await deleteWithConfirm(tenant, sub)) {
          notes.ok(`${sub.id} deleted.`);
          await load();
        }
      } catch (err) {
        notes.show(err);
      }
    }));
    const managed = sub.managed_by === 'config';
    return [
      h('a', { href: `#/t/${encodeURIComponent(tenant)}/s/${encodeURIComponent(sub.id)}` }, sub.id),
      h('span', { class: 'url' }, sub.url),
      sub.events.join(', '),
      stateOf(sub),
      String(sub.consecutive_failures ?? ''),
      sub.plugin || '—',
      managed ? h('span', { class: 'muted' }, 'in the config file')
        : h('span', { class: 'actions' }, toggle, remove),
    ];
  };
  try {
    await load();
  } catch (err) {
    list.replaceChildren();
    notes.show(err);
  }
}
