"""Event clips: the event's span plus the camera's pre/post-roll, cut from the recorded
segments by the export machinery (``vigil.record.export``), redacted unless granted, and
cached under ``<data_dir>/clips/<camera>/``.

Redacted clips are rendered by ``clip`` jobs (``vigil.api.jobs``), not inside a request: the
server queues one when a live event ends (``ClipJobSink``), so that the clip is in the cache
before anyone opens it; a request for a clip that is not ready queues it at the top
(``queue_clip``) and answers 202 with the job's progress. Unredacted clips are a stream copy
(fast, or a masks-only re-encode for a camera with static masks) and are still cut in the
request that was granted them.

The cache key holds everything the clip is made of: the event, redacted or not, the camera's
redaction settings (a new mask or mode after a restart cuts the clip again), the span, and
each source segment's id, end and SHA-256. A clip cut while the post-roll was still being
recorded (or before retention deleted a segment) is therefore cut again when the segments
change, and an open event's clip (its span grows) is never served stale. Older clips of the
same event and redaction are deleted once a new one is cut (but those served in the last
``SERVED_GRACE_S``: a player may still be reading one); when no segment covers the event
any more, its cached clips are deleted too, so the cache never outlives retention. The whole
cache is held under ``ApiSettings.clip_cache_bytes``, least recently served first.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vigil.api.errors import ApiError
from vigil.api.jobs import (
    PRIORITY_BACKGROUND,
    PRIORITY_CLIP_WAITED,
    Deferred,
    JobLimits,
    Progress,
    submit,
)
from vigil.api.media import segment_source
from vigil.api.state import AppState
from vigil.privacy import UnredactedGrant, unredacted_access
from vigil.record.export import export_range, manifest_path
from vigil.record.layout import check_camera_id
from vigil.record.signing import load_or_create_key
from vigil.store import Database, EventRepo, EventRow, JobRepo, JobRow, SegmentRepo, SegmentRow
from vigil.types import Event, EventState

log = logging.getLogger(__name__)

_FRAME_S = 0.25  # recordings that reach the clip's end but for a frame or so are complete
_RECHECK_S = 2.0  # how often a deferred clip looks whether its post-roll is recorded
#: An open event's clip grows with it: the last one rendered is served for this long.
OPEN_CLIP_FRESH_S = 30.0
#: A superseded clip served this recently is left to the cache's pruning, not deleted when
#: its successor is cut: a response (or a player's next range request) may still read it.
SERVED_GRACE_S = 120.0


@dataclass(frozen=True, slots=True)
class Clip:
    """A clip file on disk; ``start``/``end`` the UNIX span asked for; ``cached``: served
    from the cache rather than cut for this request; ``segments`` and ``redaction``: what it
    was cut from (segment ids; ``ClipPlan.redaction``); ``stale``: an earlier cut of an
    ended event served while the complete one is rendered (``ready_clip``)."""

    path: Path
    start: float
    end: float
    cached: bool
    segments: tuple[int, ...] = ()
    redaction: str = ""
    stale: bool = False


def clip_span(state: AppState, row: EventRow, now: float | None = None) -> tuple[float, float]:
    """``(start, end)`` UNIX seconds: the event's span (an open event ends now) widened by
    the camera's pre- and post-roll."""
    pre, post = state.settings.clip_roll(row.camera)
    end = row.end if row.end is not None else (time.time() if now is None else now)
    return row.start - pre, end + post


@dataclass(frozen=True, slots=True)
class ClipPlan:
    """What the clip of an event is made of now, and the cache file that holds it."""

    path: Path
    start: float
    end: float
    segments: list[SegmentRow]
    #: A digest of the camera's redaction settings the clip is cut with.
    redaction: str

    @property
    def recorded_until(self) -> float:
        return max((s.end for s in self.segments), default=self.start)

    def clip(self, *, cached: bool) -> Clip:
        return Clip(self.path, self.start, self.end, cached,
                    tuple(s.id for s in self.segments), self.redaction)  # fmt: skip


def plan_clip(state: AppState, row: EventRow, *, redacted: bool) -> ClipPlan:
    """The cache file of ``row``'s clip as the recordings stand now; 404 ``no_recording``
    (and its cached clips deleted) when no segment overlaps the span."""
    camera = check_camera_id(row.camera)
    start, end = clip_span(state, row)
    with state.db.session() as session:
        segments = SegmentRepo(session).list(camera, start, end)
    prefix = _prefix(row.id, redacted=redacted)
    folder = state.clips_dir / camera
    if not segments:
        _delete_clips(folder, prefix, keep=None)
        raise ApiError(404, "no_recording", f"no recording of camera {camera!r} covers event "
                       f"{row.id!r} ({_iso(start)} .. {_iso(end)}): the camera was not "
                       "recording then, or retention deleted the segments")  # fmt: skip
    redaction = state.redact_config(camera).model_dump_json()
    digest = _digest(row.id, redacted, redaction, (start, end), segments)
    path = folder / f"{prefix}-{digest}.mp4"
    return ClipPlan(path, start, end, segments, hashlib.sha256(redaction.encode()).hexdigest())


