"""Moving tracks carried through a frame without the detector (the stationary carry, generalised).

At 5 fps a walking person moves a few percent of their box between two analysed frames. When
everything that moves in a frame lies inside the boxes of tracks the detector saw on the
previous analysed frame (or inside motion the detector looked at and found empty: the ghost a
departed object leaves in the background), and the tracker holds nothing else (no lost and no
tentative track), nothing new can have appeared outside them: each track's last box is handed
to the tracker again as its detection, and the detector is skipped. At most ``max_frames``
analysed frames in a row are carried; then the detector runs and the truth comes back, so an
object that enters inside another's box (the one case the motion test cannot see) is found
at most ``max_frames`` frames late.

The box is carried where it was, not extrapolated at the track's velocity: a carried box then
only repeats a position the detector really saw, so it cannot take a track across a line or
into a zone. Extrapolating was measured to change the counts on the people clip (an extra
line crossing and table visit at 10 fps with one frame carried, a missed crossing at half the
velocity with three), carrying in place left them equal at every bound tried.

State is one small record per confirmed track, dropped when the tracker ends it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from vigil.types import Detections, FloatArray


@dataclass(slots=True)
class _Seen:
    time: float  # frame time of the latest box
    box: FloatArray  # latest box, frame pixels
    confidence: float
    class_id: int


def covered(boxes: FloatArray, covers: FloatArray, fraction: float) -> bool:
    """Whether every box of ``boxes`` lies at least ``fraction`` inside one of ``covers``."""
    for box in boxes:
        area = float(np.prod(np.clip(box[2:] - box[:2], 0.0, None)))
        lt = np.maximum(box[:2], covers[:, :2])
        rb = np.minimum(box[2:], covers[:, 2:])
        inter = np.prod(np.clip(rb - lt, 0.0, None), axis=1)
        if area <= 0 or float(inter.max(initial=0.0)) < fraction * area:
            return False
    return True


class MovingCarry:
    """Decides, per analysed frame, whether moving tracks can be carried (see module doc).

    ``max_frames``: analysed frames in a row that may be carried (0 = off). ``margin``: the
    boxes grow by this fraction of their size before they must contain the
    motion (limbs swing beyond a walking person's box). ``inside``: the fraction of each
    motion box that must lie inside one grown box.
    """

    def __init__(self, max_frames: int, *, margin: float = 0.15, inside: float = 0.8) -> None:
        if max_frames < 0:
            raise ValueError(f"max_frames must be >= 0, got {max_frames}")
        self.max_frames = max_frames
        self.margin = margin
        self.inside = inside
        self._tracks: dict[int, _Seen] = {}
        self._last_time: float | None = None
        self._in_row = 0
        # Motion boxes of the last detector look that held no detection (the "ghost" a
        # departed object leaves in the background, foliage): known to be empty.
        self._empty = np.zeros((0, 4), np.float32)

    def __len__(self) -> int:
        return len(self._tracks)

    @property
    def in_row(self) -> int:
        """Analysed frames carried since the detector last ran."""
        return self._in_row

    def observe(self, tracked: Detections, time: float, ended_ids: Iterable[int]) -> None:
        """Record the tracker's output of an analysed frame (looked at or carried)."""
        for tid in ended_ids:
            self._tracks.pop(int(tid), None)
        for xyxy, conf, cls, tid in zip(
            tracked.xyxy, tracked.confidence, tracked.class_id, tracked.tracker_id, strict=True
        ):
            if tid < 0:
                continue
            box = np.asarray(xyxy, np.float32).copy()
            self._tracks[int(tid)] = _Seen(time, box, float(conf), int(cls))
        self._last_time = time

    def looked(self, motion_boxes: FloatArray, detections: Detections) -> None:
        """The detector ran on this frame and found ``detections`` where the gate saw
        ``motion_boxes``: the count of frames carried in a row restarts, and motion boxes
        that hold no detection are remembered as empty."""
        self._in_row = 0
        motion = np.asarray(motion_boxes, np.float32).reshape(-1, 4)
        if len(motion) and len(detections):
            found = np.asarray(detections.xyxy, np.float32)
            lt = np.maximum(motion[:, None, :2], found[None, :, :2])
            rb = np.minimum(motion[:, None, 2:], found[None, :, 2:])
            touches = np.all(rb > lt, axis=2).any(axis=1)
            motion = motion[~touches]
        self._empty = motion

    def carry(
        self,
        time: float,
        motion_boxes: FloatArray,
        live_ids: Iterable[int],
        *,
        others: bool = False,
    ) -> Detections | None:
        """Detections to use instead of running the detector, or None when it must run.

        ``live_ids``: every confirmed track the tracker holds; ``others``: the tracker also
        holds lost or tentative tracks (a tentative track that misses one frame dies, and a
        lost one can only be found again by the detector), which forbids carrying.
        """
        if self.max_frames <= 0 or self._in_row >= self.max_frames or others:
            return None
        ids = [int(t) for t in live_ids]
        last = self._last_time
        if last is None or time <= last or (not ids and not len(self._empty)):
            return None
        seen = [self._tracks.get(t) for t in ids]
        # Only tracks the previous analysed frame saw: their boxes are current.
        if any(s is None or s.time != last for s in seen):
            return None
        tracks = [s for s in seen if s is not None]
        boxes = np.zeros((0, 4), np.float32)
        if tracks:
            boxes = np.stack([s.box for s in tracks]).astype(np.float32)
        if len(motion_boxes):
            known = np.concatenate([boxes, self._empty])
            grow = (known[:, 2:] - known[:, :2]) * self.margin
            covers = np.concatenate([known[:, :2] - grow, known[:, 2:] + grow], axis=1)
            if not covered(np.asarray(motion_boxes, np.float32), covers, self.inside):
                return None
        self._in_row += 1
        return Detections(
            boxes,
            np.array([s.confidence for s in tracks], np.float32),
            np.array([s.class_id for s in tracks], np.int64),
        )
