// Counts: line crossings and zone entries over time, per class and metric, from /api/counts
// (hour, day or ISO week buckets, UTC), drawn as a line chart on a <canvas> with a legend,
// the same numbers in a table (for screen readers and copying), and a CSV download link.
// A class filter narrows everything to one class (car, bus, truck, ...). "Now" shows the
// running camera's live counters per rule and class (GET .../overlay, every 5 s): crossings,
// zone occupancy and entries, zone events (dwell, speeding, wrong way, stopped, ...) and the
// mean speed of calibrated zones.

import { api, qs, seg } from './api.js';
import { setQuery } from './router.js';
import {
  KNOWN_CLASSES, empty, errorBox, every, field, fill, h, header, select, sharpCanvas,
} from './ui.js';

const RANGES = { hour: [['1', 'last 24 hours'], ['2', 'last 48 hours'], ['7', 'last 7 days']],
  day: [['7', 'last 7 days'], ['30', 'last 30 days'], ['90', 'last 90 days']],
  week: [['28', 'last 4 weeks'], ['84', 'last 12 weeks'], ['364', 'last year']] };
const STEP = { hour: 3600, day: 86400, week: 7 * 86400 };
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];

export async function render(ctx) {
  document.title = 'Counts — Vigil';
  const cameras = await api('/api/cameras');
  if (!cameras.length) { ctx.root.append(header('Counts'), empty('No cameras to show.')); return null; }
  const names = cameras.map((c) => c.name);
  const q = ctx.query;
  const camera = select(names, names.includes(q.camera) ? q.camera : names[0], { id: 'counts-camera' });
  const rule = select([['', 'All rules']], '', { id: 'counts-rule' });
  const classes = [...new Set([...KNOWN_CLASSES, ...(q.label ? [q.label] : [])])];
  const label = select([['', 'All classes'], ...classes.map((c) => [c, c])], q.label || '', { id: 'counts-class' });
  const period = select([['hour', 'per hour'], ['day', 'per day'], ['week', 'per week']], q.period || 'hour', { id: 'counts-period' });
  const range = select([], '', { id: 'counts-range' });
  const csv = h('a', { class: 'button', id: 'counts-csv', download: 'counts.csv' }, 'Download CSV');
  const canvas = h('canvas', { class: 'chart', id: 'counts-chart', role: 'img', 'aria-label': 'Counts over time' });
  const legend = h('ul', { class: 'legend', id: 'counts-legend' });
  const table = h('div', { class: 'table-wrap' });
  const out = h('div', { 'aria-live': 'polite' });
  const now = h('div', { class: 'table-wrap', id: 'counts-now' });
  ctx.root.append(header('Counts', csv),
    h('div', { class: 'filters' }, field('Camera', camera), field('Rule', rule), field('Class', label),
      field('Period', period), field('Range', range)),
    out, canvas, legend, h('details', {}, h('summary', {}, 'Numbers as a table'), table),
    h('h3', {}, 'Now'), now);

  const fillRanges = () => {
    fill(range, RANGES[period.value].map(([v, t]) => h('option', { value: v }, t)));
    range.value = RANGES[period.value][1][0];
  };
  const fillRules = async () => {
    const rules = await api(`/api/config/cameras/${seg(camera.value)}/rules`);
    const options = [['', 'All rules'], ...Object.keys(rules.lines).map((n) => [n, `line ${n}`]),
      ...Object.keys(rules.zones).map((n) => [n, `zone ${n}`])];
    fill(rule, options.map(([v, t]) => h('option', { value: v }, t)));
    if (q.rule && options.some(([v]) => v === q.rule)) rule.value = q.rule;
  };
  let points = [];
  let window_ = [0, 0];
  const load = async () => {
    const step = STEP[period.value];
    const now = Date.now() / 1000;
    // Buckets as the server makes them: UTC, weeks from Monday (1970-01-05 was a Monday).
    const origin = period.value === 'week' ? 4 * 86400 : 0;
    const end = Math.ceil((now - origin) / step) * step + origin;
    const start = Math.floor((now - origin - Number(range.value) * 86400) / step) * step + origin;
    window_ = [start, end];
    const query = { camera: camera.value, rule: rule.value, label: label.value, period: period.value, start, end };
    setQuery({ camera: camera.value, rule: rule.value, label: label.value, period: period.value });
    csv.href = `/api/counts${qs({ ...query, format: 'csv' })}`;
    try {
      points = await api('/api/counts', { query });
    } catch (err) {
      fill(out, errorBox(err));
      return;
    }
    fill(out, points.length ? null : empty('No counts in this time range yet.',
      'Counts come from the lines and zones of the camera (see Zones & lines).'));
    const series = draw(canvas, points, window_, STEP[period.value]);
    fill(legend, series.map(([key, color]) => {
      const swatch = h('span', { class: 'swatch' });
      swatch.style.background = color;
      return h('li', {}, swatch, key);
    }));
    fill(table, tableOf(points, period.value));
  };
  period.addEventListener('change', () => { fillRanges(); load(); });
  const loadNow = async () => {
    let overlay;
    try {
      overlay = await api(`/api/cameras/${seg(camera.value)}/overlay`);
    } catch (err) {
      fill(now, errorBox(err));
      return;
    }
    fill(now, nowTable(liveRows(overlay.counts || {}, rule.value, label.value)));
  };
  for (const control of [rule, range, label]) control.addEventListener('change', load);
  for (const control of [rule, label]) control.addEventListener('change', loadNow);
  camera.addEventListener('change', async () => { await fillRules(); load(); loadNow(); });
  const onResize = () => draw(canvas, points, window_, STEP[period.value]);
  window.addEventListener('resize', onResize);
  fillRanges();
  await fillRules();
  await load();
  const stopNow = every(5000, loadNow);
  return () => { stopNow(); window.removeEventListener('resize', onResize); };
}

