"""The model-free detector: moving blobs from the motion gate become detections.

Vigil must be useful without a neural network (a fresh install, a tiny board, a privacy
policy that forbids models): with this detector a line counter or a zone alarm works on
anything that moves. It cannot tell a person from a swaying branch; it has one class,
``"motion"``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vigil.motion.gate import MotionResult
from vigil.motion.regions import group_boxes
from vigil.types import Detections


class MotionBlobDetector:
    """Turns a :class:`~vigil.motion.gate.MotionResult` into :class:`~vigil.types.Detections`.

    Fragments of one object (a person whose uniform shirt shows no change inside, only at its
    edges) are merged when their boxes are within ``merge_gap`` of each other, given as a
    fraction of the frame's larger side; so one moving object yields one box.

    Confidence: ``0.5 + 0.5 * fill``, where ``fill`` is the fraction of the merged box whose
    pixels changed, clipped to 0.5..1. Every blob the gate reports is already above its
    ``min_area``, so it is a real candidate: the floor of 0.5 keeps it above a tracker's
    first-stage threshold, and a solid blob (fill 0.3 or more) can start a track at the
    default ``new_track_threshold`` of 0.6. ``class_id`` is always 0 (``"motion"``).
    """

    class_names: Sequence[str] = ("motion",)

    def __init__(self, *, merge_gap: float = 0.02, min_confidence: float = 0.5) -> None:
        if not 0 <= merge_gap <= 1 or not 0 <= min_confidence <= 1:
            raise ValueError(
                "MotionBlobDetector needs 0 <= merge_gap <= 1 and 0 <= min_confidence <= 1, "
                f"got merge_gap={merge_gap}, min_confidence={min_confidence}"
            )
        self.merge_gap = merge_gap
        self.min_confidence = min_confidence

    def detect(self, motion: MotionResult) -> Detections:
        """One detection per moving object in ``motion`` (boxes in full-frame pixels)."""
        boxes = np.asarray(motion.boxes, np.float64)
        if len(boxes) == 0:
            return Detections.empty()
        fill = np.asarray(motion.fill, np.float64)
        if fill.shape != (len(boxes),):
            fill = np.ones(len(boxes), np.float64)
        gap = self.merge_gap * max(motion.frame_size) if max(motion.frame_size) > 0 else 0.0
        merged: list[np.ndarray] = []
        confidence: list[float] = []
        for group in group_boxes(boxes, gap):
            members = boxes[group]
            union = np.concatenate([members[:, :2].min(axis=0), members[:, 2:].max(axis=0)])
            area = float(np.prod(union[2:] - union[:2]))
            member_areas = np.prod(members[:, 2:] - members[:, :2], axis=1)
            moved = float(np.sum(fill[group] * member_areas))
            union_fill = moved / area if area > 0 else 0.0
            merged.append(union)
            confidence.append(float(np.clip(0.5 + 0.5 * union_fill, self.min_confidence, 1.0)))
        return Detections(
            np.asarray(merged, np.float32),
            np.asarray(confidence, np.float32),
            np.zeros(len(merged), np.int64),
        )