def cached_clip(state: AppState, row: EventRow) -> Clip | None:
    """The redacted clip of ``row`` when the cache holds it for the recordings as they are
    now (ready to serve), else None. 404 ``no_recording`` as ``plan_clip``."""
    return _served(plan_clip(state, row, redacted=True))


def _served(plan: ClipPlan) -> Clip | None:
    return _touched(plan.clip(cached=True))


def ready_clip(state: AppState, row: EventRow) -> Clip | None:
    """The redacted clip to serve now, or None when it must be rendered first.

    - The cached clip of the recordings as they are.
    - Else, for an event still open (its span grows with every request), the one its last
      job rendered moments ago (``OPEN_CLIP_FRESH_S``).
    - Else, for an ended event, the one its last job cut while the post-roll was still being
      recorded (``stale``), as long as the recordings only grew since (every segment it was
      cut from is still there, the span and the redaction settings are the same), and its
      complete clip is queued in the background: asked during its post-roll, a clip would
      otherwise be cut again at every request as each new segment lands, each answering 202.
    """
    plan = plan_clip(state, row, redacted=True)
    clip = _served(plan)
    if clip is not None:
        return clip
    earlier = _last_rendered(state, row)
    if earlier is None:
        return None
    if row.end is None:
        fresh = time.time() - earlier[1] <= OPEN_CLIP_FRESH_S
        return _touched(earlier[0]) if fresh else None
    if not _grown_from(plan, earlier[0]):
        return None
    try:
        queue_clip(state, row.id, row.camera, owner=None, priority=PRIORITY_BACKGROUND)
    except ApiError as exc:  # the queue is full: the next request tries again
        log.warning("event %s: complete clip not queued (%s)", row.id, exc)
    clip = _touched(earlier[0])
    return None if clip is None else replace(clip, stale=True)


def _touched(clip: Clip) -> Clip | None:
    """``clip``, marked served now (so spared while its successor is cut, and newest in the
    least-recently-served order), or None when it was deleted meanwhile."""
    try:
        os.utime(clip.path)
    except FileNotFoundError:
        return None
    return clip


def _last_rendered(state: AppState, row: EventRow) -> tuple[Clip, float] | None:
    """The clip the event's last finished job cut (and when it finished), if still on disk.
    (The last done, not the last: the successor it stands in for is queued or rendering.)"""
    with state.db.session() as session:
        job = JobRepo(session).latest(clip_job_key(row.id), state="done")
    clip = None if job is None else _job_clip(state, row, job)
    if clip is None or job is None or job.finished is None:
        return None
    return clip, job.finished


def _job_clip(state: AppState, row: EventRow, job: JobRow) -> Clip | None:
    """The clip a finished ``clip`` job of ``row`` cut, if still on disk."""
    result = job.result or {}
    name = Path(str(result.get("file", ""))).name
    path = state.clips_dir / row.camera / name
    if not name or not path.is_file():
        return None
    return Clip(path, float(result["start"]), float(result["end"]), cached=True,
                segments=tuple(int(s) for s in result.get("segments", ())),
                redaction=str(result.get("redaction", "")))  # fmt: skip


def clip_cut(clip: Clip) -> str:
    """The name of ``clip``'s cut (its file's digest), for ``pinned_clip``: a player's range
    requests name it, so that each reads the file its first one did."""
    return clip.path.stem.rsplit("-", 1)[-1]


def pinned_clip(state: AppState, row: EventRow, cut: str) -> Clip:
    """The redacted cut ``cut`` (``clip_cut``) of ``row``'s clip, while it is on disk.

    A player reads a clip in range requests; between two of them the clip may be replaced
    (the complete cut after one made during the post-roll), and bytes of the new file after
    those of the old one break its decoding. So a player names the cut its first answer
    named. Only the cut the recordings make now, or one a clip job cut with the camera's
    redaction settings as they are now (a new mask is never bypassed by an old URL), is
    served; 410 ``clip_replaced`` once it is gone (open the clip again, without ``cut``).
    """
    plan = plan_clip(state, row, redacted=True)
    clip: Clip | None = None
    if clip_cut(plan.clip(cached=True)) == cut:
        clip = _served(plan)
    else:
        with state.db.session() as session:
            jobs = JobRepo(session).of_key(clip_job_key(row.id), state="done")
        for job in jobs:
            made = _job_clip(state, row, job)
            if made is not None and clip_cut(made) == cut and made.redaction == plan.redaction:
                clip = _touched(made)
                break
    if clip is None:
        raise ApiError(410, "clip_replaced", f"cut {cut!r} of the clip of event {row.id!r} "
                       "is no longer served (replaced, or the redaction settings changed): "
                       "open the clip again without 'cut'")  # fmt: skip
    return clip


