// Users (admins): list, add, change role and camera scope, disable/enable, set a password.
// Every change is audited by the server; disabling a user ends their sessions.

import { api, seg } from './api.js';
import { errorBox, field, fill, fmtTime, h, header, message, modal, select, toast } from './ui.js';

const ROLES = ['viewer', 'operator', 'auditor', 'admin'];

export async function render(ctx) {
  document.title = 'Users — Vigil';
  const [users, cameras] = await Promise.all([api('/api/users'), api('/api/cameras')]);
  const cameraNames = cameras.map((c) => c.name);
  const body = h('tbody');
  const table = h('table', { id: 'users-table' },
    h('thead', {}, h('tr', {}, ['Name', 'Role', 'Cameras', 'Status', 'Created', ''].map((t) => h('th', { scope: 'col' }, t)))),
    body);
  const refresh = async () => {
    const fresh = await api('/api/users');
    fill(body, fresh.map((u) => row(u, ctx.me, cameraNames, refresh)));
  };
  fill(body, users.map((u) => row(u, ctx.me, cameraNames, refresh)));
  ctx.root.append(header('Users'), h('div', { class: 'table-wrap' }, table), addForm(cameraNames, refresh));
  return null;
}

function scopeText(cameras) { return cameras === null ? '' : cameras.join(', '); }

function parseScope(text) {
  const names = text.split(',').map((s) => s.trim()).filter(Boolean);
  return names.length ? names : null;
}

function row(u, me, cameraNames, refresh) {
  const role = select(ROLES, u.role, { 'aria-label': `Role of ${u.name}` });
  const scope = h('input', {
    value: scopeText(u.cameras), placeholder: 'all cameras', list: 'camera-names',
    'aria-label': `Cameras of ${u.name} (comma-separated; empty = all)`,
  });
  const apply = h('button', { type: 'button' }, 'Save');
  const toggle = h('button', { type: 'button', class: u.disabled ? '' : 'danger', disabled: u.name === me.name },
    u.disabled ? 'Enable' : 'Disable');
  const password = h('button', { type: 'button' }, 'Set password…');
  const patch = async (body, done) => {
    try {
      await api(`/api/users/${seg(u.name)}`, { method: 'PATCH', body });
      toast(done);
      await refresh();
    } catch (err) { toast(message(err), 'error'); }
  };
  apply.addEventListener('click', () => {
    const cams = parseScope(scope.value);
    const unknown = (cams || []).filter((c) => !cameraNames.includes(c));
    if (unknown.length) { toast(`Unknown camera(s): ${unknown.join(', ')}`, 'error'); return; }
    patch({ role: role.value, ...(cams === null ? { clear_cameras: true } : { cameras: cams }) }, `Saved ${u.name}.`);
  });
  toggle.addEventListener('click', () => patch({ disabled: !u.disabled }, `${u.name} ${u.disabled ? 'enabled' : 'disabled'}.`));
  password.addEventListener('click', () => {
    const input = h('input', { type: 'password', autocomplete: 'new-password', minlength: 8, required: true });
    const form = h('form', { method: 'dialog', class: 'stack' }, field(`New password for ${u.name}`, input, 'Their sessions end.'),
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Set password')));
    form.addEventListener('submit', () => patch({ password: input.value }, `Password of ${u.name} changed.`));
    modal('Set password', form);
    input.focus();
  });
  return h('tr', { dataset: { user: u.name }, class: u.disabled ? 'disabled' : '' },
    h('th', { scope: 'row' }, u.name), h('td', {}, role), h('td', {}, scope),
    h('td', {}, u.disabled ? 'disabled' : 'active'), h('td', {}, fmtTime(u.created)),
    h('td', { class: 'actions' }, apply, toggle, password));
}

function addForm(cameraNames, refresh) {
  const name = h('input', { name: 'name', required: true, pattern: '[A-Za-z0-9_.@\\-]+', autocomplete: 'off' });
  const role = select(ROLES, 'viewer', { name: 'role' });
  const password = h('input', { type: 'password', name: 'password', required: true, minlength: 8, autocomplete: 'new-password' });
  const scope = h('input', { name: 'cameras', placeholder: 'all cameras', list: 'camera-names' });
  const out = h('div', { 'aria-live': 'polite' });
  const form = h('form', { class: 'card stack', id: 'user-add' }, h('h2', {}, 'Add a user'),
    h('div', { class: 'filters' }, field('Name', name), field('Role', role), field('Password', password, 'At least 8 characters.'),
      field('Cameras', scope, 'Comma-separated; empty = all.')),
    h('datalist', { id: 'camera-names' }, cameraNames.map((c) => h('option', { value: c }))),
    out, h('button', { type: 'submit', class: 'primary' }, 'Add user'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    fill(out);
    try {
      await api('/api/users', { method: 'POST', body: {
        name: name.value.trim(), role: role.value, password: password.value, cameras: parseScope(scope.value),
      } });
      toast(`User ${name.value.trim()} added.`);
      form.reset();
      await refresh();
    } catch (err) { fill(out, errorBox(err)); }
  });
  return form;
}
