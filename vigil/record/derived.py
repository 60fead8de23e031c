"""Retention of media derived from recordings: exports and the clip cache.

Exports (``<data_dir>/exports``) and cached clips and masked segment copies
(``<data_dir>/clips/<camera>``) are cut from segments, and each carries a manifest naming its
camera and the footage's span. Without a rule of their own they would outlive the segments'
retention: an unredacted export or a masked (otherwise unredacted) segment copy kept for ever
is footage past ``max_age``. ``RetentionJob`` applies ``plan_derived`` after each run:

- an **export** goes ``export_max_age`` seconds after it was written (its file's time), unless
  its footage overlaps an evidence-locked segment of its camera: evidence exports stay while
  the lock holds;
- a **cached clip** goes once its footage overlaps a segment that retention removed (the
  cache never holds what the recordings no longer hold), or ended more than its camera's
  ``max_age`` ago, unless a locked segment covers it (it would only be cut again). Deleting a
  clip costs only a cut on the next request;
- a file whose manifest cannot be read is judged by its own time: an export as above, a
  clip once older than ``UNKNOWN_GRACE_S`` (a clip being written has no manifest for a
  moment).

``plan_derived`` is pure (the files, spans and clock are arguments); ``scan_derived`` reads
the folders.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from vigil.record.export import manifest_path

log = logging.getLogger(__name__)

#: Seconds a cached clip without a readable manifest is left alone (it may be being written).
UNKNOWN_GRACE_S = 3600.0

#: ``(camera, start, end)`` in UTC seconds.
Span = tuple[str, float, float]
Kind = Literal["export", "clip"]


@dataclass(frozen=True, slots=True)
class DerivedFile:
    """An export or cached clip: its file, when it was written (UNIX s), and the footage it
    holds (None when its manifest cannot be read)."""

    kind: Kind
    path: Path
    written: float
    footage: Span | None


def plan_derived(
    files: Iterable[DerivedFile], now: float, *, export_max_age: float | None,
    clip_max_age: Callable[[str], float | None], locked: Sequence[Span],
    removed: Sequence[Span],
) -> list[DerivedFile]:  # fmt: skip
    """The files to delete at ``now`` (see the module docstring)."""
    doomed = []
    for file in files:
        held = file.footage is not None and _overlaps(file.footage, locked)
        if file.kind == "export":
            expired = export_max_age is not None and file.written < now - export_max_age
            if expired and not held:
                doomed.append(file)
            continue
        if file.footage is None:
            if file.written < now - UNKNOWN_GRACE_S:
                doomed.append(file)
            continue
        camera, _, end = file.footage
        limit = clip_max_age(camera)
        aged = limit is not None and end < now - limit
        if _overlaps(file.footage, removed) or (aged and not held):
            doomed.append(file)
    return doomed


def _overlaps(span: Span, others: Sequence[Span]) -> bool:
    camera, start, end = span
    return any(c == camera and s < end and start < e for c, s, e in others)


def scan_derived(exports: Path, clips: Path) -> list[DerivedFile]:
    """The exports under ``exports`` and the cached clips under ``clips/<camera>``."""
    found = [_read("export", p) for p in _mp4s(exports.glob("*.mp4"))]
    found += [_read("clip", p) for p in _mp4s(clips.glob("*/*.mp4"))]
    return [f for f in found if f is not None]


def delete_derived(files: Sequence[DerivedFile]) -> list[Path]:
    """Delete each file and its manifest; returns the files deleted (a failure is logged and
    tried again at the next run)."""
    deleted = []
    for file in files:
        try:
            file.path.unlink(missing_ok=True)
            manifest_path(file.path).unlink(missing_ok=True)
        except OSError as exc:
            log.warning("retention: cannot delete %s %s: %s", file.kind, file.path, exc)
            continue
        deleted.append(file.path)
    if deleted:
        log.info("retention: deleted %d export(s) and cached clip(s)", len(deleted))
    return deleted


def _mp4s(paths: Iterable[Path]) -> list[Path]:
    # Hidden files are being written (``partial_file``); they are not finished media yet.
    return [p for p in paths if not p.name.startswith(".")]


def _read(kind: Kind, path: Path) -> DerivedFile | None:
    try:
        written = path.stat().st_mtime
    except OSError:  # deleted meanwhile (the clip cache prunes itself too)
        return None
    try:
        manifest = json.loads(manifest_path(path).read_text(encoding="utf-8"))
        footage: Span | None = (str(manifest["camera"]), _seconds(manifest["start"]),
                                _seconds(manifest["end"]))  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError):
        footage = None
    return DerivedFile(kind, path, written, footage)


def _seconds(iso: object) -> float:
    if not isinstance(iso, str):
        raise TypeError(f"not a time: {iso!r}")
    return datetime.fromisoformat(iso).timestamp()
