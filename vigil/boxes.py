"""Axis-aligned box geometry shared by the detector, tracker, redaction and runtime.

Boxes are ``(n, 4)`` rows ``x1, y1, x2, y2`` in any one pixel frame (origin top-left, x right,
y down). A box with ``x2 <= x1`` or ``y2 <= y1`` has no area; it overlaps nothing (IoU 0 with
every box, itself included), so non-maximum suppression always keeps it and it suppresses
nothing.

Non-maximum suppression is OpenCV's (``cv2.dnn.NMSBoxes``, ``NMSBoxesBatched`` per class),
8 to 25 times faster than a numpy loop at the detector's 1,000-candidate cap (``bench/nms.py``
on a busy 2-core machine, clustered and scattered boxes), with one rule for every caller:
greedy, best score first, and a box goes when a kept box overlaps it with IoU **strictly
greater** than the threshold (an IoU exactly at the threshold is kept, as in YOLOX's own
``nms``). Equal scores keep input order. OpenCV compares the IoU in float32, so an IoU above
the threshold by less than one float32 step (2**-24) counts as at the threshold; the threshold
handed to OpenCV is chosen so that an IoU exactly equal to it is kept, as in float64.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

#: Ranks stand in for scores in OpenCV's float32 score vector; exact up to this count.
_MAX_BOXES = 1 << 24
_INT32 = np.iinfo(np.int32)


def iou_matrix(a: npt.ArrayLike, b: npt.ArrayLike) -> F64:
    """Intersection over union of every box in ``a`` (n, 4) with every box in ``b`` (m, 4).

    Returns (n, m) float64 in 0..1; 0 for a pair whose union has no area.
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0.0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0.0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0.0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    iou: F64 = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0.0)
    return iou


def nms(
    xyxy: npt.ArrayLike,
    scores: npt.ArrayLike,
    iou_threshold: float,
    class_id: npt.ArrayLike | None = None,
) -> I64:
    """Greedy non-maximum suppression; indices of the kept boxes, best score first.

    ``class_id`` (n,), when given, makes it class-aware: boxes of different classes never
    suppress each other (a person on a bicycle keeps both). See the module doc for the rule.
    """
    boxes = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    conf = np.asarray(scores, dtype=np.float64).reshape(-1)
    n = boxes.shape[0]
    if conf.shape[0] != n or n > _MAX_BOXES:
        raise ValueError(f"nms needs one score per box (at most {_MAX_BOXES}), got "
                         f"{n} boxes and {conf.shape[0]} scores")  # fmt: skip
    if not math.isfinite(iou_threshold):
        raise ValueError(f"nms needs a finite IoU threshold, got {iou_threshold}")
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    # OpenCV sorts by score with a stable sort too, but in float32 and only above a score
    # threshold >= 0: ranks (n for the best … 1) give it exactly this order, for any scores.
    rank = np.empty(n, dtype=np.int64)
    rank[np.argsort(-conf, kind="stable")] = np.arange(n)
    solid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    index = np.flatnonzero(solid)
    classes = None if class_id is None else _int32(class_id, n)[index]
    kept = index[_opencv_nms(boxes[index], (n - rank[index]).astype(np.float32), classes,
                             iou_threshold)]  # fmt: skip
    # OpenCV calls two boxes without area a perfect match; here they overlap nothing.
    kept = np.concatenate([kept, np.flatnonzero(~solid)])
    return np.asarray(kept[np.argsort(rank[kept])], dtype=np.int64)


def _opencv_nms(
    boxes: F64,
    rank: npt.NDArray[np.float32],
    classes: npt.NDArray[np.int32] | None,
    iou_threshold: float,
) -> I64:
    """Indices into ``boxes`` (all with area) that OpenCV keeps, best rank first."""
    if boxes.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    # NMSBoxesBatched separates classes by shifting each by class * (max coordinate + 1),
    # which only works for coordinates >= 0; IoU does not change under a translation.
    origin = min(0.0, float(boxes.min()))
    xywh = np.concatenate([boxes[:, :2] - origin, boxes[:, 2:] - boxes[:, :2]], axis=1)
    # OpenCV keeps a box when 1 - float32(1 - IoU) <= threshold (float32). This threshold
    # keeps an IoU exactly equal to ``iou_threshold``, which the plain value does not always.
    threshold = float(np.float32(1.0) - np.float32(1.0 - iou_threshold))
    # Lists, as the binding's stubs ask; converting them costs no more than the arrays do.
    if classes is None:
        found = cv2.dnn.NMSBoxes(xywh.tolist(), rank.tolist(), 0.0, threshold)
    else:
        found = cv2.dnn.NMSBoxesBatched(
            xywh.tolist(), rank.tolist(), classes.tolist(), 0.0, threshold
        )
    return np.asarray(found, dtype=np.int64).reshape(-1)


def _int32(class_id: npt.ArrayLike, n: int) -> npt.NDArray[np.int32]:
    classes = np.asarray(class_id, dtype=np.int64).reshape(-1)
    if classes.shape[0] != n:
        raise ValueError(f"nms needs one class id per box, got {classes.shape[0]} for {n}")
    if classes.size and (classes.min() < _INT32.min or classes.max() > _INT32.max):
        raise ValueError("nms class ids must fit in 32 bits")
    return classes.astype(np.int32)
