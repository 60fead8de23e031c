// Events: filters (camera, label, zone, line, time range), newest first, cursor pagination;
// redacted thumbnails; a click opens a dialog that plays the event's clip (cut from the
// recordings with pre/post-roll and redacted by the server in the background; "preparing…"
// with its progress when not ready yet) with evidence-lock and export (a job: progress, then
// the download link) buttons for operators. New events (polled every 5 s) are announced, not
// inserted, so the list does not jump under the reader's eyes. Review workflow: filter
// unreviewed events; operators mark one (in its dialog) or every event shown as reviewed.

import { api, can, qs, seg } from './api.js';
import { clipJob, followJob, pinnedClip, progressLine } from './jobs.js';
import { setQuery } from './router.js';
import {
  KNOWN_CLASSES, empty, errorBox, every, field, fill, fmtTime, fromLocalInput, h, header, message,
  modal, select, toLocalInput, toast,
} from './ui.js';

/** Times a clip is prepared again before it plays (see the event dialog). */
const CLIP_ROUNDS = 8;
/** Times a clip whose cut was replaced under the player is opened again where it was. */
const CLIP_REPLACED_TRIES = 3;

export async function render(ctx) {
  document.title = 'Events — Vigil';
  const cameras = await api('/api/cameras');
  const q = ctx.query;
  const form = h('form', { class: 'filters', id: 'event-filters' });
  const camera = select([['', 'All cameras'], ...cameras.map((c) => c.name)], q.camera || '', { name: 'camera' });
  const label = select([['', 'All labels'], ...KNOWN_CLASSES], q.label || '', { name: 'label' });
  const zone = h('input', { name: 'zone', value: q.zone || '', placeholder: 'any' });
  const line = h('input', { name: 'line', value: q.line || '', placeholder: 'any' });
  const start = h('input', { type: 'datetime-local', name: 'start', value: q.start ? toLocalInput(Number(q.start)) : '' });
  const end = h('input', { type: 'datetime-local', name: 'end', value: q.end ? toLocalInput(Number(q.end)) : '' });
  const reviewed = select([['', 'All'], ['false', 'Unreviewed'], ['true', 'Reviewed']], q.reviewed || '', { name: 'reviewed' });
  fill(form, field('Camera', camera), field('Label', label), field('Zone', zone),
    field('Line', line), field('From', start), field('To', end), field('Review', reviewed),
    h('div', { class: 'field' }, h('button', { type: 'submit', class: 'primary' }, 'Filter')));
  const fresh = h('button', { type: 'button', class: 'notice', hidden: true });
  const list = h('div', { class: 'event-list', id: 'event-list' });
  const more = h('button', { type: 'button', hidden: true }, 'Load more');
  // The list being loaded: "mark shown" marks what the load shows, not the cards it is about
  // to replace (a load answered after the marks would show them unreviewed again).
  let loading = Promise.resolve();
  const markAll = can(ctx.me, 'operate')
    ? h('button', { type: 'button', id: 'events-mark-reviewed', onclick: async () => { await loading; await markShown(list); } }, 'Mark shown as reviewed')
    : null;
  ctx.root.append(header('Events', markAll), form, fresh, list, more);

  let cursor = null;
  const filters = () => ({
    camera: camera.value, label: label.value, zone: zone.value.trim(), line: line.value.trim(),
    start: fromLocalInput(start.value), end: fromLocalInput(end.value), reviewed: reviewed.value,
  });
  const load = (append) => {
    loading = loadPage(append);
    return loading;
  };
  let loads = 0; // only the newest load fills the list: an older one may answer after it
  const loadPage = async (append) => {
    const mine = ++loads;
    let page;
    list.setAttribute('aria-busy', 'true');
    try {
      page = await api('/api/events', { query: { ...filters(), cursor: append ? cursor : null, limit: 48 } });
    } catch (err) {
      page = err;
    }
    if (mine !== loads) return;
    list.setAttribute('aria-busy', 'false');
    if (page instanceof Error) {
      fill(list, errorBox(page));
      return;
    }
    cursor = page.next_cursor;
    more.hidden = !cursor;
    if (!append) fill(list);
    if (!append && !page.items.length) {
      list.append(empty('No events yet.', 'Events appear here when a camera sees something its rules care about.'));
    }
    for (const ev of page.items) list.append(card(ev, ctx.me));
  };
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const f = filters();
    setQuery({ ...f, start: f.start ? Math.floor(f.start) : null, end: f.end ? Math.floor(f.end) : null });
    fresh.hidden = true;
    load(false);
  });
  more.addEventListener('click', () => load(true));
  fresh.addEventListener('click', () => { fresh.hidden = true; load(false); });
  await load(false);
  if (ctx.query.open) openEvent(ctx.query.open, ctx.me);
  return liveNotices(fresh, filters);
}

