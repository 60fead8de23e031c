// One camera large: the MJPEG stream with boxes, track ids, zones and lines drawn by the
// server (overlay=1, 5 fps), its status, and for operators/admins the unredacted view:
// a reason (audited) -> a 10-minute grant -> the stream with grant=..., a red banner with
// the reason and a countdown, and a button to end it early.

import { api, can, qs, seg } from './api.js';
import { href } from './router.js';
import { askReason, every, fill, fmtClock, h, header, message, toast } from './ui.js';
import { statusText } from './live.js';

export async function render(ctx) {
  const name = ctx.arg;
  document.title = `${name} — Live — Vigil`;
  const cameras = await api('/api/cameras');
  const known = cameras.find((c) => c.name === name);
  if (!known) {
    ctx.root.append(header(name), h('div', { class: 'state state-error', role: 'alert' },
      h('p', {}, `Camera "${name}" does not exist or is outside your camera scope.`),
      h('a', { href: href('live') }, 'Back to all cameras')));
    return null;
  }
  let grant = null;
  const img = h('img', { class: 'stream large', alt: `Live view of ${name}` });
  const mask = h('div', { class: 'offline-mask', hidden: true }, 'Camera offline');
  const status = h('p', { class: 'status', id: 'camera-status' }, statusText(known));
  const banner = h('div', { class: 'banner banner-unredacted', role: 'alert', hidden: true });
  const actions = [h('a', { href: href('live'), class: 'button' }, 'All cameras'),
    h('a', { href: href('events', null, { camera: name }), class: 'button' }, 'Events'),
    h('a', { href: href('recordings', null, { camera: name }), class: 'button' }, 'Recordings')];
  if (can(ctx.me, 'operate')) {
    actions.push(h('a', { href: href('editor', name), class: 'button' }, 'Zones & lines'));
  }
  const unredact = h('button', { type: 'button', class: 'danger', id: 'unredact' }, 'View unredacted…');
  if (can(ctx.me, 'operate')) actions.push(unredact);
  ctx.root.append(header(name, ...actions), banner,
    h('div', { class: 'frame large' }, img, mask), status);

  const stream = () => {
    img.src = `/api/cameras/${seg(name)}/live.mjpeg${qs({ overlay: 1, fps: 5, width: 1280, grant: grant?.grant })}`;
    img.alt = grant ? `Live view of ${name} (UNREDACTED)` : `Live view of ${name} (redacted)`;
  };
  stream();

  const endGrant = async (why) => {
    if (!grant) return;
    const ended = grant;
    grant = null;
    banner.hidden = true;
    unredact.hidden = false;
    stream();
    try {
      await api(`/api/cameras/${seg(name)}/live/unredacted/${seg(ended.grant)}`, { method: 'DELETE' });
    } catch (_) { /* it expires by itself */ }
    if (why) toast(why);
  };

  unredact.addEventListener('click', async () => {
    const reason = await askReason('View unredacted live video',
      'Faces will be visible. Your name, the time and this reason go into the audit log. '
      + 'The view ends after 10 minutes.');
    if (!reason) return;
    try {
      grant = await api(`/api/cameras/${seg(name)}/live/unredacted`, { method: 'POST', body: { reason } });
    } catch (err) {
      toast(message(err), 'error');
      return;
    }
    grant.reason = reason;
    unredact.hidden = true;
    stream();
    showBanner();
  });

  const showBanner = () => {
    if (!grant) return;
    const left = grant.expires_at - Date.now() / 1000;
    if (left <= 0) { endGrant('The unredacted view ended (10 minutes).'); return; }
    fill(banner,
      h('strong', {}, 'UNREDACTED'), ` — reason: ${grant.reason} — ends in `,
      h('span', { class: 'countdown' }, fmtClock(left)), ' ',
      h('button', { type: 'button', id: 'end-unredacted', onclick: () => endGrant(null) }, 'End now'));
    banner.hidden = false;
  };
  const ticker = setInterval(showBanner, 1000);
  const stopStatus = every(2000, async () => {
    const s = (await api('/api/cameras')).find((c) => c.name === name);
    if (!s) return;
    status.textContent = statusText(s);
    status.classList.toggle('recording-failed', s.recording === 'failed');
    mask.hidden = s.online;
  });
  return () => {
    clearInterval(ticker);
    stopStatus();
    img.removeAttribute('src');
    if (grant) endGrant(null);
  };
}
