// Background jobs (event clips, exports): follow one until it is done, showing its progress,
// and ask whether an event's clip is ready to play (202 with the job while it is prepared).

import { ApiError, api } from './api.js';
import { h } from './ui.js';

const POLL_MS = 1000;

/** A "Preparing… 42 %" line with a progress bar; `set(job)` updates it. */
export function progressLine(text) {
  const bar = h('progress', { max: 1, value: 0, class: 'job-progress' });
  const label = h('span', {}, `${text}…`);
  const node = h('p', { class: 'muted', 'aria-live': 'polite' }, label, ' ', bar);
  const set = (job) => {
    bar.value = job.progress;
    const what = job.state === 'queued' ? 'queued' : `${Math.round(job.progress * 100)} %`;
    label.textContent = `${text}… ${what}`;
  };
  return { node, set };
}

/**
 * Poll `job.url` until the job is done (resolves with it) or failed (throws ApiError);
 * `onProgress(job)` after each poll. `signal` (an AbortSignal) stops the polling.
 */
export async function followJob(job, onProgress = () => {}, signal = null) {
  let current = job;
  onProgress(current);
  while (current.state === 'queued' || current.state === 'running') {
    await new Promise((resolve) => { setTimeout(resolve, POLL_MS); });
    if (signal && signal.aborted) throw new DOMException('stopped', 'AbortError');
    current = await api(current.url, { signal });
    onProgress(current);
  }
  if (current.state === 'failed') {
    throw new ApiError(500, current.error_code || 'job_failed', current.error || 'The job failed.');
  }
  return current;
}

/**
 * Whether the clip at `url` can play now: resolves `{ job: null, cut }` when it is ready
 * (`cut`: the X-Vigil-Clip-Cut it is served as), or `{ job }` with the job that is preparing
 * it (202). Asks for one byte only; errors (404 no_recording...) throw ApiError.
 */
export async function clipJob(url, signal = null) {
  const reply = await api(url, { raw: true, signal, headers: { Range: 'bytes=0-0' } });
  if (reply.status !== 202) return { job: null, cut: reply.headers.get('X-Vigil-Clip-Cut') };
  return { job: await reply.json(), cut: null };
}

/** `url` pinned to `cut` (every range request of the player then reads that one file). */
export function pinnedClip(url, cut) {
  if (!cut) return url;
  return `${url}${url.includes('?') ? '&' : '?'}cut=${encodeURIComponent(cut)}`;
}
