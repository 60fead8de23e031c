// Log in: name + password -> POST /api/login (sets the session and CSRF cookies).

import { api } from './api.js';
import { errorBox, field, fill, h } from './ui.js';

export function render(ctx) {
  document.title = 'Log in — Vigil';
  const name = h('input', { name: 'username', autocomplete: 'username', required: true });
  const password = h('input', {
    type: 'password', name: 'password', autocomplete: 'current-password', required: true,
  });
  const problem = h('div', { 'aria-live': 'polite' });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Log in');
  const form = h('form', { class: 'card narrow stack', id: 'login-form' },
    h('h1', {}, 'Log in to Vigil'),
    field('User name', name), field('Password', password), problem, submit);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    submit.disabled = true;
    fill(problem);
    try {
      const me = await api('/api/login', {
        method: 'POST', body: { name: name.value.trim(), password: password.value },
      });
      ctx.loggedIn(me);
    } catch (err) {
      fill(problem, errorBox(err));
      password.select();
    } finally {
      submit.disabled = false;
    }
  });
  ctx.root.append(form);
  name.focus();
}
