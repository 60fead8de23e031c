// Zones and lines editor. The camera's current (redacted) snapshot is the background of a
// <canvas>; coordinates are stored normalised (0..1 of width and height), as the config
// models want them. Draw polygons (click points; double-click or Enter closes) and directed
// lines (two clicks; the arrow across the line points from side A to side B, "Flip"
// reverses it); select a shape to drag its vertices, rename it, attach rule settings
// (classes, dwell/loiter/stopped seconds, directions) or delete it; settings the editor has
// no control for (a zone's calibration, speed limit, one-way direction) are kept as they are.
// Save replaces the camera's rules at run time (PUT, operators and admins). The running camera's counts (GET .../overlay, every
// second) are shown next to each saved rule.

import { api, can, seg } from './api.js';
import { go, href } from './router.js';
import {
  KNOWN_CLASSES, empty, errorBox, every, field, fill, h, header, message, noPermission, select, toast,
} from './ui.js';

const NAME = /^[A-Za-z0-9_.\-]{1,64}$/;
const HIT_PX = 10;

export async function render(ctx) {
  if (!can(ctx.me, 'operate')) { ctx.root.append(noPermission('edit zones and lines')); return null; }
  const cameras = await api('/api/cameras');
  if (!ctx.arg) {
    if (cameras.length) { go('editor', cameras[0].name); return null; }
    ctx.root.append(header('Zones & lines'), empty('No cameras to edit.'));
    return null;
  }
  const name = ctx.arg;
  document.title = `Zones & lines: ${name} — Vigil`;
  if (!cameras.some((c) => c.name === name)) {
    ctx.root.append(header('Zones & lines'), errorBox(new Error(`Camera "${name}" does not exist or is outside your scope.`)));
    return null;
  }
  const rules = await api(`/api/config/cameras/${seg(name)}/rules`);
  const ed = {
    shapes: [
      ...Object.entries(rules.zones).map(([n, cfg]) => shape('zone', n, cfg.polygon, cfg)),
      ...Object.entries(rules.lines).map(([n, cfg]) => shape('line', n, cfg.points, cfg)),
    ],
    saved: new Set([...Object.keys(rules.zones), ...Object.keys(rules.lines)]),
    selected: null, mode: 'select', draft: [], drag: null, hover: null, image: null,
    aspect: 16 / 9, counts: {},
  };

  const cameraPick = select(cameras.map((c) => c.name), name, { id: 'editor-camera' });
  cameraPick.addEventListener('change', () => go('editor', cameraPick.value));
  const modeButtons = {
    select: h('button', { type: 'button', id: 'mode-select' }, 'Select'),
    zone: h('button', { type: 'button', id: 'mode-zone' }, 'Draw zone'),
    line: h('button', { type: 'button', id: 'mode-line' }, 'Draw line'),
  };
  const save = h('button', { type: 'button', class: 'primary', id: 'rules-save' }, 'Save');
  const hint = h('p', { class: 'muted', id: 'editor-hint', 'aria-live': 'polite' });
  const canvas = h('canvas', {
    class: 'editor-canvas', id: 'editor-canvas', tabindex: 0,
    role: 'application', 'aria-label': `Zones and lines of ${name}; use the tool buttons, Enter closes a zone, Escape cancels, Delete removes the selected shape`,
  });
  const list = h('ul', { class: 'shape-list', id: 'shape-list' });
  const form = h('div', { class: 'shape-form', id: 'shape-form' });
  const status = h('div', { 'aria-live': 'polite' });
  ctx.root.append(
    header(`Zones & lines: ${name}`, h('a', { href: href('live', name), class: 'button' }, 'Live view')),
    h('div', { class: 'toolbar' }, field('Camera', cameraPick),
      h('div', { class: 'actions', role: 'toolbar', 'aria-label': 'Drawing tools' }, Object.values(modeButtons), save)),
    hint,
    h('div', { class: 'editor' }, h('div', { class: 'editor-stage' }, canvas),
      h('aside', { class: 'editor-side' }, h('h2', {}, 'Rules'), list, form, status)));

  const redraw = () => draw(canvas, ed);
  const setMode = (mode) => {
    ed.mode = mode;
    ed.draft = [];
    for (const [m, b] of Object.entries(modeButtons)) b.setAttribute('aria-pressed', String(m === mode));
    hint.textContent = {
      select: 'Click a shape to select it; drag its corners to move them; Delete removes it.',
      zone: 'Click the corners of the zone; double-click or press Enter to close it; Escape cancels.',
      line: 'Click the two ends of the line. The arrow across it shows direction A→B.',
    }[mode];
    redraw();
  };
  for (const [m, b] of Object.entries(modeButtons)) b.addEventListener('click', () => { setMode(m); canvas.focus(); });

  const refreshSide = () => { renderList(list, ed, selectShape); renderForm(form, ed, { redraw, refreshSide, remove }); };
  const selectShape = (s) => { ed.selected = s; refreshSide(); redraw(); };
  const remove = (s) => {
    ed.shapes = ed.shapes.filter((x) => x !== s);
    if (ed.selected === s) ed.selected = null;
    refreshSide();
    redraw();
  };
  const add = (kind, points) => {
    const s = shape(kind, uniqueName(ed, kind), points, kind === 'line' ? { labels: ['person'] } : { labels: [] });
    ed.shapes.push(s);
    selectShape(s);
    setMode('select');
    form.querySelector('input[name="name"]')?.focus();
    canvas.focus();
  };
  const closeZone = () => {
    if (ed.draft.length >= 3) add('zone', ed.draft);
    else toast('A zone needs at least three corners.');
  };

  const point = (event) => {
    const r = canvas.getBoundingClientRect();
    return [clamp((event.clientX - r.left) / r.width), clamp((event.clientY - r.top) / r.height)];
  };
  canvas.addEventListener('pointerdown', (event) => {
    const p = point(event);
    if (ed.mode === 'line') {
      ed.draft.push(p);
      if (ed.draft.length === 2) add('line', ed.draft);
      else redraw();
      return;
    }
    if (ed.mode === 'zone') {
      // The clicks of a double-click land on the same spot: keep one corner there.
      const last = ed.draft[ed.draft.length - 1];
      const r = canvas.getBoundingClientRect();
      if (!last || Math.hypot((last[0] - p[0]) * r.width, (last[1] - p[1]) * r.height) > 4) ed.draft.push(p);
      redraw();
      return;
    }
    const hit = hitTest(canvas, ed, p);
    if (hit && hit.vertex !== null) {
      ed.drag = hit;
      canvas.setPointerCapture(event.pointerId);
    }
    selectShape(hit ? hit.shape : null);
  });
  canvas.addEventListener('dblclick', (event) => { if (ed.mode === 'zone') { event.preventDefault(); closeZone(); } });
  canvas.addEventListener('pointermove', (event) => {
    ed.hover = point(event);
    if (ed.drag) {
      ed.drag.shape.points[ed.drag.vertex] = ed.hover;
      ed.drag.shape.dirty = true;
    }
    redraw();
  });
  canvas.addEventListener('pointerup', () => {
    if (ed.drag) { ed.drag = null; refreshSide(); }
  });
  canvas.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && ed.mode === 'zone') { event.preventDefault(); closeZone(); }
    else if (event.key === 'Escape') { setMode('select'); }
    else if ((event.key === 'Delete' || event.key === 'Backspace') && ed.selected) { event.preventDefault(); remove(ed.selected); }
  });

  save.addEventListener('click', async () => {
    fill(status);
    let body;
    try {
      body = rulesBody(ed);
    } catch (err) {
      fill(status, errorBox(err));
      return;
    }
    save.disabled = true;
    try {
      await api(`/api/config/cameras/${seg(name)}/rules`, { method: 'PUT', body });
      ed.saved = new Set([...Object.keys(body.zones), ...Object.keys(body.lines)]);
      for (const s of ed.shapes) s.dirty = false;
      ed.counts = {};
      fill(status, h('p', { class: 'ok', id: 'rules-saved' }, 'Saved: the camera uses these rules now.'));
      refreshSide();
    } catch (err) {
      fill(status, errorBox(err));
    } finally {
      save.disabled = false;
    }
  });

  const onResize = () => { sizeCanvas(canvas, ed); redraw(); };
  window.addEventListener('resize', onResize);
  sizeCanvas(canvas, ed);
  setMode('select');
  refreshSide();
  // The tools work before the picture has come (a slow camera): a mode picked meanwhile is
  // kept, and the canvas takes the picture's shape once it is there.
  await loadBackground(name, cameras.find((c) => c.name === name), ed, hint);
  sizeCanvas(canvas, ed);
  redraw();
  canvas.dataset.background = ed.image ? 'snapshot' : 'blank';
  const stopCounts = every(1000, async () => {
    const overlay = await api(`/api/cameras/${seg(name)}/overlay`);
    ed.counts = overlay.counts || {};
    updateCounts(list, ed);
    redraw();
  });
  return () => {
    stopCounts();
    window.removeEventListener('resize', onResize);
    if (ed.image && ed.image.src.startsWith('blob:')) URL.revokeObjectURL(ed.image.src);
  };
}

