// Live video into a <video>: H.264 fragmented MP4 from /api/cameras/<name>/live.mp4ws through
// Media Source Extensions. The server sends {"codec", "mime"} as text, then the init segment,
// then one fragment per frame. Kept live: the buffer is trimmed to the last few seconds and
// playback jumps to the live edge when it falls behind (a hidden tab, a slow decoder), so the
// picture is never more than MAX_LAG_S old. A closed socket reconnects after RETRY_MS.
// Callers check `supported()` first and fall back to MJPEG without MSE.
// A copied stream whose camera reconnected (or changed resolution), or whose camera actor
// failed over to another cluster node, or a re-encoded one whose picture changed size,
// goes on on the same socket: a new {"codec", "mime"}
// then a new init segment, appended to the same SourceBuffer (`changeType` first when the
// codec string changed); the server keeps its timestamps going.
// The stream's codec is checked too (`choose`): a granted unredacted view may be the camera's
// own H.264 copied as it is (mode "copy"), in a Main/High profile this browser may not play;
// the player then reconnects with ?encode=1, for the server's re-encoded (baseline) stream,
// and says why (console, the video's tooltip, onStatus).

const MAX_LAG_S = 0.5; // behind the buffered end by more: jump
const KEEP_S = 4; // buffered seconds kept behind the playhead
const RETRY_MS = 2000;

export function supported() {
  // globalThis, not window: live.js (which asks at load) is also imported outside a browser.
  const source = globalThis.MediaSource;
  return typeof source === 'function' && source.isTypeSupported('video/mp4; codecs="avc1.42C01E"');
}

/** What to do with the stream the server announced (`head`: {codec, mime, mode}) at `path`:
 * {action: 'play'}, {action: 'reencode', path, reason} (the same stream re-encoded) or
 * {action: 'fail', reason}. `canPlay(mime)` is MediaSource.isTypeSupported. */
export function choose(head, path, canPlay) {
  if (canPlay(head.mime)) return { action: 'play' };
  const reason = `this browser cannot play ${head.codec}`;
  if (head.mode === 'copy' && !/[?&]encode=1(&|$)/.test(path)) {
    const sep = path.includes('?') ? '&' : '?';
    return { action: 'reencode', path: `${path}${sep}encode=1`,
      reason: `${reason} (the camera's own stream): asking for it re-encoded` };
  }
  return { action: 'fail', reason };
}

/** Play `path` (e.g. /api/cameras/door/live.mp4ws?width=640) in `video`; returns stop(). */
export function play(video, path, { onStatus = () => {} } = {}) {
  let stopped = false;
  let ws = null;
  let retry = null;
  let url = null;

  const connect = () => {
    const source = new MediaSource();
    const queue = [];
    let buffer = null;
    let mime = null;
    url = URL.createObjectURL(source);
    video.muted = true;
    video.playsInline = true;
    video.src = url;
    const pump = () => {
      if (!buffer || buffer.updating || source.readyState !== 'open') return;
      const ranges = buffer.buffered;
      if (ranges.length) {
        const end = ranges.end(ranges.length - 1);
        if (end - video.currentTime > MAX_LAG_S) video.currentTime = Math.max(ranges.start(0), end - 0.05);
        const start = ranges.start(0);
        if (video.currentTime - start > 2 * KEEP_S) {
          buffer.remove(start, video.currentTime - KEEP_S);
          return;
        }
      }
      if (!queue.length) return;
      const next = queue.shift();
      if (typeof next === 'string') { buffer.changeType(next); pump(); return; }
      buffer.appendBuffer(next);
    };
    source.addEventListener('sourceopen', () => {
      const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
      ws = new WebSocket(`${scheme}//${location.host}${path}`);
      ws.binaryType = 'arraybuffer';
      ws.onmessage = (msg) => {
        // The page may have moved on (the source detached) while the socket was opening.
        if (stopped || source.readyState !== 'open') { ws.close(); return; }
        if (typeof msg.data === 'string') {
          const head = JSON.parse(msg.data);
          const choice = choose(head, path, (mime) => MediaSource.isTypeSupported(mime));
          if (choice.action !== 'play') {
            console.warn(`live video ${path}: ${choice.reason}`);
            video.title = choice.reason;
            onStatus(choice.action === 'reencode' ? 're-encoding' : 'unsupported', choice.reason);
            if (choice.action === 'reencode') { path = choice.path; release(); connect(); }
            else { stopped = true; release(); }
            return;
          }
          if (buffer) {
            // A copied stream went on after its camera reconnected: its init segment comes
            // next, on this buffer (its timestamps continue); a new codec string needs
            // changeType first, in turn with the appends. Without changeType: reconnect.
            if (head.mime !== mime) {
              if (typeof buffer.changeType !== 'function') { ws.close(); return; }
              queue.push(head.mime);
              mime = head.mime;
            }
            onStatus('playing');
            return;
          }
          mime = head.mime;
          buffer = source.addSourceBuffer(head.mime);
          buffer.mode = 'segments';
          buffer.addEventListener('updateend', pump);
          onStatus('playing');
          return;
        }
        queue.push(msg.data);
        // Far behind (a fragment cannot be skipped alone): start over from a fresh keyframe.
        if (queue.length > 60) { ws.close(); return; }
        pump();
        if (video.paused) video.play().catch(() => {});
      };
      ws.onclose = (event) => {
        if (stopped) return;
        // The server says why it ended the stream (a copy whose camera stayed away, a grant
        // that ended): worth a line for whoever looks, the player reconnects either way.
        if (event.reason) console.warn(`live video ${path}: ${event.reason} (${event.code}); reconnecting`);
        onStatus('reconnecting');
        retry = setTimeout(() => { release(); connect(); }, RETRY_MS);
      };
    }, { once: true });
  };

  const release = () => {
    if (ws) { ws.onclose = null; ws.close(); ws = null; }
    if (url) { URL.revokeObjectURL(url); url = null; }
    video.removeAttribute('src');
    video.load();
  };

  connect();
  return () => { stopped = true; clearTimeout(retry); release(); };
}