const ZONE_EVENTS = ['dwell', 'loiter', 'speeding', 'wrong_way', 'stopped'];

/** The live RuleEngine counts as [rule, class, figure, value] rows ('' class: all classes). */
function liveRows(counts, ruleName, className) {
  const rows = [];
  const add = (rule, cls, figure, value) => {
    if (value === null || value === undefined) return;
    if (ruleName && rule !== ruleName) return;
    if (className && cls !== className) return; // one class asked for: its rows only
    rows.push([rule, cls, figure, value]);
  };
  for (const [name, line] of Object.entries(counts.lines || {})) {
    const t = line.total || {};
    add(name, '', 'crossings A→B', t.a_to_b);
    add(name, '', 'crossings B→A', t.b_to_a);
    for (const [cls, d] of Object.entries(line.by_class || {})) {
      add(name, cls, 'crossings A→B', d.a_to_b);
      add(name, cls, 'crossings B→A', d.b_to_a);
    }
  }
  for (const [name, zone] of Object.entries(counts.zones || {})) {
    const occ = zone.occupancy || {};
    const entries = zone.entries || {};
    add(name, '', 'inside now', occ.current);
    add(name, '', 'entries', entries.total);
    for (const [cls, n] of Object.entries(occ.by_class || {})) add(name, cls, 'inside now', n);
    for (const [cls, n] of Object.entries(entries.by_class || {})) add(name, cls, 'entries', n);
    for (const kind of ZONE_EVENTS) {
      add(name, '', `${kind.replace('_', ' ')} events`, zone[`${kind}_events`]);
      for (const [cls, n] of Object.entries((zone.events_by_class || {})[kind] || {})) {
        add(name, cls, `${kind.replace('_', ' ')} events`, n);
      }
    }
    if (zone.stopped) add(name, '', 'stopped now', zone.stopped.current);
    const speed = zone.speed;
    if (speed) {
      const unit = speed.unit;
      add(name, '', `mean speed (${unit})`, speed.mean);
      add(name, '', `top speed (${unit})`, speed.max);
      for (const [cls, st] of Object.entries(speed.by_class || {})) {
        add(name, cls, `mean speed (${unit})`, st.mean);
        add(name, cls, `top speed (${unit})`, st.max);
      }
    }
  }
  return rows;
}

