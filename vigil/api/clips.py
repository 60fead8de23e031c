"""Event clips: the event's span plus the camera's pre/post-roll, cut from the recorded
segments by the export machinery (``vigil.record.export``), redacted unless granted, and
cached under ``<data_dir>/clips/<camera>/``.

The cache key holds everything the clip is made of: the event, redacted or not, the camera's
redaction settings (a new mask or mode after a restart cuts the clip again), the span, and
each source segment's id, end and SHA-256. A clip cut while the post-roll was still being
recorded (or before retention deleted a segment) is therefore cut again when the segments
change, and an open event's clip (its span grows) is never served stale. Older clips of the
same event and redaction are deleted when a new one is cut; when no segment covers the event
any more, its cached clips are deleted too, so the cache never outlives retention. The whole
cache is held under ``ApiSettings.clip_cache_bytes``, least recently served first.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from vigil.api.errors import ApiError
from vigil.api.media import RECORDINGS, stored_media_path
from vigil.api.state import AppState
from vigil.privacy import UnredactedGrant, unredacted_access
from vigil.record.export import export_range, manifest_path
from vigil.record.layout import check_camera_id
from vigil.record.signing import load_or_create_key
from vigil.store import EventRow, SegmentRepo, SegmentRow


@dataclass(frozen=True, slots=True)
class Clip:
    """A clip file on disk; ``start``/``end`` the UNIX span asked for; ``cached``: served
    from the cache rather than cut for this request."""

    path: Path
    start: float
    end: float
    cached: bool


def clip_span(state: AppState, row: EventRow, now: float | None = None) -> tuple[float, float]:
    """``(start, end)`` UNIX seconds: the event's span (an open event ends now) widened by
    the camera's pre- and post-roll."""
    pre, post = state.settings.clip_roll(row.camera)
    end = row.end if row.end is not None else (time.time() if now is None else now)
    return row.start - pre, end + post


def event_clip(state: AppState, row: EventRow, grant: UnredactedGrant | None) -> Clip:
    """The clip of ``row`` (redacted unless ``grant``), cut on first request, then cached.

    404 ``no_recording`` when no segment overlaps the span. Blocking (decodes and encodes
    for a redacted clip): call from a worker thread.
    """
    camera = check_camera_id(row.camera)
    start, end = clip_span(state, row)
    with state.db.session() as session:
        segments = SegmentRepo(session).list(camera, start, end)
    prefix = _prefix(row.id, redacted=grant is None)
    folder = state.clips_dir / camera
    if not segments:
        _delete_clips(folder, prefix, keep=None)
        raise ApiError(404, "no_recording", f"no recording of camera {camera!r} covers event "
                       f"{row.id!r} ({_iso(start)} .. {_iso(end)}): the camera was not "
                       "recording then, or retention deleted the segments")  # fmt: skip
    redaction = state.redact_config(camera).model_dump_json()
    digest = _digest(row.id, grant is None, redaction, (start, end), segments)
    path = folder / f"{prefix}-{digest}.mp4"
    with state.clip_lock(path.name):
        if path.is_file():
            os.utime(path)  # served: the newest in the cache's least-recently-served order
            return Clip(path, start, end, cached=True)
        _delete_clips(folder, prefix, keep=path)
        sources = [stored_media_path(state.data_dir, s.path, RECORDINGS) for s in segments]
        export_range(
            sources, start, end, path,
            key=load_or_create_key(state.signing_key_path),
            redactor_factory=state.export_redactor(camera, grant), grant=grant, camera=camera,
            starts=[s.start for s in segments],
        )  # fmt: skip
    prune_clip_cache(state.clips_dir, state.settings.clip_cache_bytes, keep=path)
    return Clip(path, start, end, cached=False)


def segment_file(state: AppState, row: SegmentRow, actor: str) -> Path:
    """The file that plays segment ``row`` for ``actor`` (an operator): the recording itself,
    or, for a camera with static masks, a masks-only re-encode of it (masks apply even to
    unredacted output), cut on first request and cached with the clips. Blocking."""
    source = stored_media_path(state.data_dir, row.path, RECORDINGS)
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
        _delete_clips(folder, f"segment-{row.id}", keep=path)
        grant = unredacted_access("segment playback (static masks applied)", actor,
                                  state.unredacted_file, f"segment {row.id}")  # fmt: skip
        export_range(
            [source], row.start, row.end, path, key=load_or_create_key(state.signing_key_path),
            redactor_factory=state.export_redactor(camera, grant), grant=grant, camera=camera,
            starts=[row.start],
        )  # fmt: skip
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


def _delete_clips(folder: Path, prefix: str, keep: Path | None) -> None:
    if not folder.is_dir():
        return
    for old in folder.glob(f"{prefix}-*.mp4"):
        if old != keep:
            old.unlink(missing_ok=True)
            manifest_path(old).unlink(missing_ok=True)


def _iso(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).isoformat(timespec="seconds")
