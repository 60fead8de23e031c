// The shell: who is logged in, the navigation for that role, and which page module renders
// the current hash route. Pages are ES modules loaded on first use; each exports
// `render(ctx)` and may return a cleanup function (stop polling, close streams) that runs
// before the next page renders.

import { api, can, hasSession, onReachability, onUnauthorized } from './api.js';
import { current, go, href, start } from './router.js';
import { errorBox, fill, h, noPermission } from './ui.js';

// page -> module, capability needed (null: public; 'login': anyone logged in), nav label,
// what "no permission" says.
const PAGES = {
  live: { module: './live.js', cap: 'read', nav: 'Live', deny: 'view live cameras' },
  events: { module: './events.js', cap: 'read', nav: 'Events', deny: 'view events' },
  recordings: { module: './recordings.js', cap: 'read', nav: 'Recordings', deny: 'view recordings' },
  editor: { module: './editor.js', cap: 'operate', nav: 'Zones & lines', deny: 'edit zones and lines' },
  counts: { module: './counts.js', cap: 'read', nav: 'Counts', deny: 'view counts' },
  audit: { module: './audit.js', cap: 'audit', nav: 'Audit', deny: 'read the audit log' },
  users: { module: './users.js', cap: 'admin', nav: 'Users', deny: 'manage users' },
  // Shown in the navigation only when the server runs on a Ray cluster (see clusterKnown).
  cluster: { module: './cluster.js', cap: 'admin', nav: 'Cluster', deny: 'view the cluster', cluster: true },
  tokens: { module: './tokens.js', cap: 'login', nav: 'API tokens', deny: 'manage API tokens' },
  login: { module: './login.js', cap: null },
  setup: { module: './setup.js', cap: null },
};

const state = { me: null, cleanup: null, returnTo: null, renderId: 0, cluster: false };

/** Whether `me` may use a page that needs `cap`. */
function allowed(me, cap) { return cap === 'login' ? Boolean(me) : can(me, cap); }
const main = () => document.getElementById('main');

/** The first page a role may use (auditors have no live view). */
function homeFor(me) {
  return ['live', 'events', 'audit', 'users'].find((p) => can(me, PAGES[p].cap)) || 'login';
}

function renderNav() {
  const list = document.getElementById('nav-list');
  const who = document.getElementById('whoami');
  const { page } = current();
  if (!state.me) {
    fill(list);
    fill(who);
    return;
  }
  fill(list, Object.entries(PAGES)
    .filter(([, def]) => def.nav && allowed(state.me, def.cap) && (!def.cluster || state.cluster))
    .map(([name, def]) => {
      // The editor needs a camera; its nav entry opens the first one.
      const link = h('a', { href: href(name), 'aria-current': name === page ? 'page' : false }, def.nav);
      return h('li', {}, link);
    }));
  fill(who,
    h('span', { class: 'muted' }, `${state.me.name} (${state.me.role})`),
    h('button', { type: 'button', class: 'link', onclick: logout }, 'Log out'));
}

async function logout() {
  try { await api('/api/logout', { method: 'POST' }); } catch (_) { /* gone anyway */ }
  state.me = null;
  go('login');
}

/** Who is logged in, or null (asks the server only when a session cookie exists). */
async function whoAmI() {
  if (state.me) return state.me;
  if (!hasSession()) return null;
  try {
    state.me = await api('/api/me');
  } catch (err) {
    if (err.status === 401) return null;
    throw err;
  }
  await clusterKnown(state.me);
  return state.me;
}

/** Whether the server runs on a cluster (admins only: others cannot ask), for the nav. */
async function clusterKnown(me) {
  state.cluster = false;
  if (!can(me, 'admin')) return;
  try {
    state.cluster = Boolean((await api('/api/cluster')).cluster);
  } catch (_) { /* a cluster that cannot answer now: the page says why when opened */ }
}

async function render(route) {
  const id = ++state.renderId;
  if (state.cleanup) {
    try { state.cleanup(); } catch (_) { /* a page's cleanup must not block the next */ }
    state.cleanup = null;
  }
  closeNav();
  const root = main();
  try {
    let { page } = route;
    const health = (page === 'login' || page === 'setup' || !state.me) ? await api('/api/health') : null;
    if (health && health.setup_required && page !== 'setup') { go('setup'); return; }
    const me = (page === 'login' || page === 'setup') ? state.me : await whoAmI();
    if (!me && page !== 'login' && page !== 'setup') {
      state.returnTo = location.hash && !location.hash.startsWith('#/login') ? location.hash : null;
      go('login');
      return;
    }
    if (!PAGES[page] || page === '') { go(homeFor(me)); return; }
    const def = PAGES[page];
    renderNav();
    if (def.cap && !allowed(me, def.cap)) {
      document.title = 'No permission — Vigil';
      fill(root, noPermission(def.deny));
      return;
    }
    const module = await import(def.module);
    if (id !== state.renderId) return; // another navigation started meanwhile
    // Each render gets its own container: a page whose awaits finish after the user navigated
    // on appends to a detached node instead of mixing into the next page.
    const view = h('div', { class: 'view' });
    fill(root, view);
    const ctx = { root: view, me, arg: route.arg, query: route.query, loggedIn, homeFor };
    const cleanup = await module.render(ctx);
    if (id !== state.renderId) { if (cleanup) cleanup(); return; }
    state.cleanup = cleanup || null;
    root.focus({ preventScroll: true });
  } catch (err) {
    if (id === state.renderId) fill(root, errorBox(err));
  }
}

/** The login and setup pages call this with /api/login's answer. */
async function loggedIn(me) {
  state.me = me;
  await clusterKnown(me);
  const target = state.returnTo;
  state.returnTo = null;
  if (target) location.hash = target;
  else go(homeFor(me));
}

function closeNav() {
  const nav = document.getElementById('nav');
  nav.classList.remove('open');
  document.getElementById('nav-toggle').setAttribute('aria-expanded', 'false');
}

function setupChrome() {
  const toggle = document.getElementById('nav-toggle');
  toggle.addEventListener('click', () => {
    const open = document.getElementById('nav').classList.toggle('open');
    toggle.setAttribute('aria-expanded', String(open));
  });
  let retry = null;
  onReachability((up) => {
    document.getElementById('banner-offline').hidden = up;
    if (!up && !retry) {
      // Keep asking until the server answers, then hide the banner.
      retry = setInterval(() => {
        api('/api/health').then(() => { clearInterval(retry); retry = null; }, () => {});
      }, 3000);
    }
  });
  onUnauthorized(() => {
    state.me = null;
    const { page } = current();
    if (page !== 'login' && page !== 'setup') {
      state.returnTo = location.hash;
      go('login');
    }
  });
}

setupChrome();
start(render);
