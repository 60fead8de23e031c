// Recordings: a 24-hour timeline per camera on a <canvas> — recorded spans, segments with
// motion, events — zoomable (wheel, buttons, +/- keys) and pannable (drag, arrow keys).
// A click plays from that moment: operators play the recorded segments themselves
// (unredacted stream copy, audited), continuing into the next segment; viewers get a
// redacted export of a short window, since segments are unredacted.
// Hovering shows the redacted preview thumbnail nearest to the pointer's time (made at record
// time; the segments list when theirs were taken; GET /api/recordings/{camera}/preview?at=
// that exact time), with its time, above the timeline.

import { api, can, seg } from './api.js';
import { followJob, progressLine } from './jobs.js';
import { setQuery } from './router.js';
import { empty, errorBox, field, fill, fmtTime, h, header, message, select, sharpCanvas } from './ui.js';

const DAY = 86400;
const VIEWER_WINDOW_S = 30;
const MIN_SPAN_S = 60;
// At most one preview request in flight, and at least this long between two (ms); each
// preview has one URL (its own time), so the browser's cache answers a second hover.
const PREVIEW_GAP_MS = 120;
// How far from the pointer's time a preview may be and still be shown (the API's limit).
const PREVIEW_REACH_S = 10;

export async function render(ctx) {
  document.title = 'Recordings — Vigil';
  const cameras = await api('/api/cameras');
  if (!cameras.length) {
    ctx.root.append(header('Recordings'), empty('No cameras to show.'));
    return null;
  }
  const names = cameras.map((c) => c.name);
  const camera = select(names, names.includes(ctx.query.camera) ? ctx.query.camera : names[0], { id: 'rec-camera' });
  const today = new Date();
  const dayInput = h('input', { type: 'date', id: 'rec-day', value: ctx.query.day || localDate(today) });
  const zoomIn = h('button', { type: 'button', 'aria-label': 'Zoom in' }, '+');
  const zoomOut = h('button', { type: 'button', 'aria-label': 'Zoom out' }, '−');
  const whole = h('button', { type: 'button' }, 'Whole day');
  const canvas = h('canvas', {
    class: 'timeline', id: 'timeline', tabindex: 0, height: 120,
    role: 'img', 'aria-label': 'Timeline of recordings: click to play from a moment',
  });
  const legend = h('ul', { class: 'legend' },
    h('li', {}, h('span', { class: 'swatch swatch-rec' }), 'recorded'),
    h('li', {}, h('span', { class: 'swatch swatch-motion' }), 'motion'),
    h('li', {}, h('span', { class: 'swatch swatch-event' }), 'events'));
  const tipImage = h('img', { alt: '', width: 320, height: 180, decoding: 'async' });
  const tipTime = h('span', { class: 'preview-time' });
  const tip = h('div', { class: 'preview-tip', id: 'preview-tip', hidden: true, 'aria-hidden': 'true' },
    tipImage, tipTime);
  const info = h('p', { class: 'muted', 'aria-live': 'polite' });
  const video = h('video', { controls: true, class: 'clip', playsinline: true, hidden: true, muted: true });
  const message_ = h('div', { 'aria-live': 'polite' });
  ctx.root.append(header('Recordings'),
    h('div', { class: 'filters' }, field('Camera', camera), field('Day', dayInput),
      h('div', { class: 'field zoom' }, h('span', { class: 'label' }, 'Zoom'),
        h('div', { class: 'actions' }, zoomIn, zoomOut, whole))),
    h('div', { class: 'timeline-wrap' }, canvas, tip), legend, info, message_, video);

  const tl = { segments: [], events: [], day0: 0, view: [0, DAY], playing: null, hover: null, longest: 0 };
  const previews = previewLoader(tipImage);

  const load = async () => {
    const [y, m, d] = dayInput.value.split('-').map(Number);
    tl.day0 = new Date(y, m - 1, d).getTime() / 1000;
    tl.view = [tl.day0, tl.day0 + DAY];
    setQuery({ camera: camera.value, day: dayInput.value });
    info.textContent = 'Loading…';
    try {
      [tl.segments, tl.events] = await Promise.all([
        segments(camera.value, tl.day0, tl.day0 + DAY), events(camera.value, tl.day0, tl.day0 + DAY)]);
    } catch (err) {
      fill(message_, errorBox(err));
      return;
    }
    tl.longest = tl.segments.reduce((m, sg) => Math.max(m, sg.end - sg.start), 0);
    info.textContent = tl.segments.length
      ? `${tl.segments.length} segment(s), ${tl.events.length} event(s). Click the timeline to play.`
      : 'No recordings on this day.';
    tl.view = recordedSpan(tl);
    draw(canvas, tl);
  };

  const zoom = (factor, at = (tl.view[0] + tl.view[1]) / 2) => {
    const span = Math.min(DAY, Math.max(MIN_SPAN_S, (tl.view[1] - tl.view[0]) * factor));
    let a = at - (at - tl.view[0]) * (span / (tl.view[1] - tl.view[0]));
    a = Math.min(Math.max(a, tl.day0), tl.day0 + DAY - span);
    tl.view = [a, a + span];
    draw(canvas, tl);
  };
  const pan = (fraction) => {
    const span = tl.view[1] - tl.view[0];
    const a = Math.min(Math.max(tl.view[0] + span * fraction, tl.day0), tl.day0 + DAY - span);
    tl.view = [a, a + span];
    draw(canvas, tl);
  };
  const timeAt = (clientX) => {
    const rect = canvas.getBoundingClientRect();
    return tl.view[0] + ((clientX - rect.left) / rect.width) * (tl.view[1] - tl.view[0]);
  };

  zoomIn.addEventListener('click', () => zoom(0.5));
  zoomOut.addEventListener('click', () => zoom(2));
  whole.addEventListener('click', () => zoom(Infinity));
  canvas.addEventListener('wheel', (event) => {
    event.preventDefault();
    zoom(event.deltaY < 0 ? 0.8 : 1.25, timeAt(event.clientX));
  }, { passive: false });
  let drag = null;
  canvas.addEventListener('pointerdown', (event) => { drag = { x: event.clientX, view: [...tl.view], moved: false }; });
  const showPreview = (clientX) => {
    const t = tl.hover;
    const at = t === null || drag ? null : nearestPreview(tl.segments, t, tl.longest);
    if (at === null) { tip.hidden = true; return; }
    const rect = canvas.getBoundingClientRect();
    previews.want(`/api/recordings/${seg(camera.value)}/preview?at=${at.toFixed(3)}`);
    tipTime.textContent = fmtTime(at).slice(11);
    const width = tip.offsetWidth || 240;
    tip.style.left = `${Math.min(Math.max(0, clientX - rect.left - width / 2), rect.width - width)}px`;
    tip.hidden = false;
  };
  canvas.addEventListener('pointermove', (event) => {
    tl.hover = timeAt(event.clientX);
    showPreview(event.clientX);
    if (drag && Math.abs(event.clientX - drag.x) > 4) {
      drag.moved = true;
      const rect = canvas.getBoundingClientRect();
      const shift = ((drag.x - event.clientX) / rect.width) * (drag.view[1] - drag.view[0]);
      const span = drag.view[1] - drag.view[0];
      const a = Math.min(Math.max(drag.view[0] + shift, tl.day0), tl.day0 + DAY - span);
      tl.view = [a, a + span];
    }
    draw(canvas, tl);
  });
  canvas.addEventListener('pointerleave', () => { tl.hover = null; tip.hidden = true; draw(canvas, tl); });
  canvas.addEventListener('pointerup', (event) => {
    const wasDrag = drag && drag.moved;
    drag = null;
    if (!wasDrag) play(timeAt(event.clientX));
  });
  canvas.addEventListener('keydown', (event) => {
    const keys = { ArrowLeft: () => pan(-0.1), ArrowRight: () => pan(0.1), '+': () => zoom(0.5),
      '=': () => zoom(0.5), '-': () => zoom(2), Enter: () => play((tl.view[0] + tl.view[1]) / 2) };
    if (keys[event.key]) { event.preventDefault(); keys[event.key](); }
  });

  const play = async (t) => {
    const found = tl.segments.find((s) => s.end > t);
    if (!found) { fill(message_, h('p', { class: 'muted' }, 'Nothing recorded after that moment.')); return; }
    const from = Math.max(t, found.start);
    fill(message_);
    if (can(ctx.me, 'operate')) playSegments(found, from);
    else await playExport(from);
  };

  const playSegments = (first, from) => {
    let current = first;
    const startAt = (s, offset) => {
      current = s;
      video.src = `/api/recordings/${seg(s.id)}/media`;
      video.hidden = false;
      video.addEventListener('loadedmetadata', () => {
        video.currentTime = Math.max(0, offset);
        video.play().catch(() => {});
      }, { once: true });
    };
    video.onended = () => {
      const next = tl.segments.find((s) => s.start >= current.end - 0.5 && s.id !== current.id);
      if (next) startAt(next, 0);
    };
    video.ontimeupdate = () => { tl.playing = current.start + video.currentTime; draw(canvas, tl); };
    startAt(first, from - first.start);
    info.textContent = `Playing ${camera.value} from ${fmtTime(from)} (recorded stream, audited).`;
  };

  const playExport = async (from) => {
    fill(message_, h('p', { class: 'muted' }, `Viewers see redacted video: preparing ${VIEWER_WINDOW_S} s from ${fmtTime(from)}…`));
    try {
      const job = await api('/api/exports', { method: 'POST', body: { camera: camera.value, start: from, end: from + VIEWER_WINDOW_S } });
      const line = progressLine(`Preparing ${VIEWER_WINDOW_S} s of redacted video from ${fmtTime(from)}`);
      fill(message_, line.node);
      const out = (await followJob(job, line.set)).result;
      video.onended = null;
      video.ontimeupdate = () => { tl.playing = from + video.currentTime; draw(canvas, tl); };
      video.src = out.url;
      video.hidden = false;
      video.play().catch(() => {});
      fill(message_, h('p', { class: 'muted' }, `Redacted export of ${VIEWER_WINDOW_S} s from ${fmtTime(from)}.`));
    } catch (err) {
      fill(message_, h('div', { class: 'state state-error', role: 'alert' }, h('p', {}, `Cannot play: ${message(err)}`)));
    }
  };

  camera.addEventListener('change', load);
  dayInput.addEventListener('change', load);
  const onResize = () => draw(canvas, tl);
  window.addEventListener('resize', onResize);
  await load();
  return () => {
    window.removeEventListener('resize', onResize);
    video.pause();
    video.removeAttribute('src');
  };
}