function nowTable(rows) {
  if (!rows.length) return h('p', { class: 'muted' }, 'No live counters (is the camera running, with rules?).');
  return h('table', {}, h('thead', {}, h('tr', {}, ['Rule', 'Class', 'Figure', 'Value'].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, rows.map(([rule, cls, figure, value]) => h('tr', { dataset: { rule, cls } },
      h('td', {}, rule), h('td', {}, cls || 'all'), h('td', {}, figure), h('td', { class: 'num' }, String(value))))));
}

function label(ts, step) {
  const d = new Date(ts * 1000);
  const iso = d.toISOString();
  return step < 86400 ? `${iso.slice(5, 10)} ${iso.slice(11, 16)}` : iso.slice(0, 10);
}

function tableOf(points, period) {
  if (!points.length) return h('p', { class: 'muted' }, 'No data.');
  return h('table', {}, h('thead', {}, h('tr', {}, ['Start (UTC)', 'Class', 'Metric', 'Count'].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, points.map((p) => h('tr', {}, h('td', {}, label(p.time, STEP[period])), h('td', {}, p.label),
      h('td', {}, p.metric), h('td', { class: 'num' }, String(p.count))))));
}

/** Draw one line per "class metric"; returns [[key, color], ...] for the legend. */
function draw(canvas, points, [start, end], step) {
  const height = 280;
  const { g, width } = sharpCanvas(canvas, height);
  const css = getComputedStyle(document.documentElement);
  const text = css.getPropertyValue('--text').trim() || '#222';
  const grid = css.getPropertyValue('--grid').trim() || '#ccd';
  g.clearRect(0, 0, width, height);
  const series = new Map();
  for (const p of points) {
    const key = `${p.label} ${p.metric}`;
    if (!series.has(key)) series.set(key, new Map());
    series.get(key).set(p.time, (series.get(key).get(p.time) || 0) + p.count);
  }
  const max = Math.max(1, ...points.map((p) => p.count));
  const pad = { l: 44, r: 12, t: 12, b: 28 };
  const x = (t) => pad.l + ((t - start) / (end - start || 1)) * (width - pad.l - pad.r);
  const y = (v) => height - pad.b - (v / max) * (height - pad.t - pad.b);
  g.font = '11px system-ui, sans-serif';
  g.strokeStyle = grid;
  g.fillStyle = text;
  g.lineWidth = 1;
  const yStep = Math.max(1, Math.ceil(max / 5));
  for (let v = 0; v <= max; v += yStep) {
    g.beginPath(); g.moveTo(pad.l, y(v) + 0.5); g.lineTo(width - pad.r, y(v) + 0.5); g.stroke();
    g.fillText(String(v), 6, y(v) + 4);
  }
  const times = bucketTimes(points, start, end, step);
  axisLabels(g, times, x, step, width, height - 10, pad.l);
  const out = [];
  [...series.keys()].sort().forEach((key, i) => {
    const color = COLORS[i % COLORS.length];
    out.push([key, color]);
    const values = series.get(key);
    g.strokeStyle = color;
    g.fillStyle = color;
    g.lineWidth = 2;
    g.beginPath();
    times.forEach((t, b) => {
      const v = values.get(t) || 0; // a bucket with nothing counted: zero, so one point is a line
      if (b === 0) g.moveTo(x(t + step / 2), y(v)); else g.lineTo(x(t + step / 2), y(v));
    });
    g.stroke();
    for (const [t, v] of values) { g.beginPath(); g.arc(x(t + step / 2), y(v), 3, 0, Math.PI * 2); g.fill(); }
  });
  return out;
}

/**
 * Every bucket start from `start` to `end`, aligned to the buckets the server returned (ISO
 * weeks start on Mondays, not at `start`), plus any returned bucket outside that range.
 */
function bucketTimes(points, start, end, step) {
  const seen = [...new Set(points.map((p) => p.time))].sort((a, b) => a - b);
  const anchor = seen.length ? seen[0] : start;
  const out = new Set(seen);
  const first = anchor - Math.floor((anchor - start) / step) * step;
  for (let t = first; t < end && out.size < 5000; t += step) out.add(t);
  return [...out].sort((a, b) => a - b);
}

/** Time labels under the x axis, centred on their bucket, never overlapping each other. */
function axisLabels(g, times, x, step, width, baseline, left) {
  const gap = 12;
  const widest = Math.max(1, ...times.slice(0, 3).map((t) => g.measureText(label(t, step)).width));
  const span = times.length > 1 ? x(times[1]) - x(times[0]) : width;
  const every = Math.max(1, Math.ceil((widest + gap) / Math.max(1, span)));
  let right = left - gap;
  for (let i = 0; i < times.length; i += every) {
    const text = label(times[i], step);
    const w = g.measureText(text).width;
    const at = Math.max(left, Math.min(x(times[i] + step / 2) - w / 2, width - w - 2));
    if (at < right + gap) continue; // would touch the previous label
    g.fillText(text, at, baseline);
    right = at + w;
  }
}