function shape(kind, name, points, cfg) {
  return { kind, name, points: points.map((p) => [Number(p[0]), Number(p[1])]), cfg: { ...cfg }, dirty: false };
}

function uniqueName(ed, kind) {
  for (let i = 1; ; i += 1) {
    const candidate = `${kind}${i}`;
    if (!ed.shapes.some((s) => s.name === candidate)) return candidate;
  }
}

function clamp(v) { return Math.min(1, Math.max(0, Math.round(v * 10000) / 10000)); }

/** The PUT body {zones, lines}; throws with a readable message when a shape is invalid. */
function rulesBody(ed) {
  const body = { zones: {}, lines: {} };
  for (const s of ed.shapes) {
    if (!NAME.test(s.name)) throw new Error(`"${s.name}" is not a valid name: use letters, digits, _ . - (max 64).`);
    if (body.zones[s.name] || body.lines[s.name]) throw new Error(`Two rules are named "${s.name}"; names must be unique.`);
    const { polygon: _p, points: _q, ...rest } = s.cfg;
    if (s.kind === 'zone') body.zones[s.name] = { ...rest, polygon: s.points };
    else body.lines[s.name] = { ...rest, points: s.points };
  }
  return body;
}

/** Counts of rule `name` from the overlay's counts (engine shape or flat by rule name). */
function countsFor(ed, s) {
  const c = ed.counts || {};
  const group = s.kind === 'line' ? c.lines : c.zones;
  return (group && group[s.name]) || c[s.name] || null;
}

