"""YOLOX pre- and post-processing in numpy (plus ``cv2.resize`` for the letterbox; NMS from
``vigil.boxes``).

Coordinate frames, named the same everywhere in this module:

* **image pixels**: the caller's image, ``(h, w, 3)``, origin top-left, x right, y down.
* **input pixels**: the network input, ``(input_h, input_w)``; the image is scaled by
  ``scale`` and placed at ``pad = (pad_x, pad_y)``, so
  ``input = image * scale + pad`` and ``image = (input - pad) / scale``.

YOLOX's official preprocessing (``yolox/data/data_augment.py: preproc``) keeps the aspect
ratio, resizes with ``int(side * scale)`` and bilinear interpolation, puts the image in the
**top-left** corner (pad only right and bottom, so ``pad == (0, 0)``) and fills the rest with
114; channels stay BGR and values stay 0..255 (no normalisation). The models were evaluated
that way, so that is the default here; ``center=True`` exists for other exports.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import cv2
import numpy as np

from vigil.boxes import nms
from vigil.types import Detections, FloatArray, ImageArray, IntArray

#: The output strides of the YOLOX heads (P3, P4, P5).
YOLOX_STRIDES: tuple[int, ...] = (8, 16, 32)
#: Fill value of the letterbox border, as in YOLOX training.
PAD_VALUE = 114
#: ``exp`` of a larger log-size overflows float32; no real box is anywhere near it.
_MAX_LOG_SIZE = 20.0
#: Best-scoring candidates kept before NMS (bounds its cost on pathological outputs).
MAX_CANDIDATES = 1000
#: Most detections reported per image.
MAX_DETECTIONS = 300


def letterbox(
    image: ImageArray, size: tuple[int, int], *, center: bool = False
) -> tuple[FloatArray, float, tuple[float, float]]:
    """Scale ``image`` into a ``size = (width, height)`` canvas, keeping its aspect ratio.

    Returns ``(blob, scale, (pad_x, pad_y))``: ``blob`` is ``(3, height, width)`` float32, BGR,
    0..255, border filled with 114; ``scale`` maps image pixels to input pixels and ``pad`` is
    where the scaled image's top-left corner sits (``(0, 0)`` unless ``center``).
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (h, w, 3) uint8 BGR, got {image.dtype} {image.shape}")
    img_h, img_w = int(image.shape[0]), int(image.shape[1])
    if img_h == 0 or img_w == 0:
        raise ValueError(f"image has no pixels: shape {image.shape}")
    in_w, in_h = size
    scale = min(in_w / img_w, in_h / img_h)
    # int() truncation as in YOLOX's preproc; at least one pixel so thin crops survive.
    new_w, new_h = max(1, int(img_w * scale)), max(1, int(img_h * scale))
    pad_x, pad_y = ((in_w - new_w) // 2, (in_h - new_h) // 2) if center else (0, 0)
    canvas = np.full((in_h, in_w, 3), PAD_VALUE, dtype=np.uint8)
    resized: ImageArray = image
    if (new_w, new_h) != (img_w, img_h):
        resized = np.asarray(
            cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR), dtype=np.uint8
        )
    canvas[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = resized
    blob = np.ascontiguousarray(canvas.transpose(2, 0, 1), dtype=np.float32)
    return blob, float(scale), (float(pad_x), float(pad_y))


def to_image_coords(
    xyxy: FloatArray,
    scale: float,
    pad: tuple[float, float],
    image_size: tuple[int, int],
) -> FloatArray:
    """Map ``(n, 4)`` boxes from input pixels to image pixels and clip them to the image.

    ``image_size`` is ``(width, height)``; clipped boxes lie in ``[0, width] x [0, height]``.
    """
    out = np.asarray(xyxy, dtype=np.float32).reshape(-1, 4).copy()
    out[:, [0, 2]] -= pad[0]
    out[:, [1, 3]] -= pad[1]
    out /= np.float32(scale)
    out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0.0, float(image_size[0]))
    out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0.0, float(image_size[1]))
    return out


def to_input_coords(xyxy: FloatArray, scale: float, pad: tuple[float, float]) -> FloatArray:
    """Inverse of :func:`to_image_coords` without clipping: image pixels → input pixels."""
    out = np.asarray(xyxy, dtype=np.float32).reshape(-1, 4) * np.float32(scale)
    out[:, [0, 2]] += pad[0]
    out[:, [1, 3]] += pad[1]
    return out


