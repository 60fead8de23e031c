// Live grid: one tile per camera the user may see, each an MJPEG stream at 1 fps (redacted
// by the server), with status (online/offline, fps, age of the last frame) refreshed every
// 2 s from /api/cameras. Browsers keep at most ~6 connections per server over HTTP/1.1 and
// each stream holds one, so the grid shows PAGE_SIZE cameras at a time.
// #/live/<camera> renders the single-camera page (camera.js).

import { api, qs, seg } from './api.js';
import { href } from './router.js';
import { empty, every, fill, fmtAge, h, header } from './ui.js';

const PAGE_SIZE = 4;

export async function render(ctx) {
  if (ctx.arg) return (await import('./camera.js')).render(ctx);
  document.title = 'Live — Vigil';
  const cameras = await api('/api/cameras');
  if (!cameras.length) {
    ctx.root.append(header('Live'), empty('No cameras to show.',
      'Add cameras to the configuration file, or ask an administrator for access to one.'));
    return null;
  }
  const pages = Math.ceil(cameras.length / PAGE_SIZE);
  let page = Math.min(Math.max(Number(ctx.query.page || 1), 1), pages);
  const grid = h('div', { class: 'grid', id: 'live-grid' });
  const pager = h('div', { class: 'pager' });
  ctx.root.append(header('Live'), grid, pager);
  let tiles = new Map();

  const show = () => {
    stopStreams(tiles);
    tiles = new Map(cameras.slice((page - 1) * PAGE_SIZE, page * PAGE_SIZE)
      .map((cam) => [cam.name, tile(cam.name)]));
    fill(grid, [...tiles.values()].map((t) => t.node));
    fill(pager, pages > 1 ? [
      h('a', { href: href('live', null, { page: page - 1 }), class: 'button', hidden: page <= 1 }, 'Previous'),
      h('span', { class: 'muted' }, `Page ${page} of ${pages}`),
      h('a', { href: href('live', null, { page: page + 1 }), class: 'button', hidden: page >= pages }, 'Next'),
    ] : []);
  };
  show();
  const stop = every(2000, async () => {
    const statuses = await api('/api/cameras');
    for (const status of statuses) tiles.get(status.name)?.update(status);
  });
  return () => { stop(); stopStreams(tiles); };
}

function stopStreams(tiles) {
  for (const t of tiles.values()) t.stop();
}

/** One camera tile: stream, name, status line; `update(status)` refreshes the status. */
function tile(name) {
  const img = h('img', {
    class: 'stream', alt: `Live view of ${name} (redacted)`,
    src: `/api/cameras/${seg(name)}/live.mjpeg${qs({ fps: 1, width: 480 })}`,
  });
  const mask = h('div', { class: 'offline-mask', hidden: true }, 'Camera offline');
  const status = h('span', { class: 'status' }, 'connecting…');
  const node = h('article', { class: 'tile', dataset: { camera: name } },
    h('a', { href: href('live', name), class: 'frame', 'aria-label': `Open ${name}` }, img, mask),
    h('div', { class: 'tile-foot' }, h('strong', {}, name), status));
  return {
    node,
    update: (s) => {
      const offline = !s.online;
      node.classList.toggle('offline', offline);
      node.classList.toggle('recording-failed', s.recording === 'failed');
      mask.hidden = !offline;
      status.textContent = statusText(s);
    },
    stop: () => { img.removeAttribute('src'); },
  };
}

/** "online · 5.0 fps · last frame 0.3 s ago" (or the offline state in words), and why the
 * camera does not record when it fails ("recording failed: disk full"): the analysis may be
 * online while nothing is recorded. */
export function statusText(s) {
  const age = s.last_frame_time ? Math.max(0, Date.now() / 1000 - s.last_frame_time) : null;
  const last = age === null ? 'no frame yet' : `last frame ${fmtAge(age)} ago`;
  const failed = s.recording === 'failed' ? ` · ${s.recording_error || 'recording failed'}` : '';
  if (!s.online) return `offline (${s.state}) · ${last}${failed}`;
  return `online · ${s.decode_fps.toFixed(1)} fps · ${last}${failed}`;
}
