"""How a region is hidden: blur, pixelate or solid fill, on the region's pixels only.

Every style works on the region's own pixels (a view of the image), so nothing outside the
margin-grown box changes and the cost grows with the hidden area, not with the frame. Both
blur and pixelate first shrink the region to a handful of cells (``cells`` across its shorter
side): the detail a face needs to be recognised is gone then, whatever the region's size,
and no frame-sized filter runs.
"""

from __future__ import annotations

import math
from typing import Literal

import cv2
import numpy as np

from vigil.types import FloatArray, ImageArray, IntArray

Style = Literal["blur", "pixelate", "fill"]

#: Cells across the shorter side of a (margin-grown) region after blur/pixelate. Measured on
#: the walking clip with YuNet as the judge (bench/redaction.py): an 8-cell mosaic, and even a
#: 4-cell blur, still read as a face to a detector at margin 0.2 (so a person could, too); at
#: 3 cells nothing face-like is left, whatever the region's size.
BLUR_CELLS = 3
PIXELATE_CELLS = 3


def grow_boxes(boxes: FloatArray, margin: float, frame_size: tuple[int, int]) -> IntArray:
    """Integer pixel boxes grown by ``margin`` × size on each side, clipped to the frame.

    ``boxes`` ``(n, 4)`` xyxy float pixels; ``frame_size`` ``(width, height)``. Rounds outward
    (floor the top-left, ceil the bottom-right), so a fractional edge never leaves a sliver of
    face uncovered. Rows that end up empty are dropped.
    """
    if len(boxes) == 0:
        return np.zeros((0, 4), np.int64)
    b = np.asarray(boxes, np.float64)
    wh = np.clip(b[:, 2:] - b[:, :2], 0, None)
    lo = np.floor(b[:, :2] - margin * wh)
    hi = np.ceil(b[:, 2:] + margin * wh)
    w, h = frame_size
    out = np.concatenate([lo, hi], axis=1)
    out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0, w)
    out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0, h)
    out = out.astype(np.int64)
    keep = (out[:, 2] > out[:, 0]) & (out[:, 3] > out[:, 1])
    return out[keep]


def _shrink_grow(roi: ImageArray, cells: int, interpolation: int) -> ImageArray:
    h, w = roi.shape[:2]
    cell = max(1.0, min(h, w) / cells)
    small = cv2.resize(
        roi,
        (max(1, math.ceil(w / cell)), max(1, math.ceil(h / cell))),
        interpolation=cv2.INTER_AREA,
    )
    return np.asarray(cv2.resize(small, (w, h), interpolation=interpolation), np.uint8)


def hide_region(roi: ImageArray, style: Style) -> None:
    """Hide ``roi`` (a view into the image) in place."""
    if roi.size == 0:
        return
    if style == "fill":
        roi[...] = 0
    elif style == "pixelate":
        roi[...] = _shrink_grow(roi, PIXELATE_CELLS, cv2.INTER_NEAREST)
    else:
        # A bilinear upsample of a 3-cell image is a smooth wash; the box blur on top removes
        # the faint grid that bilinear interpolation leaves between cells.
        washed = _shrink_grow(roi, BLUR_CELLS, cv2.INTER_LINEAR)
        k = max(3, min(roi.shape[:2]) // BLUR_CELLS) | 1
        roi[...] = cv2.blur(washed, (k, k), borderType=cv2.BORDER_REPLICATE)


def hide_boxes(image: ImageArray, boxes: IntArray, style: Style) -> None:
    """Hide every ``(x1, y1, x2, y2)`` integer box of ``image`` in place."""
    for x1, y1, x2, y2 in boxes.tolist():
        hide_region(image[y1:y2, x1:x2], style)