/**
 * Announce events newer than the list's newest: poll the first page every 5 s. (Polling, not
 * the /api/ws/events WebSocket: the server applies the page's filters in its query, and an
 * event pushed while a socket was reconnecting could not be missed.)
 */
function liveNotices(button, filters) {
  let newest = null;
  const stop = every(5000, async () => {
    const page = await api('/api/events', { query: { ...filters(), limit: 20 } });
    const ids = page.items.map((ev) => ev.id);
    if (newest === null) { newest = ids[0] || ''; return; }
    const fresh = newest ? ids.indexOf(newest) : ids.length;
    const count = fresh < 0 ? ids.length : fresh;
    button.textContent = `${count}${count >= 20 ? '+' : ''} new event${count === 1 ? '' : 's'} — show`;
    button.hidden = count === 0;
  });
  button.addEventListener('click', () => { newest = null; });
  return stop;
}

function card(ev, me) {
  const thumb = ev.has_snapshot
    ? h('img', { src: `/api/events/${seg(ev.id)}/snapshot`, alt: `${ev.label} at ${fmtTime(ev.start)} (redacted)`, loading: 'lazy' })
    : h('div', { class: 'no-thumb' }, 'no snapshot');
  const where = [...ev.zones.map((z) => `zone ${z}`), ...ev.lines.map((l) => `line ${l}`)].join(', ');
  return h('button', {
    type: 'button', class: ev.reviewed ? 'event-card reviewed' : 'event-card',
    dataset: { event: ev.id, ended: ev.end ? '1' : '0', reviewed: ev.reviewed ? '1' : '0' },
    onclick: () => openEvent(ev.id, me),
  }, thumb,
  h('span', { class: 'event-meta' },
    h('strong', {}, ev.label), ` · ${ev.camera}`, h('br'),
    h('span', { class: 'muted' }, fmtTime(ev.start), ev.end ? ` · ${(ev.end - ev.start).toFixed(1)} s` : ' · ongoing'),
    where ? h('span', { class: 'muted block' }, where) : null,
    ev.evidence_lock ? h('span', { class: 'badge' }, 'locked') : null,
    ev.reviewed ? h('span', { class: 'badge quiet' }, 'reviewed') : null));
}

/** Mark every unreviewed event shown in `list` as reviewed, in one request. */
async function markShown(list) {
  const cards = [...list.querySelectorAll('.event-card[data-reviewed="0"]')];
  if (!cards.length) { toast('Every event shown is reviewed already.'); return; }
  try {
    const out = await api('/api/events/review', { method: 'POST', body: { ids: cards.map((c) => c.dataset.event), reviewed: true } });
    for (const c of cards) {
      if (!out.events.includes(c.dataset.event)) continue;
      c.dataset.reviewed = '1';
      c.classList.add('reviewed');
    }
    toast(`${out.events.length} event(s) marked reviewed.`);
  } catch (err) { toast(message(err), 'error'); }
}

