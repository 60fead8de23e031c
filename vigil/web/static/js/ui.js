// Small DOM helpers shared by the pages. Everything is built with createElement (never
// by parsing markup strings), so text from the server can never become markup, and no inline
// style attributes are written (the Content-Security-Policy forbids them).

/**
 * Create an element: h('button', {class: 'primary', onclick: fn}, 'Save').
 * Props: "class", "dataset" (object), "on<event>" (listener), boolean/other attributes;
 * `false`/null/undefined props are skipped. Children: nodes, strings, arrays, null.
 */
export function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (key === 'class') node.className = value;
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') {
      node.addEventListener(key.slice(2), value);
    } else if (key in node && typeof value !== 'string') node[key] = value;
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
}

/** Replace the children of `node`. */
export function fill(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

/** A page heading plus an optional row of actions. */
export function header(title, ...actions) {
  return h('div', { class: 'page-head' }, h('h1', {}, title),
    actions.length ? h('div', { class: 'actions' }, actions) : null);
}

/** The "nothing here yet" state. */
export function empty(text, hint = null) {
  return h('div', { class: 'state state-empty', role: 'status' }, h('p', {}, text),
    hint ? h('p', { class: 'muted' }, hint) : null);
}

/** The "you may not use this page" state. */
export function noPermission(what) {
  return h('div', { class: 'state state-forbidden', role: 'alert' },
    h('h1', {}, 'No permission'),
    h('p', {}, `Your role may not ${what}.`),
    h('p', { class: 'muted' }, 'Ask an administrator if you need access.'));
}

/** An error message box (ApiError or any Error). */
export function errorBox(err) {
  return h('div', { class: 'state state-error', role: 'alert' }, h('p', {}, message(err)));
}

/** A readable message from an error. */
export function message(err) {
  return (err && err.message) ? err.message : String(err);
}

/** A labelled form field: label + control (+ optional hint). */
export function field(labelText, control, hint = null) {
  if (!control.id) control.id = uid('f');
  return h('div', { class: 'field' },
    h('label', { for: control.id }, labelText), control,
    hint ? h('small', { class: 'muted' }, hint) : null);
}

let counter = 0;
/** A unique element id. */
export function uid(prefix) { counter += 1; return `${prefix}-${counter}`; }

/** Show a short message at the bottom of the screen. */
export function toast(text, kind = 'info') {
  let box = document.getElementById('toasts');
  if (!box) {
    box = h('div', { id: 'toasts', class: 'toasts', role: 'status', 'aria-live': 'polite' });
    document.body.append(box);
  }
  const item = h('div', { class: `toast toast-${kind}` }, text);
  box.append(item);
  setTimeout(() => item.remove(), 5000);
}

/**
 * A modal <dialog> with a title, body nodes and buttons; removed from the page when closed.
 * Returns the dialog element (already open). `onclose` runs once when it closes.
 */
export function modal(title, body, { onclose = null, wide = false } = {}) {
  const titleId = uid('dlg');
  const closeButton = h('button', { type: 'button', class: 'close', 'aria-label': 'Close' }, '×');
  const dialog = h('dialog', { class: wide ? 'modal wide' : 'modal', 'aria-labelledby': titleId },
    h('div', { class: 'modal-head' }, h('h2', { id: titleId }, title), closeButton),
    h('div', { class: 'modal-body' }, body));
  closeButton.addEventListener('click', () => dialog.close());
  dialog.addEventListener('close', () => {
    if (onclose) onclose();
    dialog.remove();
  });
  document.body.append(dialog);
  dialog.showModal();
  return dialog;
}

/** Ask for a reason (min 3 characters) in a dialog; resolves to the text or null. */
export function askReason(title, explanation) {
  return new Promise((resolve) => {
    let answer = null;
    const input = h('textarea', { required: true, minlength: 3, maxlength: 500, rows: 3 });
    const form = h('form', { method: 'dialog', class: 'stack' },
      h('p', {}, explanation),
      field('Reason (audited)', input),
      h('div', { class: 'actions' },
        h('button', { type: 'submit', class: 'danger' }, 'Continue'),
        h('button', { type: 'button', onclick: () => dialog.close() }, 'Cancel')));
    form.addEventListener('submit', (event) => {
      if (input.value.trim().length < 3) {
        event.preventDefault();
        input.setCustomValidity('Give a reason of at least 3 characters.');
        input.reportValidity();
        return;
      }
      answer = input.value.trim();
    });
    input.addEventListener('input', () => input.setCustomValidity(''));
    const dialog = modal(title, form, { onclose: () => resolve(answer) });
    input.focus();
  });
}

/** "2026-11-26 19:37:05" in local time from UNIX seconds. */
export function fmtTime(ts) {
  if (ts === null || ts === undefined) return '—';
  const d = new Date(ts * 1000);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} `
    + `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** "4.2 s", "3 min", "2 h" from seconds. */
export function fmtAge(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '—';
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  return `${Math.round(seconds / 3600)} h`;
}

/** "mm:ss" from seconds. */
export function fmtClock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  return `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
}

/** The value for <input type="datetime-local"> from UNIX seconds (local time). */
export function toLocalInput(ts) {
  const d = new Date(ts * 1000 - new Date(ts * 1000).getTimezoneOffset() * 60000);
  return d.toISOString().slice(0, 16);
}

/** UNIX seconds from an <input type="datetime-local"> value, or null when empty. */
export function fromLocalInput(value) {
  if (!value) return null;
  const t = new Date(value).getTime();
  return Number.isFinite(t) ? t / 1000 : null;
}

/** A <select> of `options` ([value, text] pairs or strings) with `value` selected. */
export function select(options, value = '', props = {}) {
  return h('select', props, options.map((opt) => {
    const [v, text] = Array.isArray(opt) ? opt : [opt, opt];
    return h('option', { value: v, selected: String(v) === String(value) }, text);
  }));
}

/** Classes the detector knows that rules are usually about (COCO names). */
export const KNOWN_CLASSES = ['person', 'bicycle', 'car', 'motorcycle', 'bus', 'truck', 'dog', 'cat',
  'bird', 'horse', 'backpack', 'handbag', 'suitcase'];

/** Run `fn` every `ms` while the page lives; returns a stop function. Errors are shown once. */
export function every(ms, fn) {
  let stopped = false;
  let timer = null;
  const tick = async () => {
    if (stopped) return;
    try { await fn(); } catch (_) { /* the banner or the page shows problems */ }
    if (!stopped) timer = setTimeout(tick, ms);
  };
  tick();
  return () => { stopped = true; clearTimeout(timer); };
}

/** Size a canvas for the screen's pixel ratio (sharp lines on HiDPI screens) and return its
 * 2D context drawing in CSS pixels, with the CSS width. */
export function sharpCanvas(canvas, height) {
  const dpr = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 600;
  canvas.width = Math.round(width * dpr);
  canvas.height = Math.round(height * dpr);
  const g = canvas.getContext('2d');
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  return { g, width };
}
