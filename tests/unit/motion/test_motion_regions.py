"""detection_regions and box grouping: tables of inputs and the regions expected."""

from __future__ import annotations

import numpy as np
import pytest

from vigil.motion import detection_regions, group_boxes, merge_boxes

FRAME = (1920, 1080)
NONE: list[list[float]] = []


@pytest.mark.parametrize(
    ("boxes", "gap", "groups"),
    [
        (NONE, 10, []),
        ([[0, 0, 10, 10]], 10, [[0]]),
        ([[0, 0, 10, 10], [15, 0, 25, 10]], 10, [[0, 1]]),  # 5 px apart
        ([[0, 0, 10, 10], [15, 0, 25, 10]], 4, [[0], [1]]),
        ([[0, 0, 10, 10], [5, 5, 20, 20]], 0, [[0, 1]]),  # overlapping
        ([[0, 0, 10, 10], [10, 0, 20, 10]], 0, [[0, 1]]),  # touching
        ([[0, 0, 10, 10], [100, 100, 110, 110]], 10, [[0], [1]]),
        # A chain: 0 and 2 are far apart but both near 1.
        ([[0, 0, 10, 10], [40, 0, 50, 10], [18, 0, 32, 10]], 10, [[0, 1, 2]]),
        # Near on x but far on y: not near.
        ([[0, 0, 10, 10], [12, 50, 20, 60]], 5, [[0], [1]]),
    ],
)
def test_group_boxes(boxes: list[list[float]], gap: float, groups: list[list[int]]) -> None:
    assert group_boxes(boxes, gap) == groups


def test_merge_boxes_returns_unions() -> None:
    merged = merge_boxes([[0, 0, 10, 10], [15, 5, 25, 30], [200, 200, 210, 210]], 10)
    assert merged.tolist() == [[0, 0, 25, 30], [200, 200, 210, 210]]


def test_merge_boxes_rejects_wrong_shapes() -> None:
    with pytest.raises(ValueError, match=r"shape \(n, 4\)"):
        merge_boxes(np.zeros((3, 2)), 1)


@pytest.mark.parametrize(
    ("motion", "tracks", "expected"),
    [
        # Nothing moves, no track: skip the frame.
        (NONE, NONE, []),
        # A small blob: grown, then made min_side square around its centre.
        ([[900, 500, 940, 560]], NONE, [(712, 322, 1128, 738)]),
        # Near the top-left corner: shifted inside the frame, not cut.
        ([[0, 0, 30, 30]], NONE, [(0, 0, 416, 416)]),
        # Near the bottom-right corner.
        ([[1900, 1060, 1920, 1080]], NONE, [(1504, 664, 1920, 1080)]),
        # A live track alone keeps its region (an object that stopped moving).
        (NONE, [[100, 600, 200, 900]], [(0, 525, 416, 975)]),
        # Two distant blobs: two regions.
        (
            [[100, 100, 140, 160], [1700, 800, 1740, 860]],
            NONE,
            [(0, 0, 416, 416), (1504, 622, 1920, 1038)],
        ),
        # Two blobs whose squares overlap: one region, their union.
        ([[500, 500, 540, 560], [700, 500, 740, 560]], NONE, [(312, 322, 928, 738)]),
        # A large region: kept as is (plus margin), bigger than min_side.
        ([[400, 200, 1000, 600]], NONE, [(250, 100, 1150, 700)]),
        # Regions over half the frame: one full-frame inference.
        ([[100, 100, 1800, 1000]], NONE, [(0, 0, 1920, 1080)]),
        # Four corner regions of 562x562 each: 61 % of the frame together.
        (
            [[0, 0, 450, 450], [1470, 0, 1920, 450], [0, 630, 450, 1080], [1470, 630, 1920, 1080]],
            NONE,
            [(0, 0, 1920, 1080)],
        ),
        # Three corner squares of 416: 25 % of the frame, kept apart.
        (
            [[0, 0, 200, 200], [1700, 0, 1900, 200], [0, 800, 200, 1000]],
            NONE,
            [(0, 0, 416, 416), (1504, 0, 1920, 416), (0, 664, 416, 1080)],
        ),
    ],
)
def test_detection_regions(
    motion: list[list[float]], tracks: list[list[float]], expected: list[tuple[int, ...]]
) -> None:
    assert (
        detection_regions(FRAME, motion, tracks, margin=0.25, min_side=416, merge_gap=16)
        == expected
    )


def test_small_frames_give_the_whole_frame() -> None:
    # A 416 region is over half of a 640x360 frame.
    assert detection_regions(
        (640, 360), [[10, 10, 20, 20]], NONE, margin=0.25, min_side=416, merge_gap=16
    ) == [(0, 0, 640, 360)]


def test_regions_are_inside_the_frame_and_disjoint() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 6))
        xy = rng.uniform(-50, 1900, size=(n, 2))
        wh = rng.uniform(5, 200, size=(n, 2))
        boxes = np.concatenate([xy, xy + wh], axis=1)
        regions = detection_regions(
            FRAME, boxes, NONE, margin=0.25, min_side=300, merge_gap=16, full_frame_fraction=1.0
        )
        for x1, y1, x2, y2 in regions:
            assert 0 <= x1 < x2 <= FRAME[0]
            assert 0 <= y1 < y2 <= FRAME[1]
            assert min(x2 - x1, y2 - y1) >= 300
        for i, a in enumerate(regions):
            for b in regions[i + 1 :]:
                assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]
        # Every input box that lies in the frame is covered by some region.
        for x1, y1, x2, y2 in np.clip(boxes, 0, [1920, 1080, 1920, 1080]):
            if x2 > x1 and y2 > y1:
                assert any(r[0] <= x1 and r[1] <= y1 and x2 <= r[2] and y2 <= r[3] for r in regions)
