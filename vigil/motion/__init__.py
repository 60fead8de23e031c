"""Motion gating: skip quiet frames, and point the detector at the busy regions of the rest."""

from __future__ import annotations

from vigil.motion.gate import MotionGate, MotionResult, rasterise_masks
from vigil.motion.regions import Region, detection_regions, group_boxes, merge_boxes

__all__ = [
    "MotionGate",
    "MotionResult",
    "Region",
    "detection_regions",
    "group_boxes",
    "merge_boxes",
    "rasterise_masks",
]
