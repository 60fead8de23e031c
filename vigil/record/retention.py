"""Retention: which segments to delete, decided by a pure function, applied by a job.

``plan_retention`` looks only at its arguments (no clock, no disk), so every rule is a table
test and the invariants are property tests (``tests/record/test_retention.py``). In order:

1. age: an unlocked segment that ended more than ``max_age`` seconds ago goes;
2. per-camera quota: while a camera uses more than its ``max_bytes``, its oldest unlocked
   segment goes;
3. total quota: while all cameras together use more than ``total_max_bytes``, the oldest
   unlocked segment of any camera goes;
4. free space (emergency): while the free space of the recordings disk (plus what the rules
   above free) is below the reserve, the oldest unlocked segment of any camera goes. The
   reserve is the larger of ``min_free_bytes`` and ``reserve_seconds`` of recording at the
   rate of the last ``reserve_seconds`` (like Frigate, which deletes the oldest recordings
   when less than an hour of space is left), so the disk never fills up under the recorders.

A locked segment (evidence) is never deleted. When locked segments alone exceed a quota, or
the free space stays below the reserve, the plan carries a warning for the operator.

``RetentionJob`` is the one way plans are applied (``vigil serve`` and the tests alike): the
catalog forgets the segments first (the store re-checks each lock in the same transaction),
then the files go (with their preview thumbnails, ``vigil.record.previews``) and the
hour/day folders left empty are pruned; then exports and cached
clips go by their own rule (``vigil.record.derived``: exports after ``export_max_age``,
clips with the footage they were cut from). Before the segments, the quarantine's files
(``vigil.record.quarantine``) go by their own rule: past their camera's ``max_age``, and
first of all below the free-space reserve. A crash in between leaves
an orphan file, never a row that points at nothing. Only when the disk is below the reserve
and the catalog cannot write (SQLite on that same full disk) do the files go first.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from vigil.errors import StorageError
from vigil.record.derived import delete_derived, plan_derived, scan_derived
from vigil.record.previews import delete_previews
from vigil.record.quarantine import delete_quarantined, plan_quarantine, scan_quarantine

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SegmentMeta:
    """What retention needs to know of a segment: times in UTC seconds, size in bytes (its
    file's and its preview thumbnails')."""

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
    """``default`` for every camera unless ``cameras`` overrides it; total quota; free space
    to keep: at least ``min_free_bytes`` and ``reserve_seconds`` of recording (see rule 4)."""

    default: CameraRetention = field(default_factory=CameraRetention)
    cameras: Mapping[str, CameraRetention] = field(default_factory=dict)
    total_max_bytes: int | None = None
    min_free_bytes: int | None = None
    reserve_seconds: float | None = None
    #: Seconds an export is kept after it was written (None: for ever; ``vigil.record.derived``).
    export_max_age: float | None = None

    def for_camera(self, camera: str) -> CameraRetention:
        return self.cameras.get(camera, self.default)


def snapshot_ages(policy: RetentionPolicy, cameras: Iterable[str],
                  given: Mapping[str, float] | None = None) -> dict[str, float]:  # fmt: skip
    """Each of ``cameras``' event snapshot age limit: ``given``'s, else its ``max_age`` in
    ``policy`` (the default limits for a camera no longer configured); cameras kept for ever
    (no ``max_age``) are left out."""
    ages: dict[str, float] = {}
    for camera in cameras:
        age = (given or {}).get(camera, policy.for_camera(camera).max_age)
        if age is not None:
            ages[camera] = age
    return ages


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

    ``free_bytes``: free space on the recordings disk now (None: unknown, rule 4 is off).
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
        removed = _trim(kept, policy.total_max_bytes, "all cameras", warnings)
        delete.extend(removed)
        gone = {id(s) for s in removed}
        kept = [s for s in kept if id(s) not in gone]
    if free_bytes is not None:
        delete.extend(_free_space(kept, delete, now, policy, free_bytes=free_bytes,
                                  warnings=warnings))  # fmt: skip
    return RetentionPlan([s.id for s in _oldest_first(delete)], warnings)


def recording_rate(segments: Sequence[SegmentMeta], now: float, window: float) -> float:
    """Bytes per second recorded over the last ``window`` seconds (all cameras together).

    Measured over the time the recent segments actually span (at least one minute), so a
    recorder that started ten minutes ago is not taken for one recording a sixth as much.
    """
    recent = [s for s in segments if s.end > now - window]
    if not recent:
        return 0.0
    span = min(window, now - min(s.start for s in recent))
    return sum(s.size for s in recent) / max(span, 60.0)


def reserve_bytes(segments: Sequence[SegmentMeta], now: float, policy: RetentionPolicy) -> int:
    """The free space rule 4 keeps: ``min_free_bytes`` or ``reserve_seconds`` of recording."""
    floor = policy.min_free_bytes or 0
    seconds = policy.reserve_seconds
    if not seconds:
        return floor
    return max(floor, int(recording_rate(segments, now, seconds) * seconds))


def _free_space(
    kept: list[SegmentMeta], planned: list[SegmentMeta], now: float, policy: RetentionPolicy,
    *, free_bytes: int, warnings: list[str],
) -> list[SegmentMeta]:  # fmt: skip
    """Rule 4: the oldest unlocked segments of ``kept`` to drop until the reserve is free."""
    reserve = reserve_bytes([*kept, *planned], now, policy)
    free = free_bytes + sum(s.size for s in planned)
    removed: list[SegmentMeta] = []
    for seg in kept:  # oldest first
        if free >= reserve:
            break
        if not seg.locked:
            removed.append(seg)
            free += seg.size
    if removed:
        log.warning("retention: %d bytes free, under the reserve of %d: deleting the %d oldest "
                    "segment(s) early", free_bytes, reserve, len(removed))  # fmt: skip
    if free < reserve:
        warnings.append(
            f"free space {free} bytes is below the reserve of {reserve} even after deleting "
            "every unlocked segment allowed: add disk, unlock evidence or move other files "
            "off the recordings disk before recording stops"
        )
    return removed


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
    """Where the job learns of segments and forgets them (the store in ``vigil serve``)."""

    def segments(self) -> Sequence[SegmentFile]: ...

    def remove(self, ids: Sequence[Hashable]) -> Sequence[SegmentFile]:
        """Forget the segments among ``ids`` that may still go (a lock taken since the plan
        keeps one), in one transaction; returns those forgotten, with their files."""
        ...


@dataclass(frozen=True, slots=True)
class RetentionResult:
    """What a run did: ids whose files were deleted (or already gone), failures, warnings;
    ``kept``: planned ids the catalog refused to forget (locked meanwhile); ``removed``: the
    segments the catalog forgot, with their files."""

    deleted: list[Hashable]
    missing: list[Hashable]
    failed: list[tuple[Hashable, str]]
    warnings: list[str]
    kept: list[Hashable] = field(default_factory=list)
    removed: list[SegmentFile] = field(default_factory=list)
    #: Exports and cached clips deleted (``vigil.record.derived``).
    derived: list[Path] = field(default_factory=list)
    #: Quarantined files deleted (``vigil.record.quarantine``).
    quarantined: list[Path] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class DerivedFolders:
    """Where the media derived from recordings lie: ``exports`` and the clip cache ``clips``
    (``<data_dir>/exports``, ``<data_dir>/clips`` under ``vigil serve``)."""

    exports: Path
    clips: Path


class RetentionJob:
    """Applies ``plan_retention`` to the catalog and the files on disk; run it periodically.

    The catalog forgets the segments first, then their files are deleted (see the module
    docstring). A file already gone is not an error (reported as missing); a file that cannot
    be deleted is logged and reported as failed (an orphan for the operator). Empty hour/day
    folders left behind are removed.
    """

    def __init__(
        self,
        catalog: SegmentCatalog,
        policy: RetentionPolicy,
        recordings: Path,
        *,
        free_bytes: Callable[[Path], int | None] | None = None,
        derived: DerivedFolders | None = None,
        quarantine: Path | None = None,
    ) -> None:
        self.catalog, self.policy, self.recordings = catalog, policy, recordings
        self._free = free_bytes or disk_free_bytes
        self.derived = derived
        #: ``<data_dir>/quarantine`` (``vigil.record.quarantine``), aged before the segments.
        self.quarantine = quarantine

    def run(self, now: float) -> RetentionResult:
        files = {f.meta.id: f for f in self.catalog.segments()}
        metas = [f.meta for f in files.values()]
        # First: below the reserve a file that does not play goes before any that does.
        quarantined = self._quarantined(metas, now)
        result = dataclasses.replace(self._segments(files, metas, now), quarantined=quarantined)
        if self.derived is None:
            return result
        # After the segments: what they were cut from must not outlive them.
        removed = [(f.meta.camera, f.meta.start, f.meta.end) for f in result.removed
                   if f.meta.id in set(result.deleted) | set(result.missing)]  # fmt: skip
        locked = [(m.camera, m.start, m.end) for m in metas if m.locked]
        try:
            found = scan_derived(self.derived.exports, self.derived.clips)
            doomed = plan_derived(
                found, now, export_max_age=self.policy.export_max_age,
                clip_max_age=lambda camera: self.policy.for_camera(camera).max_age,
                locked=locked, removed=removed,
            )  # fmt: skip
            deleted = delete_derived(doomed)
        except OSError as exc:  # a folder that cannot be read: the segments' run still counts
            log.warning("retention: exports and clips not checked: %s", exc)
            deleted = []
        return dataclasses.replace(result, derived=deleted)

    def _quarantined(self, metas: list[SegmentMeta], now: float) -> list[Path]:
        """Apply ``plan_quarantine``; the segments' free space is measured after it."""
        if self.quarantine is None:
            return []
        try:
            found = scan_quarantine(self.quarantine)
            if not found:
                return []
            free = self._free(self.recordings) if self.recordings.exists() else None
            plan = plan_quarantine(
                found, now, lambda camera: self.policy.for_camera(camera).max_age,
                free_bytes=free, reserve=reserve_bytes(metas, now, self.policy),
            )  # fmt: skip
            return delete_quarantined(plan, self.quarantine)
        except OSError as exc:  # a folder that cannot be read: the segments' run still counts
            log.warning("retention: the quarantine was not checked: %s", exc)
            return []

    def _segments(
        self, files: dict[Hashable, SegmentFile], metas: list[SegmentMeta], now: float
    ) -> RetentionResult:
        free = self._free(self.recordings) if self.recordings.exists() else None
        plan = plan_retention(metas, now, self.policy, free_bytes=free)
        for warning in plan.warnings:
            log.warning("retention: %s", warning)
        if not plan.delete:
            return RetentionResult([], [], [], plan.warnings)
        early: set[Hashable] = set()  # files already deleted before the catalog forgot them
        try:
            removed = list(self.catalog.remove(plan.delete))
        except StorageError:
            if free is None or free >= reserve_bytes(metas, now, self.policy):
                raise
            removed = self._files_first([files[i] for i in plan.delete])
            early = {f.meta.id for f in removed}
        gone = {f.meta.id for f in removed}
        deleted: list[Hashable] = []
        missing: list[Hashable] = []
        failed: list[tuple[Hashable, str]] = []
        for file in removed:
            self._drop_previews(file)
            try:
                if file.meta.id in early:
                    deleted.append(file.meta.id)
                    prune_empty_dirs(file.path.parent, self.recordings)
                    continue
                file.path.unlink()
                deleted.append(file.meta.id)
            except FileNotFoundError:
                missing.append(file.meta.id)
            except OSError as exc:
                log.warning("retention: cannot delete %s: %s", file.path, exc)
                failed.append((file.meta.id, str(exc)))
            prune_empty_dirs(file.path.parent, self.recordings)
        kept = [i for i in plan.delete if i not in gone]
        return RetentionResult(deleted, missing, failed, plan.warnings, kept, removed)

    def _drop_previews(self, file: SegmentFile) -> None:
        """The segment's preview thumbnails go with it (``vigil.record.previews``); a segment
        outside the recordings folder has none."""
        data_dir = self.recordings.parent
        try:
            relative = file.path.relative_to(data_dir).as_posix()
        except ValueError:
            return
        delete_previews(data_dir, relative)

    def _files_first(self, doomed: list[SegmentFile]) -> list[SegmentFile]:
        """The disk is so full that the catalog cannot record a deletion (SQLite on the same
        disk): delete the planned files first, then forget them. Safe for evidence: the plan
        holds no locked segment, and no lock can be taken meanwhile (that is a write too).
        Returns what the catalog then forgot; what it still cannot forget is found missing
        (and forgotten) by a later run."""
        log.warning("retention: the disk is too full to record deletions; deleting %d "
                    "segment file(s) first", len(doomed))  # fmt: skip
        for file in doomed:
            self._drop_previews(file)
            try:
                file.path.unlink(missing_ok=True)
            except OSError as exc:
                log.warning("retention: cannot delete %s: %s", file.path, exc)
        try:
            return list(self.catalog.remove([f.meta.id for f in doomed]))
        except StorageError as exc:
            log.warning("retention: deleted files not yet forgotten (%s); next run", exc)
            return []


def disk_free_bytes(path: Path) -> int | None:
    """Free bytes on the filesystem of ``path`` (None when it cannot be asked)."""
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


def prune_empty_dirs(folder: Path, root: Path) -> None:
    """Remove ``folder`` and its parents while empty, up to (not including) ``root``."""
    top = root.resolve()
    try:
        current = folder.resolve()
    except OSError:
        return
    while current != top and top in current.parents:
        try:
            current.rmdir()
        except OSError:  # not empty (or already gone): stop here
            return
        current = current.parent