/**
 * The time of the preview nearest to ``t`` (within PREVIEW_REACH_S), from the segments'
 * ``preview_offsets``, or null. ``segments`` are sorted by start and none is longer than
 * ``longest`` seconds: a binary search finds the first one that may hold it.
 */
function nearestPreview(segments, t, longest) {
  let lo = 0;
  let hi = segments.length;
  while (lo < hi) { // the first segment starting after t - reach - the longest segment
    const mid = (lo + hi) >> 1;
    if (segments[mid].start < t - PREVIEW_REACH_S - longest) lo = mid + 1; else hi = mid;
  }
  let best = null;
  for (let i = lo; i < segments.length && segments[i].start <= t + PREVIEW_REACH_S; i += 1) {
    const s = segments[i];
    for (const offset of s.preview_offsets || []) {
      const when = s.start + offset / 1000;
      if (Math.abs(when - t) <= PREVIEW_REACH_S && (best === null || Math.abs(when - t) < Math.abs(best - t))) best = when;
    }
  }
  return best;
}

/**
 * Loads preview images into ``img`` without flooding the server: one request at a time, at
 * least PREVIEW_GAP_MS apart; while one loads, only the latest wanted URL waits (the pointer
 * moved on from the others). A preview seen before comes from the browser's cache (private,
 * 10 min).
 */
