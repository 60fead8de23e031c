"""Start-up clean-up of what an unclean stop (``kill -9``, power loss, a full disk) left.

- ``.<MM.SS>.mp4.partial``: a segment being written when the process died. Most are
  unplayable (an MP4's index is written last), and nothing would ever delete them: retention
  only knows indexed segments, so unredacted footage would outlive ``max_age``. One that plays
  to the end (the process died between completing and renaming it) is *recovered*: renamed to
  its segment name, hashed and reported to ``on_segment`` (indexed); every other one is
  deleted.
- ``.<name>.tmp``: half-written snapshots, preview thumbnails and test writes; deleted.

Run it before the recorders start (``Supervisor.start``): it must not see their open files.
On a cluster node several camera actors share one data dir and start at different times:
each cleans only its own camera's folders (``camera``), never a neighbour's open segment.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av

from vigil.paths import PREVIEWS, sha256_file
from vigil.record.layout import parse_segment_path
from vigil.record.segmenter import PARTIAL_SUFFIX, SegmentInfo, final_path

log = logging.getLogger(__name__)

#: Suffix of temporary files (snapshots written, then renamed; disk probes).
TMP_SUFFIX = ".tmp"


@dataclass(slots=True)
class RecoveryReport:
    """What ``recover`` did: segments recovered (and indexed), partial and temporary files
    deleted, and files that could not be handled (path, why)."""

    recovered: list[Path] = field(default_factory=list)
    deleted: list[Path] = field(default_factory=list)
    temps: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)


def _hidden_files(root: Path, suffix: str) -> Iterator[Path]:
    if not root.is_dir():
        return
    for folder, _, names in os.walk(root):
        for name in names:
            if name.startswith(".") and name.endswith(suffix):
                yield Path(folder) / name


def playable_span(path: Path) -> tuple[float, bool] | None:
    """``(seconds, has_audio)`` of an MP4 whose every packet reads, else None."""
    try:
        with av.open(str(path)) as container:
            inp: Any = container
            if not inp.streams.video:
                return None
            video = inp.streams.video[0]
            end = 0.0
            packets = 0
            for packet in inp.demux(video):
                if packet.pts is None or packet.size == 0:
                    continue
                packets += 1
                stop = packet.pts + (packet.duration or 0)
                end = max(end, float(stop * packet.time_base))
            return (end, bool(inp.streams.audio)) if packets else None
    except (av.error.FFmpegError, OSError, ValueError):
        return None


def recover_partial(partial: Path) -> SegmentInfo | None:
    """The recovered segment of ``partial`` (renamed into place), or None when it does not
    play to the end (the caller deletes it)."""
    target = final_path(partial)
    if target.exists():
        return None  # the segment was completed under its name: this copy is a leftover
    span = playable_span(partial)
    if span is None:
        return None
    camera, start = parse_segment_path(target)
    partial.replace(target)
    seconds, has_audio = span
    return SegmentInfo(camera, target, start, start + seconds, target.stat().st_size,
                       sha256_file(target), has_audio)  # fmt: skip


def recover(
    root: Path, on_segment: Callable[[SegmentInfo], None] | None = None, *,
    camera: str | None = None,
) -> RecoveryReport:  # fmt: skip
    """Clean ``root`` (the data directory) as the module docstring says; with ``camera``,
    only that camera's recordings and snapshots."""
    report = RecoveryReport()
    recordings = root / "recordings" if camera is None else root / "recordings" / camera
    snapshots = root / "snapshots" if camera is None else root / "snapshots" / camera
    previews = root / PREVIEWS if camera is None else root / PREVIEWS / camera
    for partial in _hidden_files(recordings, PARTIAL_SUFFIX):
        try:
            info = recover_partial(partial)
            if info is None:
                partial.unlink(missing_ok=True)
                report.deleted.append(partial)
                continue
            if on_segment is not None:
                on_segment(info)
            report.recovered.append(info.path)
        except Exception as exc:  # one bad file must not stop the start
            report.failed.append((partial, str(exc)))
            log.warning("recovery: cannot handle %s: %s", partial, exc)
    for folder in (recordings, snapshots, previews):
        for temp in _hidden_files(folder, TMP_SUFFIX):
            try:
                temp.unlink(missing_ok=True)
                report.temps.append(temp)
            except OSError as exc:
                report.failed.append((temp, str(exc)))
    if report.recovered or report.deleted or report.temps:
        log.warning("recovery after an unclean stop: %d partial segment(s) recovered, %d "
                    "unplayable one(s) and %d temporary file(s) deleted",
                    len(report.recovered), len(report.deleted), len(report.temps))  # fmt: skip
    return report
