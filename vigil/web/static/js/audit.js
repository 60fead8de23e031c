// Audit log (auditors and admins): the hash chain's verification status, then the records
// in chain order with filters (actor, action, time), paged by sequence number.

import { api } from './api.js';
import { setQuery } from './router.js';
import { empty, errorBox, field, fill, fmtTime, fromLocalInput, h, header, toLocalInput } from './ui.js';

const PAGE = 1000;

export async function render(ctx) {
  document.title = 'Audit log — Vigil';
  const q = ctx.query;
  const verify = h('div', { id: 'audit-verify', 'aria-live': 'polite' }, 'Verifying the chain…');
  const actor = h('input', { name: 'actor', value: q.actor || '', placeholder: 'any' });
  const action = h('input', { name: 'action', value: q.action || '', placeholder: 'e.g. camera.live' });
  const start = h('input', { type: 'datetime-local', value: q.start ? toLocalInput(Number(q.start)) : '' });
  const end = h('input', { type: 'datetime-local', value: q.end ? toLocalInput(Number(q.end)) : '' });
  const form = h('form', { class: 'filters' }, field('Actor', actor), field('Action', action),
    field('From', start), field('To', end),
    h('div', { class: 'field' }, h('button', { type: 'submit', class: 'primary' }, 'Filter')));
  const body = h('tbody');
  const table = h('table', { id: 'audit-table' },
    h('thead', {}, h('tr', {}, ['#', 'Time', 'Actor', 'Action', 'Target', 'From', 'Reason', 'Details']
      .map((t) => h('th', { scope: 'col' }, t)))), body);
  const status = h('div');
  const more = h('button', { type: 'button', hidden: true }, 'Next records');
  const recheck = h('button', { type: 'button' }, 'Verify again');
  ctx.root.append(header('Audit log', recheck), verify, form, status, h('div', { class: 'table-wrap' }, table), more);

  const check = async () => {
    try {
      const v = await api('/api/audit/verify');
      fill(verify, v.ok
        ? h('p', { class: 'state-ok', role: 'status' }, `Chain verified: ${v.records} record(s), intact up to #${v.head_seq}.`)
        : h('p', { class: 'state-error', role: 'alert' },
          `Chain broken at record #${v.first_bad_seq}: ${v.problem}. Records may have been edited or deleted.`));
      verify.dataset.ok = String(v.ok);
    } catch (err) {
      fill(verify, errorBox(err));
    }
  };
  let afterSeq = 0;
  const filters = () => ({ actor: actor.value.trim(), action: action.value.trim(),
    start: fromLocalInput(start.value), end: fromLocalInput(end.value) });
  const load = async (append) => {
    if (!append) { afterSeq = 0; fill(body); fill(status); }
    let rows;
    try {
      rows = await api('/api/audit', { query: { ...filters(), after_seq: afterSeq, limit: PAGE } });
    } catch (err) {
      fill(status, errorBox(err));
      return;
    }
    if (!append && !rows.length) fill(status, empty('No audit records match.'));
    for (const r of rows) {
      body.append(h('tr', { dataset: { action: r.action } },
        h('td', { class: 'num' }, String(r.seq)), h('td', {}, fmtTime(r.time)), h('td', {}, r.actor),
        h('td', {}, h('code', {}, r.action)), h('td', {}, r.target), h('td', {}, r.source || '—'),
        h('td', {}, r.reason || ''), h('td', { class: 'details-cell' }, JSON.stringify(r.details))));
    }
    if (rows.length) afterSeq = rows[rows.length - 1].seq;
    more.hidden = rows.length < PAGE;
  };
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const f = filters();
    setQuery({ ...f, start: f.start && Math.floor(f.start), end: f.end && Math.floor(f.end) });
    load(false);
  });
  more.addEventListener('click', () => load(true));
  recheck.addEventListener('click', check);
  await Promise.all([check(), load(false)]);
  return null;
}