function countText(ed, s) {
  if (!ed.saved.has(s.name) || s.dirty) return { text: 'save to start counting', total: null };
  const c = countsFor(ed, s);
  if (!c) return { text: 'no counts yet', total: 0 };
  if (s.kind === 'line') {
    const t = c.total || {};
    const ab = Number(t.a_to_b || 0);
    const ba = Number(t.b_to_a || 0);
    return { text: `A→B ${ab} · B→A ${ba}`, total: ab + ba };
  }
  const now = c.occupancy ? Number(c.occupancy.current || 0) : 0;
  const entries = c.entries ? Number(c.entries.total || 0) : 0;
  // A calibrated zone (calibration set in the config file) also measures speeds.
  const speed = c.speed && c.speed.mean !== null && c.speed.mean !== undefined ? ` · mean ${c.speed.mean} ${c.speed.unit}` : '';
  return { text: `inside now ${now} · entries ${entries}${speed}`, total: entries };
}

function renderList(list, ed, selectShape) {
  if (!ed.shapes.length) {
    fill(list, h('li', { class: 'muted' }, 'No zones or lines yet: draw one with the tools above.'));
    return;
  }
  fill(list, ed.shapes.map((s) => {
    const count = countText(ed, s);
    return h('li', { class: s === ed.selected ? 'selected' : '' },
      h('button', { type: 'button', class: 'link', onclick: () => selectShape(s), 'aria-pressed': String(s === ed.selected) },
        `${s.kind === 'zone' ? 'Zone' : 'Line'} ${s.name}`),
      h('span', {
        class: 'count', dataset: { countFor: s.name, total: count.total === null ? '' : String(count.total) },
      }, count.text));
  }));
}

function updateCounts(list, ed) {
  for (const s of ed.shapes) {
    const node = [...list.querySelectorAll('[data-count-for]')].find((n) => n.dataset.countFor === s.name);
    if (!node) continue;
    const count = countText(ed, s);
    node.textContent = count.text;
    node.dataset.total = count.total === null ? '' : String(count.total);
  }
}

