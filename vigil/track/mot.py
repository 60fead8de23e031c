"""MOTChallenge text files: read detections, write tracks, run a tracker over a sequence.

Format (one box per line, comma-separated, frames numbered from 1):
``frame, id, x, y, w, h, conf, x3d, y3d, z3d`` — ``x, y`` the top-left corner, ``w, h`` the
size, all in frame pixels. Detections have ``id = -1``; tracks have ``conf = 1`` and ``-1`` in
the last three columns.

Detection scores: Vigil's ``Detections.confidence`` is 0..1. Public MOT detections are not
always so (DPM scores in MOT15 are unbounded log-odds-like values); ``read_mot_detections``
keeps scores already in 0..1 and otherwise min-max normalises them over the file (a documented,
sequence-agnostic rule), so thresholds in ``TrackerConfig`` mean the same thing everywhere.
"""

from __future__ import annotations

import itertools
import types
from pathlib import Path
from typing import IO, Literal

import numpy as np
import numpy.typing as npt

from vigil.config.models import TrackerConfig
from vigil.errors import ConfigError, SourceError, StorageError
from vigil.track.bytetrack import ByteTracker
from vigil.types import Detections

ScoreMode = Literal["auto", "keep", "minmax"]


def _load_rows(path: Path) -> npt.NDArray[np.float64]:
    """(n, >=7) float rows of a MOT file; clear errors for missing or malformed files."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SourceError(f"cannot read MOT file {path}: {exc.strerror}; check the path") from exc
    rows: list[list[float]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            values = [float(v) for v in line.replace(" ", "").split(",")]
        except ValueError as exc:
            raise SourceError(
                f"{path}:{number}: not a MOTChallenge line ({line!r}); expected "
                "'frame, id, x, y, w, h, conf, ...' with numbers"
            ) from exc
        if len(values) < 7:
            raise SourceError(
                f"{path}:{number}: {len(values)} columns, MOTChallenge needs at least 7 "
                "(frame, id, x, y, w, h, conf)"
            )
        rows.append(values[:7])
    return np.asarray(rows, dtype=np.float64).reshape(-1, 7)


def normalise_scores(
    scores: npt.NDArray[np.float64], mode: ScoreMode = "auto"
) -> npt.NDArray[np.float64]:
    """Scores mapped into 0..1: ``keep`` as is, ``minmax`` over the array, ``auto`` = keep when
    all already lie in 0..1, else minmax (a constant array maps to 1)."""
    if mode == "keep" or len(scores) == 0:
        return scores
    if mode == "auto" and scores.min() >= 0.0 and scores.max() <= 1.0:
        return scores
    lo, hi = float(scores.min()), float(scores.max())
    if hi - lo <= 0.0:
        return np.ones_like(scores)
    return (scores - lo) / (hi - lo)


def read_mot_detections(
    path: Path, scores: ScoreMode = "auto", class_id: int = 0
) -> list[Detections]:
    """Per-frame detections of a MOT ``det.txt``: element ``i`` is frame ``i + 1``.

    Frames without detections get empty ``Detections`` (the tracker must still see them).
    All boxes get ``class_id`` (MOT detections are pedestrians: COCO ``person`` is 0).
    """
    rows = _load_rows(Path(path))
    if len(rows) == 0:
        return []
    frames = rows[:, 0].astype(np.int64)
    if frames.min() < 1:
        raise SourceError(f"{path}: frame numbers start at 1 in MOTChallenge, found {frames.min()}")
    conf = normalise_scores(rows[:, 6], scores).astype(np.float32)
    xyxy = np.concatenate([rows[:, 2:4], rows[:, 2:4] + rows[:, 4:6]], axis=1)
    order = np.argsort(frames, kind="stable")
    frames, xyxy, conf = frames[order], xyxy[order], conf[order]
    bounds = np.searchsorted(frames, np.arange(1, frames.max() + 2))
    return [
        Detections(xyxy[a:b], conf[a:b], np.full(b - a, class_id, np.int64))
        for a, b in itertools.pairwise(bounds)
    ]


def format_mot_rows(frame_number: int, tracked: Detections) -> str:
    """MOT track lines of one frame (``frame, id, x, y, w, h, 1, -1, -1, -1``)."""
    lines = []
    for box, tid in zip(tracked.xyxy.tolist(), tracked.tracker_id.tolist(), strict=True):
        x1, y1, x2, y2 = box
        lines.append(
            f"{frame_number},{tid},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},1,-1,-1,-1\n"
        )
    return "".join(lines)


class MotWriter:
    """Writes tracks in MOTChallenge format, one frame at a time (``vigil analyze``'s
    ``tracks.txt``). Use as a context manager, or call ``close``."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file: IO[str] | None = self.path.open("w", encoding="utf-8")
        except OSError as exc:
            raise StorageError(
                f"cannot write tracks to {self.path}: {exc.strerror}; check the folder exists "
                "and is writable"
            ) from exc
        self.rows = 0

    def write(self, frame_number: int, tracked: Detections) -> None:
        """Append the confirmed tracks of frame ``frame_number`` (1-based)."""
        if self._file is None:
            raise StorageError(f"MotWriter for {self.path} is closed; write before close()")
        if frame_number < 1:
            raise ValueError(f"MOT frame numbers start at 1, got {frame_number}")
        keep = tracked[tracked.tracker_id >= 0]
        self._file.write(format_mot_rows(frame_number, keep))
        self.rows += len(keep)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> MotWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        self.close()


def write_mot_tracks(path: Path, frames: list[Detections]) -> None:
    """Write per-frame tracks (element ``i`` is frame ``i + 1``) to ``path``."""
    with MotWriter(path) as writer:
        for number, tracked in enumerate(frames, start=1):
            writer.write(number, tracked)


def run_track_mot(
    det_path: Path, out_path: Path, fps: float, config: TrackerConfig | None = None
) -> int:
    """Track a MOT ``det.txt`` at ``fps`` and write the tracks; returns how many tracks.

    ``config`` defaults to ``TrackerConfig``'s defaults: the product's own settings (there
    is no preset for MOTChallenge; the tracker measures time, so one set serves 5 to 30 fps).
    """
    if not fps > 0:
        raise ConfigError(f"fps must be a positive number of frames/s, got {fps}")
    tracker = ByteTracker(config, frame_rate=fps)
    ids: set[int] = set()
    with MotWriter(out_path) as writer:
        for index, dets in enumerate(read_mot_detections(det_path)):
            tracked = tracker.update(dets, index / fps)
            ids.update(tracked.tracker_id.tolist())
            writer.write(index + 1, tracked)
    return len(ids)
