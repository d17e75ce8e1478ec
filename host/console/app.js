// The console's shell: sign-in, hash routing, and focus on navigation.
// Routes: #/ tenants, #/t/T a tenant's subscriptions, #/t/T/new,
// #/t/T/s/ID (attempts), #/t/T/s/ID/edit, #/t/T/s/ID/try, #/t/T/e/ID (an
// event), #/plugins.

import { api, session } from './api.js';
import { h, fill, field, messages, busy } from './dom.js';
import { tenantsPage, tenantPage } from './tenants.js';
import { subscriptionForm } from './subscription_form.js';
import { subscriptionPage } from './subscription.js';
import { eventPage } from './event.js';
import { pluginsPage } from './plugins.js';
import { tryPage } from './try.js';

const routes = [
  [/^\/$/, tenantsPage],
  [/^\/t\/([^/]+)$/, tenantPage],
  [/^\/t\/([^/]+)\/new$/, (view, tenant) => subscriptionForm(view, tenant, null)],
  [/^\/t\/([^/]+)\/s\/([^/]+)$/, subscriptionPage],
  [/^\/t\/([^/]+)\/s\/([^/]+)\/edit$/, subscriptionForm],
  [/^\/t\/([^/]+)\/s\/([^/]+)\/try$/, tryPage],
  [/^\/t\/([^/]+)\/e\/([^/]+)$/, eventPage],
  [/^\/plugins$/, pluginsPage],
];

const view = document.getElementById('view');
const signOut = document.getElementById('sign-out');

signOut.addEventListener('click', () => {
  session.signOut();
  location.hash = '#/';
  render();
});

function signInPage(root) {
  const notes = messages();
  const input = h('input', { type: 'password', name: 'token', autocomplete: 'off', required: true });
  const button = h('button', { type: 'submit' }, 'Sign in');
  const form = h('form', { class: 'card', 'aria-labelledby': 'signin-h' },
    field('API token', input, 'An admin token from [[auth.tokens]]. Kept in this tab only.'),
    button, notes.el);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    busy(button, async () => {
      session.signIn(input.value.trim());
      try {
        // The tenant list checks the token, and is the first page anyway.
        await api('GET', '/v1/tenants');
      } catch (err) {
        session.signOut();
        notes.show(err);
        input.focus();
        return;
      }
      render();
    });
  });
  fill(root, h('h1', { id: 'signin-h' }, 'Sign in'), form);
  input.focus();
}

function notFound(root) {
  fill(root, h('h1', null, 'Not found'), h('p', null, 'No page here. ', h('a', { href: '#/' }, 'Tenants')));
}

/** Renders the page of the current hash into a fresh section, so an answer
 * that arrives after the person moved on lands in a detached node. */
function render() {
  const path = (location.hash || '#/').slice(1) || '/';
  const root = h('section', { class: 'page' });
  fill(view, root);
  signOut.hidden = !session.token();
  if (!session.token()) {
    signInPage(root);
    return;
  }
  for (const [pattern, page] of routes) {
    const match = pattern.exec(path);
    if (match) {
      const args = match.slice(1).map(decodeURIComponent);
      Promise.resolve(page(root, ...args)).catch((err) => {
        root.append(h('p', { class: 'error', role: 'alert' }, err.message));
      }).finally(focusHeading);
      return;
    }
  }
  notFound(root);
}

/** Moves focus to the new page's heading, for keyboard and screen reader users. */
function focusHeading() {
  const heading = view.querySelector('h1');
  if (heading && !view.contains(document.activeElement)) {
    heading.tabIndex = -1;
    heading.focus({ preventScroll: true });
  }
}

window.addEventListener('hashchange', render);
render();
