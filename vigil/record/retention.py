"""Retention: which segments to delete, decided by a pure function, applied by a job.

``plan_retention`` looks only at its arguments (no clock, no disk), so every rule is a table
test and the invariants are property tests (``tests/record/test_retention.py``). In order:

1. age: an unlocked segment that ended more than ``max_age`` seconds ago goes;
2. per-camera quota: while a camera uses more than its ``max_bytes``, its oldest unlocked
   segment goes;
3. total quota: while all cameras together use more than ``total_max_bytes``, the oldest
   unlocked segment of any camera goes.

A locked segment (evidence) is never deleted. When locked segments alone exceed a quota, or
free disk space is below ``min_free_bytes``, the plan carries a warning for the operator.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SegmentMeta:
    """What retention needs to know of a segment: times in UTC seconds, size in bytes."""

    id: Hashable
    camera: str
    start: float
    end: float
    size: int
    locked: bool = False


@dataclass(frozen=True, slots=True)
class CameraRetention:
    """Limits for one camera; None means no limit of that kind."""

    max_age: float | None = None  # seconds
    max_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """``default`` for every camera unless ``cameras`` overrides it; total quota; free space."""

    default: CameraRetention = field(default_factory=CameraRetention)
    cameras: Mapping[str, CameraRetention] = field(default_factory=dict)
    total_max_bytes: int | None = None
    min_free_bytes: int | None = None

    def for_camera(self, camera: str) -> CameraRetention:
        return self.cameras.get(camera, self.default)


@dataclass(frozen=True, slots=True)
class RetentionPlan:
    """Ids to delete, oldest first, and warnings for the operator."""

    delete: list[Hashable]
    warnings: list[str]


def _oldest_first(segments: Sequence[SegmentMeta]) -> list[SegmentMeta]:
    return sorted(segments, key=lambda s: (s.start, s.end, str(s.id)))


def plan_retention(
    segments: Sequence[SegmentMeta],
    now: float,
    policy: RetentionPolicy,
    *,
    free_bytes: int | None = None,
) -> RetentionPlan:
    """The segments to delete so that ``policy`` holds at ``now`` (UTC seconds).

    ``free_bytes``: free space on the recordings disk, for the low-space warning.
    """
    kept = _oldest_first(segments)
    delete: list[SegmentMeta] = []
    warnings: list[str] = []
    for seg in kept:
        limit = policy.for_camera(seg.camera).max_age
        if limit is not None and not seg.locked and seg.end < now - limit:
            delete.append(seg)
    gone = {id(s) for s in delete}
    kept = [s for s in kept if id(s) not in gone]
    for camera in sorted({s.camera for s in kept}):
        quota = policy.for_camera(camera).max_bytes
        if quota is None:
            continue
        own = [s for s in kept if s.camera == camera]
        removed = _trim(own, quota, f"camera {camera}", warnings)
        delete.extend(removed)
        gone = {id(s) for s in removed}
        kept = [s for s in kept if id(s) not in gone]
    if policy.total_max_bytes is not None:
        delete.extend(_trim(kept, policy.total_max_bytes, "all cameras", warnings))
    low = policy.min_free_bytes
    if free_bytes is not None and low is not None and free_bytes < low:
        warnings.append(
            f"free space {free_bytes} bytes is below {low}: lower the quotas or add disk "
            "before recording stops"
        )
    return RetentionPlan([s.id for s in _oldest_first(delete)], warnings)


def _trim(
    segments: list[SegmentMeta], quota: int, what: str, warnings: list[str]
) -> list[SegmentMeta]:
    """Oldest unlocked ``segments`` to drop until their total size is within ``quota``."""
    used = sum(s.size for s in segments)
    removed: list[SegmentMeta] = []
    for seg in segments:  # oldest first
        if used <= quota:
            break
        if not seg.locked:
            removed.append(seg)
            used -= seg.size
    if used > quota:
        locked = sum(s.size for s in segments if s.locked)
        warnings.append(
            f"{what}: locked (evidence) segments use {locked} bytes, over the quota of {quota}; "
            "unlock evidence or raise the quota"
        )
    return removed


# -- applying a plan ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SegmentFile:
    """A segment's retention facts and its file."""

    meta: SegmentMeta
    path: Path


class SegmentCatalog(Protocol):
    """Where the job learns of segments and reports deletions (the store, later)."""

    def segments(self) -> Sequence[SegmentFile]: ...

    def removed(self, ids: Sequence[Hashable]) -> None: ...


@dataclass(frozen=True, slots=True)
class RetentionResult:
    """What a run did: ids whose files were deleted (or already gone), failures, warnings."""

    deleted: list[Hashable]
    missing: list[Hashable]
    failed: list[tuple[Hashable, str]]
    warnings: list[str]


class RetentionJob:
    """Applies ``plan_retention`` to files on disk; run it periodically.

    A file already gone is not an error (it is reported as missing and removed from the
    catalog); a file that cannot be deleted stays in the catalog and is retried next run.
    Empty hour/day folders left behind are removed.
    """

    def __init__(
        self,
        catalog: SegmentCatalog,
        policy: RetentionPolicy,
        recordings: Path,
        *,
        free_bytes: Callable[[Path], int] | None = None,
    ) -> None:
        self.catalog, self.policy, self.recordings = catalog, policy, recordings
        self._free = free_bytes or (lambda p: shutil.disk_usage(p).free)

    def run(self, now: float) -> RetentionResult:
        files = list(self.catalog.segments())
        free = self._free(self.recordings) if self.recordings.exists() else None
        plan = plan_retention([f.meta for f in files], now, self.policy, free_bytes=free)
        by_id = {f.meta.id: f for f in files}
        deleted: list[Hashable] = []
        missing: list[Hashable] = []
        failed: list[tuple[Hashable, str]] = []
        for seg_id in plan.delete:
            path = by_id[seg_id].path
            try:
                path.unlink()
                deleted.append(seg_id)
                self._prune(path.parent)
            except FileNotFoundError:
                missing.append(seg_id)
            except OSError as exc:
                failed.append((seg_id, str(exc)))
        self.catalog.removed(deleted + missing)
        for warning in plan.warnings:
            log.warning("retention: %s", warning)
        return RetentionResult(deleted, missing, failed, plan.warnings)

    def _prune(self, folder: Path) -> None:
        """Remove empty folders from ``folder`` up to (not including) the recordings root."""
        root = self.recordings.resolve()
        current = folder.resolve()
        while current != root and root in current.parents:
            try:
                current.rmdir()
            except OSError:
                return
            current = current.parent
