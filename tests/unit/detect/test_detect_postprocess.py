"""YOLOX letterbox, decode and candidate selection against hand-computed values.

NMS itself is tested in tests/unit/test_boxes.py; here only that postprocessing applies it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from vigil.detect.postprocess import (
    PAD_VALUE,
    letterbox,
    postprocess_yolox,
    select_candidates,
    to_image_coords,
    to_input_coords,
    yolox_anchor_count,
    yolox_grid,
)

NUM_CLASSES = 80
INPUT = (416, 416)


def _image(w: int, h: int, value: int = 200) -> np.ndarray:
    return np.full((h, w, 3), value, dtype=np.uint8)


# ---------------------------------------------------------------------------- letterbox


@pytest.mark.parametrize(
    ("image_wh", "size", "scale", "content_wh"),
    [
        # wide: full width, pad below; 432 * (416 / 768) is 233.99999 in floating point and
        # YOLOX truncates, so 233 rows (the model was evaluated exactly so)
        ((768, 432), (416, 416), 416 / 768, (416, 233)),
        ((432, 768), (416, 416), 416 / 768, (233, 416)),  # tall: full height, pad right
        ((208, 208), (416, 416), 2.0, (416, 416)),  # upscaled, no pad
        ((416, 416), (416, 416), 1.0, (416, 416)),  # identity
        ((640, 480), (640, 320), 320 / 480, (426, 320)),  # non-square input
    ],
)
def test_letterbox_scales_into_top_left_and_pads_with_114(image_wh, size, scale, content_wh):
    blob, got_scale, pad = letterbox(_image(*image_wh), size)
    assert blob.shape == (3, size[1], size[0])
    assert blob.dtype == np.float32
    assert got_scale == pytest.approx(scale)
    assert pad == (0.0, 0.0)
    cw, ch = content_wh
    assert np.all(blob[:, :ch, :cw] == 200.0)
    assert np.all(blob[:, ch:, :] == PAD_VALUE)
    assert np.all(blob[:, :, cw:] == PAD_VALUE)


def test_letterbox_keeps_bgr_channel_order_and_raw_values():
    image = np.zeros((10, 20, 3), dtype=np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = 10, 20, 250  # B, G, R
    blob, _, _ = letterbox(image, (20, 20))
    assert blob[0, 0, 0] == 10.0
    assert blob[1, 0, 0] == 20.0
    assert blob[2, 0, 0] == 250.0


def test_letterbox_center_option_pads_both_sides():
    blob, scale, pad = letterbox(_image(400, 200), (400, 400), center=True)
    assert scale == 1.0
    assert pad == (0.0, 100.0)
    assert np.all(blob[:, :100] == PAD_VALUE)
    assert np.all(blob[:, 300:] == PAD_VALUE)
    assert np.all(blob[:, 100:300] == 200.0)


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((10, 10), np.uint8),
        np.zeros((10, 10, 4), np.uint8),
        np.zeros((10, 10, 3), np.float32),
        np.zeros((0, 10, 3), np.uint8),
    ],
)
def test_letterbox_rejects_non_bgr_images(bad):
    with pytest.raises(ValueError, match="image"):
        letterbox(bad, INPUT)


@pytest.mark.parametrize("center", [False, True])
@pytest.mark.parametrize("image_wh", [(768, 432), (480, 270), (100, 300), (1920, 1080)])
def test_coordinates_round_trip_through_the_letterbox(image_wh, center):
    w, h = image_wh
    _, scale, pad = letterbox(_image(w, h), INPUT, center=center)
    boxes = np.array([[0, 0, w, h], [w * 0.25, h * 0.5, w * 0.75, h * 0.9]], np.float32)
    inside = to_input_coords(boxes, scale, pad)
    assert inside.min() >= 0.0
    assert inside[:, 2].max() <= 416.0 + 1e-3
    back = to_image_coords(inside, scale, pad, (w, h))
    np.testing.assert_allclose(back, boxes, rtol=1e-5, atol=1e-3)


def test_to_image_coords_clips_to_the_image():
    out = to_image_coords(np.array([[-50, -5, 500, 300]], np.float32), 0.5, (0, 0), (640, 480))
    np.testing.assert_array_equal(out, [[0, 0, 640, 480]])


# ------------------------------------------------------------------------------- decode


@pytest.mark.parametrize(
    ("size", "rows"),
    [((416, 416), 3549), ((640, 640), 8400), ((320, 320), 2100), ((640, 384), 5040)],
)
def test_anchor_count(size, rows):
    assert yolox_anchor_count(size) == rows
    assert yolox_grid(size)[0].shape == (rows, 2)


def _hot_row(stride: int, gx: int, gy: int, size: tuple[int, int] = INPUT) -> int:
    """Index of grid cell (gx, gy) of ``stride`` in the output rows (hand-computed layout)."""
    offset = 0
    for s in (8, 16, 32):
        cols, rows = size[0] // s, size[1] // s
        if s == stride:
            return offset + gy * cols + gx
        offset += cols * rows
    raise AssertionError(stride)


@pytest.mark.parametrize(
    ("stride", "gx", "gy", "row"),
    [(8, 3, 2, 2 * 52 + 3), (16, 5, 7, 2704 + 7 * 26 + 5), (32, 12, 0, 2704 + 676 + 12)],
)
def test_decode_one_hot_cell_per_stride(stride, gx, gy, row):
    assert _hot_row(stride, gx, gy) == row
    raw = np.zeros((3549, 5 + NUM_CLASSES), np.float32)
    raw[row, :5] = [0.5, 0.25, math.log(2.0), math.log(4.0), 0.9]
    raw[row, 5 + 7] = 0.5  # class 7 ("truck")
    det = postprocess_yolox(
        raw, input_size=INPUT, scale=1.0, pad=(0, 0), image_size=(1000, 1000),
        confidence=0.3, nms_iou=0.45,
    )  # fmt: skip
    cx, cy = (gx + 0.5) * stride, (gy + 0.25) * stride
    w, h = 2.0 * stride, 4.0 * stride
    expected = np.clip([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 0, None)
    np.testing.assert_allclose(det.xyxy, [expected])  # clipped to the image at the top
    assert det.class_id.tolist() == [7]
    assert det.confidence[0] == pytest.approx(0.45)


def test_postprocess_rejects_wrong_row_count():
    with pytest.raises(ValueError, match="3549"):
        postprocess_yolox(
            np.zeros((8400, 85), np.float32), input_size=INPUT, scale=1.0, pad=(0, 0),
            image_size=INPUT, confidence=0.3, nms_iou=0.45,
        )  # fmt: skip


def test_decode_does_not_overflow_on_huge_log_sizes():
    raw = _raw_with_box(_hot_row(8, 1, 1), cls=0)
    raw[:, 2:4] = 1000.0
    det = postprocess_yolox(
        raw, input_size=INPUT, scale=1.0, pad=(0, 0), image_size=INPUT,
        confidence=0.3, nms_iou=0.45,
    )  # fmt: skip
    assert np.isfinite(det.xyxy).all()
    np.testing.assert_allclose(det.xyxy, [[0, 0, 416, 416]])


def test_select_candidates_gives_each_box_its_best_class_only():
    xyxy = np.array([[0, 0, 1, 1], [2, 2, 3, 3], [4, 4, 5, 5]], np.float32)
    scores = np.zeros((3, 80), np.float32)
    scores[0, [0, 1]] = [0.6, 0.4]  # one box, two plausible classes: one label
    scores[1, 2] = 0.2  # below the threshold
    scores[2, [2, 7]] = [0.35, 0.5]  # "truck" beats "car"
    boxes, conf, cls = select_candidates(xyxy, scores, 0.3)
    assert sorted(zip(cls.tolist(), conf.tolist(), strict=True)) == [
        (0, pytest.approx(0.6)),
        (7, pytest.approx(0.5)),
    ]
    assert len(boxes) == 2
    # Restricted to some classes, the best of those wins even if another class scored higher.
    _, conf, only = select_candidates(xyxy, scores, 0.3, keep_classes=[1, 2])
    assert sorted(only.tolist()) == [1, 2]
    assert sorted(conf.tolist()) == [pytest.approx(0.35), pytest.approx(0.4)]


# ----------------------------------------------------------------- postprocess, end to end


def _raw_with_box(row: int, cls: int, obj: float = 0.9, cls_score: float = 0.9) -> np.ndarray:
    raw = np.zeros((3549, 85), np.float32)
    raw[row, :5] = [0.0, 0.0, math.log(4.0), math.log(2.0), obj]
    raw[row, 5 + cls] = cls_score
    return raw


def test_postprocess_maps_back_to_image_pixels():
    # stride 16 cell (10, 6): centre (160, 96) input px, 64 x 32 box
    raw = _raw_with_box(_hot_row(16, 10, 6), cls=2)
    image_wh = (832, 468)  # scale 0.5 into 416
    _, scale, pad = letterbox(_image(*image_wh), INPUT)
    det = postprocess_yolox(
        raw, input_size=INPUT, scale=scale, pad=pad, image_size=image_wh,
        confidence=0.3, nms_iou=0.45,
    )  # fmt: skip
    assert len(det) == 1
    np.testing.assert_allclose(det.xyxy[0], [256, 160, 384, 224])
    assert det.class_id.tolist() == [2]
    assert det.confidence[0] == pytest.approx(0.81)
    assert det.tracker_id.tolist() == [-1]


@pytest.mark.parametrize(
    ("obj", "cls_score", "keep_classes", "expected"),
    [
        (0.9, 0.9, None, 1),
        (0.5, 0.5, None, 0),  # 0.25 < 0.3
        (0.9, 0.9, [0, 1], 0),  # class 2 filtered out
        (0.9, 0.9, [2], 1),
    ],
)
def test_postprocess_threshold_and_class_filter(obj, cls_score, keep_classes, expected):
    raw = _raw_with_box(_hot_row(8, 1, 1), cls=2, obj=obj, cls_score=cls_score)
    det = postprocess_yolox(
        raw, input_size=INPUT, scale=1.0, pad=(0, 0), image_size=INPUT,
        confidence=0.3, nms_iou=0.45, keep_classes=keep_classes,
    )  # fmt: skip
    assert len(det) == expected
    if expected:
        assert det.class_id.tolist() == [2]


@pytest.mark.parametrize(("second_class", "expected"), [(2, [2]), (0, [2, 0])])
def test_postprocess_suppresses_duplicates_of_one_class_only(second_class, expected):
    raw = _raw_with_box(_hot_row(16, 10, 6), cls=2)
    twin = _hot_row(16, 11, 6)  # the neighbouring cell, shifted back onto the same object
    raw[twin] = raw[_hot_row(16, 10, 6)]
    raw[twin, 0] = -0.9  # centre 16 * 0.1 px right of the first: IoU ~0.95
    raw[twin, 5:] = 0.0
    raw[twin, 5 + second_class] = 0.8
    det = postprocess_yolox(
        raw, input_size=INPUT, scale=1.0, pad=(0, 0), image_size=INPUT,
        confidence=0.3, nms_iou=0.45,
    )  # fmt: skip
    assert det.class_id.tolist() == expected


def test_postprocess_clips_boxes_to_the_image():
    raw = _raw_with_box(_hot_row(32, 0, 0), cls=0)
    raw[_hot_row(32, 0, 0), 2:4] = math.log(8.0)  # 256 px box centred at (16, 16)
    det = postprocess_yolox(
        raw, input_size=INPUT, scale=1.0, pad=(0, 0), image_size=(100, 50),
        confidence=0.3, nms_iou=0.45,
    )  # fmt: skip
    np.testing.assert_allclose(det.xyxy, [[0, 0, 100, 50]])