/** The event dialog: its clip, details, and the operator's lock/export buttons. */
export async function openEvent(id, me) {
  let ev;
  try {
    ev = await api(`/api/events/${seg(id)}`);
  } catch (err) {
    toast(message(err), 'error');
    return;
  }
  const clipUrl = `/api/events/${seg(ev.id)}/clip${qs({ unredacted: 'false' })}`;
  const video = h('video', {
    controls: true, autoplay: true, muted: true, playsinline: true, preload: 'auto', class: 'clip',
  });
  const note = h('p', { class: 'muted', 'aria-live': 'polite' }, 'Loading the clip (redacted)…');
  const noClip = (text) => { fill(note, text); note.className = 'state-error'; };
  video.addEventListener('loadeddata', () => { fill(note, 'Redacted clip with pre- and post-roll.'); });
  const stopped = new AbortController();
  let replaced = 0;
  video.addEventListener('error', () => {
    if (!video.getAttribute('src')) return;
    // The cut it played was replaced by a newer one and is gone (410): go on with the new
    // cut where the player was, a few times at most.
    if (replaced < CLIP_REPLACED_TRIES) {
      replaced += 1;
      const at = video.currentTime;
      video.addEventListener('loadedmetadata', () => { video.currentTime = at; }, { once: true });
      play();
      return;
    }
    noClip('No clip: no recording covers this event (the camera may record on events or motion only, or the segments were deleted).');
  });
  // The server renders each clip when its event ends; one not ready yet is prepared first
  // (202 with the job's progress), then played from the server's cache.
  // A clip asked for just after its event ended can be prepared again once its job is done:
  // the post-roll's next segment landed meanwhile and the cached clip no longer covers the
  // recordings as they are. So ask again until it is ready, rather than hand the player a
  // URL that answers 202 (it would wait for ever).
  // The player's range requests name the cut the answer did: a newer cut that replaces it
  // meanwhile (the complete clip after one cut during the post-roll) would otherwise hand it
  // bytes of another file.
  const play = async () => {
    try {
      let ready = await clipJob(clipUrl, stopped.signal);
      for (let round = 0; ready.job && round < CLIP_ROUNDS; round += 1) {
        const line = progressLine('Preparing the redacted clip');
        fill(note, line.node);
        await followJob(ready.job, line.set, stopped.signal);
        ready = await clipJob(clipUrl, stopped.signal);
      }
      video.src = pinnedClip(clipUrl, ready.cut);
    } catch (err) {
      if (err && err.name === 'AbortError') return;
      noClip(err.code === 'no_recording' ? 'No clip: no recording covers this event (the camera may record on events or motion only, or the segments were deleted).' : `No clip: ${message(err)}`);
    }
  };
  play();
  const rows = [['Camera', ev.camera], ['Label', ev.label], ['Track', ev.track_id],
    ['Start', fmtTime(ev.start)], ['End', ev.end ? fmtTime(ev.end) : 'ongoing'],
    ['Zones', ev.zones.join(', ') || '—'], ['Lines', ev.lines.join(', ') || '—'],
    ['Score', ev.top_score.toFixed(2)], ['Evidence lock', ev.evidence_lock ? 'yes' : 'no'],
    ['Reviewed', ev.reviewed ? 'yes' : 'no']];
  const details = h('dl', { class: 'details' }, rows.map(([k, v]) => [h('dt', {}, k), h('dd', {}, String(v))]));
  const actions = h('div', { class: 'actions' });
  const output = h('div', { 'aria-live': 'polite' });
  if (can(me, 'operate')) {
    const lock = h('button', { type: 'button', id: 'event-lock' }, ev.evidence_lock ? 'Remove evidence lock' : 'Evidence lock');
    lock.addEventListener('click', async () => {
      try {
        const out = await api(`/api/events/${seg(ev.id)}/lock`, { method: 'POST', body: { locked: !ev.evidence_lock } });
        ev.evidence_lock = out.locked;
        lock.textContent = ev.evidence_lock ? 'Remove evidence lock' : 'Evidence lock';
        toast(out.locked ? `Locked, with ${out.segments} recorded segment(s).` : 'Lock removed.');
      } catch (err) { toast(message(err), 'error'); }
    });
    const exportButton = h('button', { type: 'button', id: 'event-export' }, 'Export (redacted)');
    exportButton.addEventListener('click', async () => {
      exportButton.disabled = true;
      const line = progressLine('Exporting');
      fill(output, line.node);
      try {
        const end = ev.end || Date.now() / 1000;
        const job = await api('/api/exports', { method: 'POST', body: { camera: ev.camera, start: ev.start - 5, end: end + 5 } });
        const out = (await followJob(job, line.set, stopped.signal)).result;
        fill(output, h('p', {}, 'Export ready: ', h('a', { href: out.url, download: out.name }, out.name),
          ' · ', h('a', { href: out.manifest_url, target: '_blank', rel: 'noopener' }, 'signed manifest')));
      } catch (err) {
        if (!err || err.name !== 'AbortError') fill(output, errorBox(err));
      } finally { exportButton.disabled = false; }
    });
    const review = h('button', { type: 'button', id: 'event-review' }, ev.reviewed ? 'Mark unreviewed' : 'Mark reviewed');
    review.addEventListener('click', async () => {
      try {
        const out = await api(`/api/events/${seg(ev.id)}/review`, { method: 'POST', body: { reviewed: !ev.reviewed } });
        ev.reviewed = out.reviewed;
        review.textContent = ev.reviewed ? 'Mark unreviewed' : 'Mark reviewed';
        const shown = document.querySelector(`.event-card[data-event="${CSS.escape(ev.id)}"]`);
        if (shown) { shown.dataset.reviewed = ev.reviewed ? '1' : '0'; shown.classList.toggle('reviewed', ev.reviewed); }
      } catch (err) { toast(message(err), 'error'); }
    });
    actions.append(review, lock, exportButton);
  }
  modal(`${ev.label} on ${ev.camera}`, [video, note, details, actions, output], {
    wide: true, onclose: () => { stopped.abort(); video.pause(); video.removeAttribute('src'); video.load(); },
  });
}
