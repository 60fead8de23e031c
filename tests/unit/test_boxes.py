"""Box geometry: IoU against hand-computed values, NMS against a plain greedy reference."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from vigil.boxes import iou_matrix, nms


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ([0, 0, 10, 10], [0, 0, 10, 10], 1.0),
        ([0, 0, 10, 10], [5, 0, 15, 10], 50 / 150),  # half overlap: 50 / (100 + 100 - 50)
        ([0, 0, 10, 10], [5, 5, 15, 15], 25 / 175),
        ([0, 0, 10, 10], [10, 0, 20, 10], 0.0),  # touching edges
        ([0, 0, 10, 10], [2, 2, 4, 4], 4 / 100),  # contained
        ([0, 0, 0, 10], [0, 0, 10, 10], 0.0),  # no area
        ([0, 0, 0, 10], [0, 0, 0, 10], 0.0),  # two without area: no union at all
        ([10, 10, 0, 0], [0, 0, 10, 10], 0.0),  # inverted corners: no area either
    ],
)
def test_iou_pairs(a: list[float], b: list[float], expected: float) -> None:
    assert iou_matrix([a], [b])[0, 0] == pytest.approx(expected)


def test_iou_matrix_shape_and_values() -> None:
    a = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], np.float32)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], np.float32)
    iou = iou_matrix(a, b)
    assert iou.dtype == np.float64
    np.testing.assert_allclose(iou, [[1.0, 1 / 3, 0.0], [0.0, 0.0, 1.0]])
    assert iou_matrix(np.zeros((0, 4)), b).shape == (0, 3)
    assert iou_matrix(a, np.zeros((0, 4))).shape == (2, 0)


def reference_nms(
    boxes: np.ndarray, scores: np.ndarray, threshold: float, classes: np.ndarray | None
) -> list[int]:
    """The rule written out plainly: best first, drop what a kept box overlaps above it."""
    iou = iou_matrix(boxes, boxes)
    same = np.ones((len(boxes),) * 2, bool) if classes is None else classes[:, None] == classes
    keep: list[int] = []
    for i in sorted(range(len(boxes)), key=lambda j: (-float(scores[j]), j)):
        if not any(iou[i, k] > threshold and same[i, k] for k in keep):
            keep.append(i)
    return keep


@pytest.mark.parametrize(
    ("boxes", "scores", "classes", "threshold", "kept"),
    [
        # same class, heavy overlap: the weaker one goes
        ([[0, 0, 10, 10], [1, 1, 11, 11]], [0.9, 0.8], [0, 0], 0.45, [0]),
        # different classes never suppress each other
        ([[0, 0, 10, 10], [1, 1, 11, 11]], [0.9, 0.8], [0, 2], 0.45, [0, 1]),
        # IoU exactly at the threshold (2 / 4 = 0.5) is kept; just above it is not
        ([[0, 0, 3, 1], [1, 0, 4, 1]], [0.9, 0.8], [0, 0], 0.5, [0, 1]),
        ([[0, 0, 3, 1], [1, 0, 4, 1]], [0.9, 0.8], [0, 0], 0.49, [0]),
        # IoU exactly 0.1 (2 / 20): OpenCV handed the plain 0.1 would drop the second box
        ([[0, 0, 11, 1], [9, 0, 20, 1]], [0.9, 0.8], [0, 0], 0.1, [0, 1]),
        # no overlap at all
        ([[0, 0, 1, 1], [5, 5, 6, 6]], [0.3, 0.6], [1, 1], 0.1, [1, 0]),
        # a chain: A suppresses B, so B cannot suppress C
        ([[0, 0, 10, 10], [2, 0, 12, 10], [7, 0, 17, 10]], [0.9, 0.8, 0.7], [0, 0, 0], 0.5, [0, 2]),
        # order follows score, not input position; equal scores keep input order
        ([[0, 0, 1, 1], [3, 3, 4, 4], [6, 6, 7, 7]], [0.1, 0.9, 0.1], [0, 0, 0], 0.5, [1, 0, 2]),
        # identical boxes of one class collapse to the best one
        ([[0, 0, 4, 4]] * 3, [0.5, 0.7, 0.6], [3, 3, 3], 0.9, [1]),
        # equal scores and boxes: the first one wins
        ([[0, 0, 4, 4]] * 3, [0.5, 0.5, 0.5], [3, 3, 3], 0.9, [0]),
        # boxes without area overlap nothing (OpenCV alone would merge the two points)
        ([[5, 5, 5, 5], [5, 5, 5, 5], [0, 0, 10, 10]], [0.9, 0.8, 0.7], [0, 0, 0], 0.5, [0, 1, 2]),
        # negative coordinates, classes still apart (NMSBoxesBatched needs them >= 0)
        ([[-50, -50, -10, -10], [-48, -50, -8, -10]], [0.9, 0.8], [0, 1], 0.3, [0, 1]),
        # zero and negative scores are ordinary scores (OpenCV drops scores <= 0 itself)
        ([[0, 0, 1, 1], [5, 5, 6, 6]], [0.0, -1.0], [0, 0], 0.5, [0, 1]),
        # empty input
        (np.zeros((0, 4)), [], [], 0.5, []),
    ],
)
def test_nms_table(
    boxes: list[list[float]],
    scores: list[float],
    classes: list[int],
    threshold: float,
    kept: list[int],
) -> None:
    keep = nms(np.asarray(boxes, np.float32), np.asarray(scores, np.float32), threshold,
               np.asarray(classes, np.int64))  # fmt: skip
    assert keep.dtype == np.int64
    assert keep.tolist() == kept
    assert keep.tolist() == reference_nms(
        np.asarray(boxes, np.float32), np.asarray(scores), threshold, np.asarray(classes)
    )


def test_without_classes_every_box_competes() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], np.float32)
    assert nms(boxes, [0.5, 0.9, 0.3], 0.3).tolist() == [1, 2]
    assert nms(boxes, [0.5, 0.9, 0.3], 0.3, class_id=[0, 1, 0]).tolist() == [1, 0, 2]


Case = tuple[np.ndarray, np.ndarray, np.ndarray, float]
CaseMaker = Callable[[np.random.Generator], Case]


def _grid_case(rng: np.random.Generator) -> Case:
    """Small integer boxes, few distinct scores, and a threshold that some pair hits exactly."""
    n = int(rng.integers(2, 60))
    xy = rng.integers(-20, 40, (n, 2))
    wh = rng.integers(0, 25, (n, 2))  # some without area
    boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
    scores = (rng.integers(1, 5, n) / 4).astype(np.float32)
    iou = iou_matrix(boxes, boxes)
    hits = np.unique(iou[(iou > 0) & (iou < 1)])
    threshold = float(rng.choice(hits)) if hits.size else 0.5
    return boxes, scores, rng.integers(0, 3, n), threshold


def _float_case(rng: np.random.Generator) -> Case:
    n = int(rng.integers(1, 60))
    xy = rng.uniform(-100, 400, (n, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(1, 150, (n, 2))], axis=1).astype(np.float32)
    scores = rng.uniform(0.3, 1.0, n).astype(np.float32)
    return boxes, scores, rng.integers(0, 4, n), float(rng.uniform(0.05, 0.95))


@pytest.mark.parametrize("case", [_grid_case, _float_case])
@pytest.mark.parametrize("aware", [True, False])
def test_nms_equals_the_reference_on_random_boxes(case: CaseMaker, aware: bool) -> None:
    rng = np.random.default_rng(7)
    for _ in range(150):
        boxes, scores, classes, threshold = case(rng)
        cls = classes if aware else None
        got = nms(boxes, scores, threshold, cls).tolist()
        assert got == reference_nms(boxes, scores, threshold, cls), (boxes, scores, threshold)


@pytest.mark.parametrize(
    ("boxes", "scores", "classes", "match"),
    [
        (np.zeros((2, 4)), [0.5], None, "one score per box"),
        (np.zeros((2, 4)), [0.5, 0.4], [0], "one class id per box"),
        (np.zeros((1, 4)), [0.5], [1 << 40], "32 bits"),
    ],
)
def test_nms_rejects_mismatched_input(
    boxes: np.ndarray, scores: list[float], classes: list[int] | None, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        nms(boxes, scores, 0.5, classes)


def test_nms_rejects_a_threshold_that_is_not_a_number() -> None:
    with pytest.raises(ValueError, match="finite"):
        nms(np.zeros((1, 4)), [0.5], float("nan"))
