"""Preview thumbnails of recorded segments: small *redacted* JPEGs, several per segment.

The recordings timeline shows one when the pointer hovers over it (as Frigate's scrubbing
previews). They are made at record time, never decoded in a request: a thread of
``vigil serve`` (``vigil.runtime.previews.PreviewTaker``) redacts the camera's latest
analysed frame every ``record.preview_interval`` seconds and keeps the JPEG in the camera's
``PreviewBuffer``; when a segment is finished, the previews taken during it are written
beside it and its database row lists them. So a preview lives exactly as long as its
segment:

- layout: ``previews/<camera>/<date>/<HH>/<MM.SS>/<offset ms>.jpg``, the segment's own path
  under ``previews/`` without ``.mp4`` (``preview_dir``); ``offset ms`` counts from the
  segment's start;
- index: the row's ``previews`` column holds the offsets (``"0 2000 4000"``) and
  ``preview_bytes`` their size, so a time maps to a file with one range query
  (``nearest_preview``) on any node, and retention's quotas count the previews' bytes;
- retention deletes a segment's preview folder with its file (``delete_previews``, called
  by ``RetentionJob``).

A preview that cannot be written (disk full) is dropped, never the segment's indexing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Protocol

from vigil.paths import PREVIEWS, RECORDINGS

log = logging.getLogger(__name__)

#: How far (s) from the asked time a preview may be and still be "the nearest": about one
#: segment, so a hover just outside a recording still shows its edge, not a far one.
MAX_PREVIEW_GAP_S = 10.0
#: Suffix of a preview being written (hidden name, renamed when complete).
_TMP = ".tmp"


@dataclass(frozen=True, slots=True)
class PreviewSet:
    """The previews of one segment: offsets (ms from its start, ascending) and total bytes."""

    offsets: tuple[int, ...] = ()
    size: int = 0

    def column(self) -> str | None:
        """The ``segments.previews`` value: offsets separated by spaces (None: none)."""
        return " ".join(str(o) for o in self.offsets) or None


def parse_offsets(column: str | None) -> list[int]:
    """The offsets a ``segments.previews`` value lists (empty for None or garbage)."""
    out: list[int] = []
    for part in (column or "").split():
        if part.isdigit():
            out.append(int(part))
    return out


def preview_dir(segment_path: str) -> str:
    """The preview folder (relative to the data dir) of the segment at ``segment_path``
    (relative to the data dir, ``recordings/...mp4``)."""
    parts = PurePosixPath(segment_path).parts
    if len(parts) < 2 or parts[0] != RECORDINGS or not parts[-1].endswith(".mp4"):
        raise ValueError(f"{segment_path!r} is not a segment path under {RECORDINGS}/")
    return PurePosixPath(PREVIEWS, *parts[1:-1], parts[-1][: -len(".mp4")]).as_posix()


def preview_file(segment_path: str, offset_ms: int) -> str:
    """The preview file (relative to the data dir) at ``offset_ms`` of that segment."""
    return f"{preview_dir(segment_path)}/{int(offset_ms)}.jpg"


class PreviewBuffer:
    """The latest previews of one camera, ``(UTC seconds, JPEG bytes)``, oldest first,
    waiting for the segment that covers them. Thread-safe; keeps ``keep_s`` seconds (a
    segment plus its pre-roll and the analysis' lag), so previews taken while nothing is
    recorded (motion mode) are forgotten."""

    def __init__(self, keep_s: float = 120.0) -> None:
        self.keep_s = keep_s
        self._items: deque[tuple[float, bytes]] = deque()
        self._lock = threading.Lock()

    def add(self, when: float, jpeg: bytes) -> None:
        with self._lock:
            self._items.append((when, jpeg))
            while self._items and self._items[0][0] < when - self.keep_s:
                self._items.popleft()

    def take(self, start: float, end: float) -> list[tuple[float, bytes]]:
        """The previews of ``[start, end)``; those before ``end`` are dropped from the buffer
        (no later segment can hold them)."""
        with self._lock:
            found = [(t, j) for t, j in self._items if start <= t < end]
            while self._items and self._items[0][0] < end:
                self._items.popleft()
            return found

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


def save_previews(data_dir: Path, segment_path: str, start: float,
                  items: Iterable[tuple[float, bytes]]) -> PreviewSet:  # fmt: skip
    """Write ``items`` (UTC seconds, JPEG) as the previews of the segment at
    ``segment_path`` (relative to ``data_dir``) that starts at ``start``; returns what its
    folder then holds (previews written by an earlier call for the same segment included:
    a segment's indexing is retried when the database is down). A write that fails
    (disk full) removes the segment's previews: the segment is indexed without them."""
    folder = data_dir / preview_dir(segment_path)
    try:
        for when, jpeg in items:
            offset = max(0, round((when - start) * 1000))
            _write_atomic(folder / f"{offset}.jpg", jpeg)
        return _listing(folder)
    except OSError as exc:
        log.warning("previews of %s not written (%s); the segment has none", segment_path, exc)
        delete_previews(data_dir, segment_path)
        return PreviewSet()


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}{_TMP}")
    try:
        with tmp.open("wb") as stream:
            stream.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise


def _listing(folder: Path) -> PreviewSet:
    if not folder.is_dir():
        return PreviewSet()
    found: list[tuple[int, int]] = []
    for entry in os.scandir(folder):
        stem, dot, ext = entry.name.partition(".")
        if dot and ext == "jpg" and stem.isdigit() and entry.is_file():
            found.append((int(stem), entry.stat().st_size))
    found.sort()
    return PreviewSet(tuple(o for o, _ in found), sum(s for _, s in found))


def delete_previews(data_dir: Path, segment_path: str) -> None:
    """Remove the preview folder of that segment (gone already is fine) and the hour/day
    folders left empty under ``previews/``."""
    try:
        folder = data_dir / preview_dir(segment_path)
    except ValueError:
        return
    shutil.rmtree(folder, ignore_errors=True)
    _prune(folder.parent, data_dir / PREVIEWS)


def _prune(folder: Path, top: Path) -> None:
    # As ``retention.prune_empty_dirs``, which imports this module.
    while folder != top and top in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


@dataclass(frozen=True, slots=True)
class PreviewRef:
    """One preview found for a time: its file (relative to the data dir of ``node``)."""

    path: str
    time: float
    node: str | None


class PreviewRow(Protocol):
    """What ``nearest_preview`` reads of a segment row (a ``SegmentRow``)."""

    @property
    def path(self) -> str: ...
    @property
    def start(self) -> float: ...
    @property
    def previews(self) -> str | None: ...
    @property
    def node(self) -> str | None: ...


def nearest_preview(rows: Iterable[PreviewRow], at: float, *,
                    max_gap: float = MAX_PREVIEW_GAP_S) -> PreviewRef | None:  # fmt: skip
    """The preview nearest to ``at`` (UTC seconds) among the segment ``rows``, at most
    ``max_gap`` seconds away; the earlier of two as near. None when there is none."""
    best: PreviewRef | None = None
    for row in rows:
        try:
            preview_dir(row.path)
        except ValueError:  # a row naming no segment (a tampered database) has no previews
            continue
        for offset in parse_offsets(row.previews):
            when = row.start + offset / 1000.0
            gap = abs(when - at)
            if gap > max_gap:
                continue
            if best is None or (gap, when) < (abs(best.time - at), best.time):
                best = PreviewRef(preview_file(row.path, offset), when, row.node)
    return best