function previewLoader(img) {
  let loading = false;
  let pending = null;
  let last = 0;
  let shown = null;
  const start = () => {
    const url = pending;
    pending = null;
    if (url === null || url === shown) return;
    loading = true;
    last = performance.now();
    shown = url;
    img.src = url;
  };
  const done = () => {
    loading = false;
    if (pending !== null) setTimeout(start, Math.max(0, PREVIEW_GAP_MS - (performance.now() - last)));
  };
  img.addEventListener('load', () => { img.style.visibility = 'visible'; done(); });
  img.addEventListener('error', () => { img.style.visibility = 'hidden'; done(); });
  return {
    want(url) {
      pending = url;
      if (!loading && performance.now() - last >= PREVIEW_GAP_MS) start();
      else if (!loading) {
        loading = true; // a timer is due: no second one
        setTimeout(() => { loading = false; start(); }, PREVIEW_GAP_MS - (performance.now() - last));
      }
    },
  };
}

/**
 * The part of the day that holds recordings, with a margin (at least 10 minutes), so a day
 * opens where there is something to see; the whole day when nothing was recorded.
 */
function recordedSpan(tl) {
  if (!tl.segments.length) return [tl.day0, tl.day0 + DAY];
  const first = Math.max(tl.day0, Math.min(...tl.segments.map((s) => s.start)));
  const last = Math.min(tl.day0 + DAY, Math.max(...tl.segments.map((s) => s.end)));
  const span = Math.min(DAY, Math.max(600, (last - first) * 1.2));
  const middle = (first + last) / 2;
  const a = Math.min(Math.max(middle - span / 2, tl.day0), tl.day0 + DAY - span);
  return [a, a + span];
}

