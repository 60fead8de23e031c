"""Stationary objects: keep tracking them without running the detector on every frame.

A person standing at a counter or a parked car moves a little (hands, shadows, compression
noise), so the motion gate alone would send the detector to them on every analysed frame,
although nothing changes. Like NVRs do, a track whose box has stayed put for
``stationary_seconds`` becomes *stationary*: while all motion in the frame lies inside
stationary boxes and no other track lives, the detector is skipped and the stationary boxes
are carried into the tracker as detections (so the tracks, zones and dwell timers go on).
Motion anywhere else, a moving track, or ``recheck_seconds`` without a detector look ends the
skip: the detector runs and sees the truth again. An object that leaves makes motion outside
its old box as soon as it moves, so it is never carried past its departure.

State is one small record per live track, dropped when the tracker ends the track.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from vigil.boxes import iou_matrix
from vigil.runtime.carry import covered
from vigil.types import Detections, FloatArray


@dataclass(slots=True)
class _Still:
    anchor: FloatArray  # the box the track has stayed at, frame pixels
    since: float  # when it settled there
    box: FloatArray  # its latest box
    confidence: float
    class_id: int


class StationaryTracks:
    """Decides, per analysed frame, whether the detector can be skipped (see module doc).

    ``settle_iou``: a box that keeps at least this IoU with where it settled is "not moving".
    ``margin``: stationary boxes grow by this fraction before they must contain the motion
    (limbs move beyond a standing person's box).
    """

    def __init__(
        self,
        stationary_seconds: float,
        recheck_seconds: float,
        *,
        settle_iou: float = 0.85,
        margin: float = 0.15,
        inside: float = 0.8,
    ) -> None:
        self.stationary_seconds = stationary_seconds
        self.recheck_seconds = recheck_seconds
        self.settle_iou = settle_iou
        self.margin = margin
        self.inside = inside
        self._tracks: dict[int, _Still] = {}
        self._last_look = -np.inf

    def __len__(self) -> int:
        return len(self._tracks)

    def observe(self, tracked: Detections, time: float, ended_ids: Iterable[int]) -> None:
        """Record the tracker's output of an analysed frame; forget ended tracks."""
        for tid in ended_ids:
            self._tracks.pop(int(tid), None)
        for box, conf, cls, tid in zip(
            tracked.xyxy, tracked.confidence, tracked.class_id, tracked.tracker_id, strict=True
        ):
            if tid < 0:
                continue
            still = self._tracks.get(int(tid))
            if still is None or iou_matrix(still.anchor, box)[0, 0] < self.settle_iou:
                self._tracks[int(tid)] = _Still(box.copy(), time, box.copy(), float(conf), int(cls))
            else:
                still.box, still.confidence, still.class_id = box.copy(), float(conf), int(cls)

    def looked(self, time: float) -> None:
        """The detector ran on this frame."""
        self._last_look = time

    def carry(
        self, time: float, motion_boxes: FloatArray, live_ids: Iterable[int]
    ) -> Detections | None:
        """Detections to use instead of running the detector, or None when it must run.

        ``live_ids``: ids of every track the tracker still holds (confirmed or lost).
        """
        if self.stationary_seconds <= 0 or time - self._last_look >= self.recheck_seconds:
            return None
        ids = [int(t) for t in live_ids]
        if not ids or any(t not in self._tracks for t in ids):
            return None
        stills = [self._tracks[t] for t in ids]
        if any(time - s.since < self.stationary_seconds for s in stills):
            return None
        boxes = np.stack([s.box for s in stills]).astype(np.float32)
        if len(motion_boxes):
            grow = (boxes[:, 2:] - boxes[:, :2]) * self.margin
            covers = np.concatenate([boxes[:, :2] - grow, boxes[:, 2:] + grow], axis=1)
            if not covered(np.asarray(motion_boxes, np.float32), covers, self.inside):
                return None
        return Detections(
            boxes,
            np.array([s.confidence for s in stills], np.float32),
            np.array([s.class_id for s in stills], np.int64),
        )
