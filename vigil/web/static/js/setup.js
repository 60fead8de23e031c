// First run: no user exists yet, so create the first admin (POST /api/setup), then log in.
// There is no default password; this page only works while /api/health says setup_required,
// and, when the server was started by `vigil serve`, with the one-time link it printed
// (#/setup?token=…): nobody else on the network can create the first admin.

import { api } from './api.js';
import { go } from './router.js';
import { errorBox, field, fill, h } from './ui.js';

export async function render(ctx) {
  document.title = 'First-run setup — Vigil';
  const health = await api('/api/health');
  if (!health.setup_required) { go('login'); return; }
  const name = h('input', { name: 'username', autocomplete: 'username', required: true, value: 'admin' });
  const password = h('input', {
    type: 'password', autocomplete: 'new-password', required: true, minlength: 8,
  });
  const again = h('input', { type: 'password', autocomplete: 'new-password', required: true });
  const problem = h('div', { 'aria-live': 'polite' });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Create administrator');
  const form = h('form', { class: 'card narrow stack', id: 'setup-form' },
    h('h1', {}, 'Welcome to Vigil'),
    h('p', {}, 'No user exists yet. Create the first administrator; there is no default password.'),
    ctx.query.token ? null
      : h('p', { class: 'muted' }, 'Open the setup link that vigil serve printed in its terminal.'),
    field('Administrator name', name),
    field('Password', password, 'At least 8 characters.'),
    field('Repeat password', again),
    problem, submit);
  again.addEventListener('input', () => again.setCustomValidity(''));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (password.value !== again.value) {
      again.setCustomValidity('The passwords differ.');
      again.reportValidity();
      return;
    }
    submit.disabled = true;
    fill(problem);
    try {
      const body = { name: name.value.trim(), password: password.value };
      await api('/api/setup', { method: 'POST', body: { ...body, token: ctx.query.token } });
      ctx.loggedIn(await api('/api/login', { method: 'POST', body }));
    } catch (err) {
      fill(problem, errorBox(err));
    } finally {
      submit.disabled = false;
    }
  });
  ctx.root.append(form);
  password.focus();
}