def _grown_from(plan: ClipPlan, clip: Clip) -> bool:
    """Whether ``plan`` is ``clip``'s recordings grown (none deleted by retention since, the
    same span and redaction): only then may ``clip`` stand in for it."""
    same = (clip.start, clip.end, clip.redaction) == (plan.start, plan.end, plan.redaction)
    return same and bool(clip.segments) and set(clip.segments) <= {s.id for s in plan.segments}


def event_clip(
    state: AppState, row: EventRow, grant: UnredactedGrant | None,
    on_fraction: Callable[[float], None] | None = None,
) -> Clip:  # fmt: skip
    """The clip of ``row`` (redacted unless ``grant``: then masks-only or a stream copy, see
    ``AppState.export_redactor``), cut unless cached.

    404 ``no_recording`` when no segment overlaps the span. Blocking (decodes and encodes
    for a redacted clip): call from a worker thread (the clip job does, for redacted clips).
    """
    plan = plan_clip(state, row, redacted=grant is None)
    path, camera = plan.path, row.camera
    with state.clip_lock(path.name):
        cached = _served(plan)
        if cached is not None:
            return cached
        sources = [segment_source(state.media, s) for s in plan.segments]
        export_range(
            sources, plan.start, plan.end, path,
            key=load_or_create_key(state.signing_key_path),
            redactor_factory=state.export_redactor(camera, grant), grant=grant, camera=camera,
            starts=[s.start for s in plan.segments], on_fraction=on_fraction,
            face_search=state.face_search(row.box) if grant is None else None,
        )  # fmt: skip
        # Only now: the earlier cut is served (``stale``) while this one renders.
        _delete_clips(path.parent, _prefix(row.id, redacted=grant is None), keep=path,
                      spare_served_s=SERVED_GRACE_S)  # fmt: skip
    prune_clip_cache(state.clips_dir, state.settings.clip_cache_bytes, keep=path)
    return plan.clip(cached=False)


def clip_job_key(event_id: str) -> str:
    """The job key of an event's redacted clip (one active job per event)."""
    return f"clip:{event_id}"


def queue_clip(state: AppState, event_id: str, camera: str, *, owner: str | None,
               priority: int) -> JobRow:  # fmt: skip
    """Queue the rendering of an event's redacted clip (or promote the job already queued)."""
    job = submit(state.db, state.job_limits, "clip", {"event": event_id, "camera": camera},
                 owner=owner, priority=priority, key=clip_job_key(event_id))  # fmt: skip
    state.wake_jobs()
    return job


def run_clip_job(state: AppState, job: JobRow, progress: Progress) -> dict[str, Any]:
    """The ``clip`` job: render the event's redacted clip into the cache.

    A clip nobody waits for yet is deferred until the recordings reach its end (the post-roll
    is still being recorded when the event ends), at most ``clip_settle_s`` after it, so that
    it is cut once, complete, rather than again at the first request.
    """
    event_id = str(job.params["event"])
    with state.db.session() as session:
        row = EventRepo(session).get(event_id)
    if row is None:
        raise ApiError(404, "not_found", f"event {event_id!r} no longer exists")
    if job.priority < PRIORITY_CLIP_WAITED and row.end is not None:
        plan = plan_clip(state, row, redacted=True)
        now = time.time()
        settled = now >= plan.end + state.settings.clip_settle_s
        if plan.recorded_until < plan.end - _FRAME_S and not settled:
            raise Deferred(now + _RECHECK_S)
    clip = event_clip(state, row, None, on_fraction=progress)
    return {
        "event": row.id,
        "url": f"/api/events/{row.id}/clip",
        "file": clip.path.name,
        "start": clip.start,
        "end": clip.end,
        "size": clip.path.stat().st_size,
        "segments": list(clip.segments),
        "redaction": clip.redaction,
    }


