"""Temporal safety: a region seen once stays hidden while it lives and ``hold`` frames after.

A face detector misses a face in some frames (motion blur, a turned head, a partial
occlusion). Redacting only what was detected in each frame would flash that face for one
frame, which is enough to identify someone. ``BoxHold`` keeps a small track per region:
associated to the next frame's boxes by track id (when the caller has one) or by IoU, moved by
its last velocity and grown a little for every frame it goes unseen, and dropped only after
``hold`` consecutive misses. It is deliberately simpler than the analytics tracker: it never
needs stable identities, only "something was here, keep covering it".

Boxes are ``(n, 4)`` float32 ``x1, y1, x2, y2`` in frame pixels.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from vigil.boxes import iou_matrix
from vigil.types import FloatArray, IntArray


class BoxHold:
    """Keeps regions covered across missed detections.

    ``hold``: frames a region stays after its last detection (0 = only where detected now).
    ``match_iou``: minimum IoU between a held (predicted, grown) box and a new detection for
    them to be the same region. ``growth``: fraction of its size a held box grows on each side
    per missed frame, because where it went is less certain the longer it is unseen.
    ``velocity_decay``: how much of the last motion carries into the next predicted step.
    """

    def __init__(
        self,
        hold: int,
        *,
        match_iou: float = 0.1,
        growth: float = 0.03,
        velocity_decay: float = 0.8,
    ) -> None:
        self.hold = hold
        self.match_iou = match_iou
        self.growth = growth
        self.velocity_decay = velocity_decay
        self.reset()

    def reset(self) -> None:
        """Forget every region (a new video, a seek, a camera reconnect)."""
        self._boxes = np.zeros((0, 4), np.float32)
        self._velocity = np.zeros((0, 4), np.float32)
        self._missed = np.zeros(0, np.int64)
        self._ids = np.zeros(0, np.int64)

    def __len__(self) -> int:
        return len(self._boxes)

    def update(self, boxes: FloatArray, ids: IntArray | None = None) -> FloatArray:
        """Take this frame's detections; return every box to hide in this frame.

        ``ids`` (optional, ``(n,)``, -1 = none): the caller's track ids, matched first, so a
        person keeps being covered while their analytics track lives. The result holds this
        frame's detections plus held regions (predicted and grown), ``(m, 4)`` float32.
        """
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        ids = np.full(len(boxes), -1, np.int64) if ids is None else np.asarray(ids, np.int64)
        predicted = self._predict()
        track_idx, det_idx = self._associate(predicted, boxes, ids)
        self._apply_matches(track_idx, det_idx, boxes, ids)
        self._add_new(np.setdiff1d(np.arange(len(boxes)), det_idx), boxes, ids)
        return self._boxes.copy()  # a copy: the state is updated in place next frame

    def _predict(self) -> FloatArray:
        """Advance every region by its velocity; unseen ones grow (computed, not yet stored)."""
        boxes = self._boxes + self._velocity
        wh = boxes[:, 2:] - boxes[:, :2]
        grow = self.growth * wh  # compounding: a held box grows geometrically while unseen
        return np.asarray(
            np.concatenate([boxes[:, :2] - grow, boxes[:, 2:] + grow], axis=1), np.float32
        )

    def _associate(
        self, predicted: FloatArray, boxes: FloatArray, ids: IntArray
    ) -> tuple[IntArray, IntArray]:
        """Pairs ``(track, detection)``: equal caller ids first, then best IoU above the bar."""
        pairs: list[tuple[int, int]] = []
        for d in np.flatnonzero(ids >= 0):
            same = np.flatnonzero(self._ids == ids[d])
            if same.size:
                pairs.append((int(same[0]), int(d)))
        used_t = {t for t, _ in pairs}
        used_d = {d for _, d in pairs}
        free_t = np.array([t for t in range(len(predicted)) if t not in used_t], np.int64)
        free_d = np.array([d for d in range(len(boxes)) if d not in used_d], np.int64)
        iou = iou_matrix(predicted[free_t], boxes[free_d])
        if iou.size:
            rows, cols = linear_sum_assignment(-iou)
            ok = iou[rows, cols] >= self.match_iou
            pairs.extend(zip(free_t[rows[ok]].tolist(), free_d[cols[ok]].tolist(), strict=True))
        if not pairs:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        arr = np.array(pairs, np.int64)
        return arr[:, 0], arr[:, 1]

    def _apply_matches(
        self, track_idx: IntArray, det_idx: IntArray, boxes: FloatArray, ids: IntArray
    ) -> None:
        predicted = self._predict()
        seen = np.zeros(len(self._boxes), bool)
        seen[track_idx] = True
        if track_idx.size:
            step = boxes[det_idx] - self._boxes[track_idx]
            self._velocity[track_idx] = self.velocity_decay * step
            self._boxes[track_idx] = boxes[det_idx]
            self._missed[track_idx] = 0
            known = ids[det_idx] >= 0
            self._ids[track_idx[known]] = ids[det_idx][known]
        lost = ~seen
        self._boxes[lost] = predicted[lost]
        self._velocity[lost] *= self.velocity_decay
        self._missed[lost] += 1
        alive = self._missed <= self.hold
        self._boxes, self._velocity = self._boxes[alive], self._velocity[alive]
        self._missed, self._ids = self._missed[alive], self._ids[alive]

    def _add_new(self, det_idx: IntArray, boxes: FloatArray, ids: IntArray) -> None:
        if det_idx.size == 0:
            return
        self._boxes = np.concatenate([self._boxes, boxes[det_idx]])
        self._velocity = np.concatenate([self._velocity, np.zeros((det_idx.size, 4), np.float32)])
        self._missed = np.concatenate([self._missed, np.zeros(det_idx.size, np.int64)])
        self._ids = np.concatenate([self._ids, ids[det_idx]])