function renderForm(form, ed, { redraw, refreshSide, remove }) {
  const s = ed.selected;
  if (!s) { fill(form, h('p', { class: 'muted' }, 'Select a zone or line to edit it.')); return; }
  const nameInput = h('input', { name: 'name', value: s.name, required: true, pattern: NAME.source.slice(1, -1) });
  nameInput.addEventListener('change', () => { s.name = nameInput.value.trim(); s.dirty = true; refreshSide(); redraw(); });
  const labels = new Set(s.cfg.labels || []);
  const classes = h('fieldset', { class: 'checks' }, h('legend', {}, 'Classes (none ticked = all)'),
    [...new Set([...KNOWN_CLASSES, ...labels])].map((label) => {
      const box = h('input', { type: 'checkbox', value: label, checked: labels.has(label) });
      box.addEventListener('change', () => {
        if (box.checked) labels.add(label); else labels.delete(label);
        s.cfg.labels = [...labels];
        s.dirty = true;
      });
      return h('label', {}, box, ` ${label}`);
    }));
  const pointsInput = h('input', { name: 'points', value: s.points.map((p) => `${p[0]},${p[1]}`).join('; ') });
  pointsInput.addEventListener('change', () => {
    const parsed = pointsInput.value.split(';').map((pair) => pair.split(',').map(Number));
    const ok = parsed.every((p) => p.length === 2 && p.every((v) => Number.isFinite(v) && v >= 0 && v <= 1));
    if (!ok || parsed.length < (s.kind === 'zone' ? 3 : 2) || (s.kind === 'line' && parsed.length !== 2)) {
      pointsInput.setCustomValidity('Points as "x,y; x,y; …" with 0 ≤ x, y ≤ 1.');
      pointsInput.reportValidity();
      return;
    }
    pointsInput.setCustomValidity('');
    s.points = parsed;
    s.dirty = true;
    redraw();
  });
  const parts = [field('Name', nameInput), classes];
  if (s.kind === 'zone') {
    const LABELS = { dwell: 'Dwell event after (s)', loiter: 'Loitering after (s)', stopped: 'Stopped-vehicle event after (s)' };
    for (const key of ['dwell', 'loiter', 'stopped']) {
      const input = h('input', { type: 'number', min: 0, step: 1, name: key, value: s.cfg[key] ?? '' });
      input.addEventListener('change', () => {
        const v = Number(input.value);
        if (input.value === '' || v <= 0) delete s.cfg[key]; else s.cfg[key] = v;
        s.dirty = true;
      });
      parts.push(field(LABELS[key], input, 'Empty: off.'));
    }
  } else {
    const dirs = new Set(s.cfg.directions || ['a_to_b', 'b_to_a']);
    parts.push(h('fieldset', { class: 'checks' }, h('legend', {}, 'Raise events for (both are counted)'),
      [['a_to_b', 'A → B'], ['b_to_a', 'B → A']].map(([value, text]) => {
        const box = h('input', { type: 'checkbox', value, checked: dirs.has(value) });
        box.addEventListener('change', () => {
          if (box.checked) dirs.add(value); else dirs.delete(value);
          s.cfg.directions = [...dirs];
          s.dirty = true;
        });
        return h('label', {}, box, ` ${text}`);
      })));
    parts.push(h('button', {
      type: 'button', id: 'line-flip',
      onclick: () => { s.points.reverse(); s.dirty = true; refreshSide(); redraw(); },
    }, 'Flip direction'));
  }
  parts.push(field('Points (x,y from 0 to 1)', pointsInput));
  parts.push(h('button', { type: 'button', class: 'danger', id: 'shape-delete', onclick: () => remove(s) }, `Delete ${s.kind}`));
  fill(form, h('h3', {}, `${s.kind === 'zone' ? 'Zone' : 'Line'} ${s.name}`), parts);
}

async function loadBackground(name, status, ed, hint) {
  if (!status || !status.online || !status.last_frame_time) {
    hint.textContent = 'The camera has no picture yet (offline?): drawing on a blank background.';
    return;
  }
  try {
    const reply = await api(`/api/cameras/${seg(name)}/snapshot`, { raw: true });
    const url = URL.createObjectURL(await reply.blob());
    const image = new Image();
    image.alt = '';
    await new Promise((resolve, reject) => { image.onload = resolve; image.onerror = reject; image.src = url; });
    ed.image = image;
    ed.aspect = image.naturalWidth / image.naturalHeight || ed.aspect;
  } catch (err) {
    hint.textContent = `No snapshot (${message(err)}): drawing on a blank background.`;
  }
}

function sizeCanvas(canvas, ed) {
  const width = canvas.parentElement.clientWidth || 640;
  const dpr = window.devicePixelRatio || 1;
  canvas.style.width = `${width}px`;
  canvas.style.height = `${Math.round(width / ed.aspect)}px`;
  canvas.width = Math.round(width * dpr);
  canvas.height = Math.round((width / ed.aspect) * dpr);
}

/** The shape (and vertex index, or null) under normalised point `p`, if any. */
function hitTest(canvas, ed, p) {
  const w = canvas.clientWidth;
  const hgt = canvas.clientHeight;
  const px = ([x, y]) => [x * w, y * hgt];
  const [qx, qy] = px(p);
  const order = ed.selected ? [ed.selected, ...ed.shapes.filter((s) => s !== ed.selected)] : ed.shapes;
  for (const s of order) {
    const i = s.points.findIndex((v) => { const [vx, vy] = px(v); return Math.hypot(vx - qx, vy - qy) <= HIT_PX; });
    if (i >= 0) return { shape: s, vertex: i };
  }
  for (const s of [...order].reverse()) {
    const pts = s.points.map(px);
    if (s.kind === 'zone' ? inside(pts, qx, qy) : distToSegment(pts[0], pts[1], qx, qy) <= HIT_PX) {
      return { shape: s, vertex: null };
    }
  }
  return null;
}