class ClipJobSink:
    """An ``EventSink`` that queues the redacted clip of every live event that ends on a
    recording camera (``has_clip``), so that it is ready before anyone opens it.

    Background clips count against ``max_queued`` (the job bound) like any job: beyond it the
    clip is skipped (and logged) and cut when someone asks. ``on_queued``: called after a job
    was queued (the API's ``AppState.wake_jobs``), so an idle worker starts at once.
    """

    def __init__(self, db: Database, *, max_queued: int = 200,
                 on_queued: Callable[[], None] | None = None) -> None:  # fmt: skip
        self.db = db
        self.limits = JobLimits(max_queued, {})
        self.on_queued = on_queued

    def publish(self, event: Event) -> None:
        if event.state is not EventState.END or not event.live or not event.has_clip:
            return
        try:
            submit(
                self.db,
                self.limits,
                "clip",
                {"event": event.id, "camera": event.camera_id},
                owner=None,
                priority=PRIORITY_BACKGROUND,
                key=clip_job_key(event.id),
            )
        except ApiError as exc:  # the queue is full: the clip is cut on request instead
            log.warning("event %s: clip not queued (%s)", event.id, exc)
            return
        if self.on_queued is not None:
            self.on_queued()

    def close(self) -> None:
        """Nothing to release: the database belongs to whoever built it."""


def segment_file(state: AppState, row: SegmentRow, actor: str) -> Path:
    """The file that plays segment ``row`` for ``actor`` (an operator): the recording itself,
    or, for a camera with static masks, a masks-only re-encode of it (masks apply even to
    unredacted output), cut on first request and cached with the clips. Blocking."""
    source = segment_source(state.media, row)
    config = state.redact_config(row.camera)
    if not config.masks:
        return source
    camera = check_camera_id(row.camera)
    material = [row.id, row.end, row.sha256, config.model_dump_json()]
    digest = hashlib.sha256(json.dumps(material).encode()).hexdigest()[:16]
    folder = state.clips_dir / camera
    path = folder / f"segment-{row.id}-{digest}.mp4"
    with state.clip_lock(path.name):
        if path.is_file():
            os.utime(path)
            return path
        grant = unredacted_access("segment playback (static masks applied)", actor,
                                  state.unredacted_file, f"segment {row.id}")  # fmt: skip
        export_range(
            [source], row.start, row.end, path, key=load_or_create_key(state.signing_key_path),
            redactor_factory=state.export_redactor(camera, grant), grant=grant, camera=camera,
            starts=[row.start],
        )  # fmt: skip
        _delete_clips(folder, f"segment-{row.id}", keep=path, spare_served_s=SERVED_GRACE_S)
    prune_clip_cache(state.clips_dir, state.settings.clip_cache_bytes, keep=path)
    return path


def prune_clip_cache(root: Path, max_bytes: int, *, keep: Path) -> list[Path]:
    """Delete the least recently served clips (with their manifests) until the cache under
    ``root`` holds at most ``max_bytes``; never ``keep`` (the clip being served). Returns
    the clips deleted. Clips are derived from recordings, so deleting one only costs a cut."""
    clips = []
    for clip in root.glob("*/*.mp4"):
        try:
            info = clip.stat()
        except FileNotFoundError:  # another request pruned it meanwhile
            continue
        clips.append((info.st_mtime, info.st_size, clip))
    total = sum(size for _, size, _ in clips)
    deleted = []
    for _, size, clip in sorted(clips):
        if total <= max_bytes:
            break
        if clip == keep:
            continue
        clip.unlink(missing_ok=True)
        manifest_path(clip).unlink(missing_ok=True)
        total -= size
        deleted.append(clip)
    return deleted


def _prefix(event_id: str, *, redacted: bool) -> str:
    # Event ids come from the database, not the file system: hash them into a safe name.
    name = hashlib.sha256(event_id.encode()).hexdigest()[:20]
    return f"{name}-{'redacted' if redacted else 'unredacted'}"


def _digest(
    event_id: str, redacted: bool, redaction: str, span: tuple[float, float],
    segments: list[SegmentRow],
) -> str:  # fmt: skip
    material = [event_id, redacted, redaction, *span,
                [(s.id, s.end, s.sha256) for s in segments]]  # fmt: skip
    return hashlib.sha256(json.dumps(material).encode()).hexdigest()[:16]


def _delete_clips(folder: Path, prefix: str, keep: Path | None,
                  spare_served_s: float = 0.0) -> None:  # fmt: skip
    """Delete the clips of ``prefix`` but ``keep``, and but those served in the last
    ``spare_served_s`` (a response may be sending one: ``prune_clip_cache`` takes them
    later, least recently served first)."""
    if not folder.is_dir():
        return
    served_after = time.time() - spare_served_s
    for old in folder.glob(f"{prefix}-*.mp4"):
        if old == keep:
            continue
        try:
            if spare_served_s and old.stat().st_mtime > served_after:
                continue
        except FileNotFoundError:
            continue
        old.unlink(missing_ok=True)
        manifest_path(old).unlink(missing_ok=True)


def _iso(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).isoformat(timespec="seconds")
