"""The quarantine: segment files that no longer read, counted and aged like footage.

``vigil.record.unindexed`` moves a journaled segment whose file does not play to
``<data_dir>/quarantine/<camera>/<YYYY-MM-DD>/<HH>/<MM.SS>.mp4`` (never served: no row, no
route). What happens to it then:

- It is counted: ``vigil_quarantine_files`` and ``vigil_quarantine_bytes`` per camera in
  ``/metrics``, ``quarantine_files``/``quarantine_bytes`` in ``/api/health``
  (``quarantine_usage``; on a cluster the API sums every node's, ``MediaResolver.quarantine``),
  so an administrator sees it without reading the log.
- It is aged as footage is: once the time its name gives (its start; the file's mtime when
  the name is not a segment's) is older than its camera's ``record.max_age``, retention
  deletes it and logs its name. Unredacted footage must not outlive ``max_age`` because it
  stopped playing (``docs/privacy.md``); an administrator has that long to look at it.
  There is no knob of its own: longer would break that promise, shorter would take a file
  from the administrator before any recording of its age goes.
- Below the free-space reserve (retention's rule 4, which measures the disk, so quarantined
  bytes already count there) quarantined files go first, oldest first, before any segment
  that plays: a broken file is worth less than a recording, and without this the emergency
  deleted good recordings to keep broken ones.

The per-camera and total quotas (``max_bytes``, ``total_max_bytes``) count the stored
segments only; the quarantine is bounded by the two rules above. ``plan_quarantine`` is
pure (a table test); ``RetentionJob`` applies it before its segments.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from vigil.record.layout import parse_segment_path

log = logging.getLogger(__name__)

#: The quarantine's folder under the data dir (``vigil.record.unindexed`` moves files there).
QUARANTINE = "quarantine"


@dataclass(frozen=True, slots=True)
class QuarantinedFile:
    """One file in the quarantine: its camera (the first folder; "" for a file directly in
    the quarantine), the time of its footage (UTC seconds) and its size."""

    path: Path
    camera: str
    start: float
    size: int


def scan_quarantine(folder: Path) -> list[QuarantinedFile]:
    """The files under ``folder`` (``<data_dir>/quarantine``), oldest first; none when it is
    missing. A file that vanishes meanwhile is skipped."""
    if not folder.is_dir():
        return []
    found: list[QuarantinedFile] = []
    for where, _, names in os.walk(folder):
        for name in names:
            path = Path(where) / name
            try:
                stat = path.stat()
            except OSError:
                continue
            parts = path.relative_to(folder).parts
            try:
                start = parse_segment_path(path)[1]
            except ValueError:
                start = stat.st_mtime
            found.append(QuarantinedFile(path, parts[0] if len(parts) > 1 else "", start,
                                         stat.st_size))  # fmt: skip
    return sorted(found, key=lambda f: (f.start, str(f.path)))


def quarantine_usage(folder: Path) -> dict[str, tuple[int, int]]:
    """Files and bytes in the quarantine ``folder``, per camera."""
    usage: dict[str, tuple[int, int]] = {}
    for file in scan_quarantine(folder):
        files, size = usage.get(file.camera, (0, 0))
        usage[file.camera] = (files + 1, size + file.size)
    return usage


def merged_usage(*usages: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
    """``quarantine_usage`` answers of several data dirs (a cluster's nodes: a camera that
    failed over has quarantined files on more than one), summed per camera."""
    total: dict[str, tuple[int, int]] = {}
    for usage in usages:
        for camera, (files, size) in usage.items():
            had = total.get(camera, (0, 0))
            total[camera] = (had[0] + files, had[1] + size)
    return total


@dataclass(frozen=True, slots=True)
class QuarantinePlan:
    """The files to delete: ``aged`` (past their camera's ``max_age``) and ``early`` (to
    bring the free space up to the reserve)."""

    aged: list[QuarantinedFile]
    early: list[QuarantinedFile]


def plan_quarantine(
    files: Sequence[QuarantinedFile], now: float, max_age: Callable[[str], float | None], *,
    free_bytes: int | None = None, reserve: int = 0,
) -> QuarantinePlan:  # fmt: skip
    """Which quarantined ``files`` go at ``now`` (see the module docstring): those whose
    footage is older than ``max_age(camera)``, then, while ``free_bytes`` (None: unknown)
    plus what they free is below ``reserve``, the oldest of the others."""
    aged: list[QuarantinedFile] = []
    kept: list[QuarantinedFile] = []
    for file in sorted(files, key=lambda f: (f.start, str(f.path))):
        limit = max_age(file.camera)
        (aged if limit is not None and file.start < now - limit else kept).append(file)
    early: list[QuarantinedFile] = []
    if free_bytes is not None:
        free = free_bytes + sum(f.size for f in aged)
        for file in kept:
            if free >= reserve:
                break
            early.append(file)
            free += file.size
    return QuarantinePlan(aged, early)


def delete_quarantined(plan: QuarantinePlan, folder: Path) -> list[Path]:
    """Delete the files of ``plan`` (each logged by name, with why), then the folders left
    empty under ``folder``; returns those deleted (or already gone)."""
    from vigil.record.retention import prune_empty_dirs

    done: list[Path] = []
    for files, why in ((plan.aged, "its footage is older than the camera's record.max_age"),
                       (plan.early, "the disk is below the free-space reserve, and a file "
                                    "that does not play goes before any recording")):  # fmt: skip
        for file in files:
            try:
                file.path.unlink(missing_ok=True)
            except OSError as exc:
                log.warning("retention: cannot delete quarantined %s: %s", file.path, exc)
                continue
            log.warning("retention: deleted quarantined %s (%d bytes): %s", file.path,
                        file.size, why)  # fmt: skip
            done.append(file.path)
            prune_empty_dirs(file.path.parent, folder)
    return done
