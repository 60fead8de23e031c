// API tokens (every logged-in user): the caller's tokens (admins: everyone's, on request),
// make one, revoke one. A token is shown once, when made; the server keeps only its hash.
// Tokens carry their owner's role and cameras, survive logout, expire (90 days at most by
// default) and end when the owner's password changes or the owner is disabled.

import { api, can } from './api.js';
import { empty, errorBox, field, fill, fmtTime, h, header, message, modal, toast } from './ui.js';

const DAY = 86400;

export async function render(ctx) {
  document.title = 'API tokens — Vigil';
  const admin = can(ctx.me, 'admin');
  const everyone = h('input', { type: 'checkbox', id: 'tokens-all' });
  const body = h('tbody');
  const status = h('div');
  const head = h('thead');
  const table = h('table', { id: 'tokens-table' }, head, body);
  const refresh = async () => {
    const all = admin && everyone.checked;
    let rows;
    try {
      rows = await api('/api/tokens', { query: all ? { all_users: true } : {} });
    } catch (err) {
      fill(status, errorBox(err));
      return;
    }
    const cols = ['Name', ...(all ? ['User'] : []), 'Created', 'Expires', 'Last used', ''];
    fill(head, h('tr', {}, cols.map((t) => h('th', { scope: 'col' }, t))));
    fill(status, rows.length ? null : empty('No API tokens.', 'Make one below for a script or another system.'));
    fill(body, rows.map((t) => row(t, all, refresh)));
  };
  everyone.addEventListener('change', refresh);
  // Node.append would print a null child as "null": only real nodes go in.
  ctx.root.append(...[header('API tokens'),
    h('p', { class: 'muted' }, 'A token lets a machine call the API as you (your role and cameras) with '
      + '"Authorization: Bearer …". It is shown once, expires, outlives your login session, and ends '
      + 'when your password changes or your account is disabled. Only a password login can make one.'),
    admin ? h('div', { class: 'field inline' }, everyone, h('label', { for: 'tokens-all' }, 'All users’ tokens')) : null,
    status, h('div', { class: 'table-wrap' }, table), addForm(refresh)].filter(Boolean));
  await refresh();
  return null;
}

function row(t, withUser, refresh) {
  const revoke = h('button', { type: 'button', class: 'danger' }, 'Revoke');
  revoke.addEventListener('click', async () => {
    try {
      await api(`/api/tokens/${t.id}`, { method: 'DELETE' });
      toast(`Token ${t.name || t.id} revoked.`);
      await refresh();
    } catch (err) { toast(message(err), 'error'); }
  });
  return h('tr', { dataset: { token: String(t.id) } },
    h('th', { scope: 'row' }, t.name || '—'), withUser ? h('td', {}, t.user) : null,
    h('td', {}, fmtTime(t.created)), h('td', {}, fmtTime(t.expires)), h('td', {}, fmtTime(t.last_used)),
    h('td', { class: 'actions' }, revoke));
}

function addForm(refresh) {
  const name = h('input', { name: 'name', required: true, maxlength: 64, autocomplete: 'off' });
  const days = h('input', { name: 'days', type: 'number', min: 1, max: 3650, step: 1, placeholder: '90' });
  const out = h('div', { 'aria-live': 'polite' });
  const form = h('form', { class: 'card stack', id: 'token-add' }, h('h2', {}, 'Make a token'),
    h('div', { class: 'filters' }, field('Name', name, 'What uses it, e.g. "home-assistant".'),
      field('Lifetime (days)', days, 'Empty: the server’s longest (90 days by default).')),
    out, h('button', { type: 'submit', class: 'primary' }, 'Make token'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    fill(out);
    const body = { name: name.value.trim(), ...(days.value ? { ttl_s: Number(days.value) * DAY } : {}) };
    try {
      const made = await api('/api/tokens', { method: 'POST', body });
      form.reset();
      const secret = h('input', { readonly: true, value: made.token, id: 'token-secret', 'aria-label': 'The new token' });
      modal('Your new token', h('div', { class: 'stack' },
        h('p', {}, 'Copy it now: it is not shown again.'), secret,
        h('p', { class: 'muted' }, `Expires ${fmtTime(made.expires)}.`)));
      secret.select();
      await refresh();
    } catch (err) { fill(out, errorBox(err)); }
  });
  return form;
}