function inside(pts, x, y) {
  let odd = false;
  for (let i = 0, j = pts.length - 1; i < pts.length; j = i, i += 1) {
    const [xi, yi] = pts[i];
    const [xj, yj] = pts[j];
    if ((yi > y) !== (yj > y) && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) odd = !odd;
  }
  return odd;
}

function distToSegment([ax, ay], [bx, by], x, y) {
  const dx = bx - ax;
  const dy = by - ay;
  const t = Math.max(0, Math.min(1, ((x - ax) * dx + (y - ay) * dy) / (dx * dx + dy * dy || 1)));
  return Math.hypot(ax + t * dx - x, ay + t * dy - y);
}

function draw(canvas, ed) {
  const g = canvas.getContext('2d');
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.width / dpr;
  const hgt = canvas.height / dpr;
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, hgt);
  if (ed.image) g.drawImage(ed.image, 0, 0, w, hgt);
  else { g.fillStyle = '#555'; g.fillRect(0, 0, w, hgt); }
  const px = ([x, y]) => [x * w, y * hgt];
  g.font = '13px system-ui, sans-serif';
  g.lineJoin = 'round';
  for (const s of ed.shapes) {
    const selected = s === ed.selected;
    const color = s.kind === 'zone' ? '#2a9d8f' : '#f4a261';
    const pts = s.points.map(px);
    g.lineWidth = selected ? 3 : 2;
    g.strokeStyle = color;
    g.beginPath();
    pts.forEach(([x, y], i) => (i ? g.lineTo(x, y) : g.moveTo(x, y)));
    if (s.kind === 'zone') {
      g.closePath();
      g.fillStyle = 'rgba(42, 157, 143, 0.22)';
      g.fill();
    }
    g.stroke();
    if (s.kind === 'line') arrow(g, pts[0], pts[1], color);
    const count = countText(ed, s);
    label(g, `${s.name}${count.total === null ? '' : ` · ${count.text}`}`, pts[0][0] + 6, pts[0][1] - 8);
    if (selected) {
      for (const [x, y] of pts) {
        g.fillStyle = '#fff';
        g.strokeStyle = '#000';
        g.lineWidth = 1.5;
        g.beginPath();
        g.arc(x, y, 6, 0, Math.PI * 2);
        g.fill();
        g.stroke();
      }
    }
  }
  if (ed.draft.length) {
    const pts = ed.draft.map(px);
    if (ed.hover) pts.push(px(ed.hover));
    g.strokeStyle = '#e63946';
    g.setLineDash([6, 4]);
    g.lineWidth = 2;
    g.beginPath();
    pts.forEach(([x, y], i) => (i ? g.lineTo(x, y) : g.moveTo(x, y)));
    g.stroke();
    g.setLineDash([]);
  }
}

/** The A→B arrow across the line at its middle (side A is left of first→second point). */
function arrow(g, [ax, ay], [bx, by], color) {
  const len = Math.hypot(bx - ax, by - ay) || 1;
  const [nx, ny] = [-(by - ay) / len, (bx - ax) / len]; // towards side B (right, y down)
  const [mx, my] = [(ax + bx) / 2, (ay + by) / 2];
  const size = 26;
  const from = [mx - nx * size, my - ny * size];
  const to = [mx + nx * size, my + ny * size];
  g.strokeStyle = color;
  g.fillStyle = color;
  g.lineWidth = 3;
  g.beginPath();
  g.moveTo(...from);
  g.lineTo(...to);
  g.stroke();
  const back = [to[0] - nx * 10, to[1] - ny * 10];
  g.beginPath();
  g.moveTo(...to);
  g.lineTo(back[0] + ny * 7, back[1] - nx * 7);
  g.lineTo(back[0] - ny * 7, back[1] + nx * 7);
  g.closePath();
  g.fill();
  label(g, 'A', from[0] - nx * 12 - 4, from[1] - ny * 12 + 4);
  label(g, 'B', to[0] + nx * 12 - 4, to[1] + ny * 12 + 4);
}

function label(g, text, x, y) {
  const width = g.measureText(text).width;
  g.fillStyle = 'rgba(0, 0, 0, 0.65)';
  g.fillRect(x - 3, y - 13, width + 6, 17);
  g.fillStyle = '#fff';
  g.fillText(text, x, y);
}