@functools.lru_cache(maxsize=16)
def yolox_grid(
    input_size: tuple[int, int], strides: tuple[int, ...] = YOLOX_STRIDES
) -> tuple[FloatArray, FloatArray]:
    """Grid cell offsets ``(A, 2)`` (x, y) and their strides ``(A, 1)`` for one input size.

    ``input_size`` is ``(width, height)``. Rows follow the model's output order: stride by
    stride, and within a stride row-major (y outer, x inner), so
    ``A = sum((height // s) * (width // s) for s in strides)`` (3549 at 416, 8400 at 640).
    The arrays are cached and read-only.
    """
    in_w, in_h = input_size
    grids: list[FloatArray] = []
    steps: list[FloatArray] = []
    for stride in strides:
        cols, rows = in_w // stride, in_h // stride
        xs, ys = np.meshgrid(np.arange(cols), np.arange(rows))
        grids.append(np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32))
        steps.append(np.full((rows * cols, 1), stride, dtype=np.float32))
    grid, step = np.concatenate(grids), np.concatenate(steps)
    grid.flags.writeable = False
    step.flags.writeable = False
    return grid, step


def yolox_anchor_count(
    input_size: tuple[int, int], strides: tuple[int, ...] = YOLOX_STRIDES
) -> int:
    """Number of output rows a YOLOX model gives for ``input_size = (width, height)``."""
    return sum((input_size[1] // s) * (input_size[0] // s) for s in strides)


def _decode(raw: FloatArray, grid: FloatArray, step: FloatArray) -> tuple[FloatArray, FloatArray]:
    """The YOLOX decode of rows ``(..., k, 5 + C)`` whose cells are ``grid``/``step`` ``(k, ·)``."""
    centre = (raw[..., 0:2] + grid) * step
    half = np.exp(np.minimum(raw[..., 2:4], _MAX_LOG_SIZE)) * step / 2.0
    xyxy = np.concatenate([centre - half, centre + half], axis=-1)
    scores = raw[..., 4:5] * raw[..., 5:]
    return xyxy.astype(np.float32, copy=False), scores.astype(np.float32, copy=False)


def select_candidates(
    xyxy: FloatArray,
    scores: FloatArray,
    confidence: float,
    keep_classes: Sequence[int] | None = None,
    max_candidates: int = MAX_CANDIDATES,
) -> tuple[FloatArray, FloatArray, IntArray]:
    """Each row's best class, when it scores at least ``confidence``.

    ``xyxy`` is ``(A, 4)``, ``scores`` ``(A, C)``. One box gets **one** label, as in YOLOX's
    own evaluation ``postprocess``: a car that also scores 0.35 as "truck" must stay one
    object, or the tracker would follow it twice and events and counts would double.
    ``keep_classes`` restricts the classes looked at (the best *kept* class wins). At most
    ``max_candidates`` best are returned: ``(boxes (n, 4), confidence (n,), class_id (n,))``.
    """
    scores = np.asarray(scores, dtype=np.float32)
    cls_index = None if keep_classes is None else np.asarray(keep_classes, dtype=np.int64)
    if cls_index is not None:
        scores = scores[:, cls_index]
    if scores.shape[1] == 0:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)
    best = np.argmax(scores, axis=1)
    conf = scores[np.arange(scores.shape[0]), best]
    rows = np.flatnonzero(conf >= confidence)
    if rows.shape[0] > max_candidates:
        rows = rows[np.argpartition(-conf[rows], max_candidates - 1)[:max_candidates]]
    cls = best[rows].astype(np.int64) if cls_index is None else cls_index[best[rows]]
    return (np.asarray(xyxy, dtype=np.float32)[rows], conf[rows].astype(np.float32), cls)


def postprocess_yolox(
    raw: FloatArray,
    *,
    input_size: tuple[int, int],
    scale: float,
    pad: tuple[float, float],
    image_size: tuple[int, int],
    confidence: float,
    nms_iou: float,
    keep_classes: Sequence[int] | None = None,
    strides: tuple[int, ...] = YOLOX_STRIDES,
    max_detections: int = MAX_DETECTIONS,
) -> Detections:
    """Raw rows ``(A, 5 + C)`` of one image → its ``Detections`` in image pixels.

    Rows whose objectness is below ``confidence`` are dropped before decoding: class scores
    are probabilities (≤ 1), so ``objectness * class`` cannot reach the threshold there, and
    skipping them avoids scoring ~3500 x 80 pairs per image for nothing.
    """
    raw = np.asarray(raw, dtype=np.float32)
    grid_rows = yolox_anchor_count(input_size, strides)
    if raw.ndim != 2 or raw.shape[0] != grid_rows:
        raise ValueError(f"expected raw rows ({grid_rows}, 5 + classes), got {raw.shape}")
    live = np.flatnonzero(raw[:, 4] >= confidence)
    if live.size == 0:
        return Detections.empty()
    grid, step = yolox_grid(input_size, tuple(strides))
    xyxy, scores = _decode(raw[live], grid[live], step[live])
    boxes, conf, cls = select_candidates(xyxy, scores, confidence, keep_classes)
    keep = nms(boxes, conf, nms_iou, class_id=cls)[:max_detections]
    return Detections(
        to_image_coords(boxes[keep], scale, pad, image_size),
        conf[keep],
        cls[keep],
        np.full(keep.shape[0], -1, dtype=np.int64),
    )