function localDate(d) {
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

/** All segments of [start, end) (the API returns at most 1000 per call, oldest first). */
async function segments(camera, start, end) {
  const out = [];
  let from = start;
  for (let page = 0; page < 12; page += 1) {
    const batch = await api('/api/recordings', { query: { camera, start: from, end, limit: 1000 } });
    const fresh = batch.filter((s) => !out.length || s.id !== out[out.length - 1].id && s.start >= out[out.length - 1].start);
    out.push(...fresh);
    if (batch.length < 1000 || !fresh.length) break;
    from = out[out.length - 1].end;
  }
  return out;
}

/** Events of [start, end) (cursor pages of 1000, at most 5). */
async function events(camera, start, end) {
  const out = [];
  let cursor = null;
  for (let page = 0; page < 5; page += 1) {
    const got = await api('/api/events', { query: { camera, start, end, cursor, limit: 1000 } });
    out.push(...got.items);
    cursor = got.next_cursor;
    if (!cursor) break;
  }
  return out;
}

/** Draw the timeline: hour ticks, recorded spans, motion, events, playhead, hover time. */
function draw(canvas, tl) {
  const height = 120;
  const { g, width } = sharpCanvas(canvas, height);
  const colors = palette();
  g.fillStyle = colors.bg;
  g.fillRect(0, 0, width, height);
  const [a, b] = tl.view;
  // The span shown, in UNIX seconds: what a script (or a test) needs to point at a moment.
  canvas.dataset.view = `${a} ${b}`;
  const x = (t) => ((t - a) / (b - a)) * width;
  const rows = { rec: [8, 26], motion: [40, 18], event: [64, 18] };
  // Recorded spans (segments merged when they touch), then motion, then events.
  g.fillStyle = colors.rec;
  for (const [s, e] of merge(tl.segments.map((sg) => [sg.start, sg.end]))) {
    if (e < a || s > b) continue;
    g.fillRect(x(s), rows.rec[0], Math.max(1, x(e) - x(s)), rows.rec[1]);
  }
  g.fillStyle = colors.motion;
  for (const [s, e] of merge(tl.segments.filter((sg) => sg.has_motion).map((sg) => [sg.start, sg.end]))) {
    if (e < a || s > b) continue;
    g.fillRect(x(s), rows.motion[0], Math.max(1, x(e) - x(s)), rows.motion[1]);
  }
  g.fillStyle = colors.event;
  for (const ev of tl.events) {
    const e = ev.end || Date.now() / 1000;
    if (e < a || ev.start > b) continue;
    g.fillRect(x(ev.start), rows.event[0], Math.max(2, x(e) - x(ev.start)), rows.event[1]);
  }
  // Time ticks: a step that gives ~8 labels across the view.
  const steps = [60, 300, 600, 1800, 3600, 7200, 10800, 21600];
  const step = steps.find((s) => (b - a) / s <= 10) || 21600;
  g.fillStyle = colors.text;
  g.strokeStyle = colors.grid;
  g.font = '11px system-ui, sans-serif';
  g.textBaseline = 'top';
  const offset = new Date(a * 1000).getTimezoneOffset() * 60;
  for (let t = Math.ceil((a - offset) / step) * step + offset; t <= b; t += step) {
    g.beginPath();
    g.moveTo(x(t) + 0.5, 0);
    g.lineTo(x(t) + 0.5, 86);
    g.stroke();
    const d = new Date(t * 1000);
    g.fillText(`${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`, x(t) + 2, 90);
  }
  for (const [t, color] of [[tl.playing, colors.playhead], [tl.hover, colors.text]]) {
    if (t === null || t < a || t > b) continue;
    g.fillStyle = color;
    g.fillRect(x(t) - 1, 0, 2, 86);
    if (color === colors.text) g.fillText(fmtTime(t).slice(11), Math.min(x(t) + 4, width - 50), 104);
  }
}

function merge(spans) {
  const out = [];
  for (const [s, e] of spans.sort((p, q) => p[0] - q[0])) {
    if (out.length && s <= out[out.length - 1][1] + 1) out[out.length - 1][1] = Math.max(out[out.length - 1][1], e);
    else out.push([s, e]);
  }
  return out;
}

/** Colours from the CSS custom properties (so light/dark themes apply to the canvas). */
function palette() {
  const css = getComputedStyle(document.documentElement);
  const v = (name, fallback) => css.getPropertyValue(name).trim() || fallback;
  return {
    bg: v('--timeline-bg', '#f4f6f8'), rec: v('--rec', '#3b7dd8'), motion: v('--motion', '#e69b00'),
    event: v('--event', '#d83b3b'), text: v('--text', '#222'), grid: v('--grid', '#ccd'),
    playhead: v('--playhead', '#0a0'),
  };
}
