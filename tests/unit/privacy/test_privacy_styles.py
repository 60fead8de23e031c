"""Styles change the region and nothing outside the margin-grown box; boxes grow outward."""

from __future__ import annotations

import numpy as np
import pytest

from vigil.privacy.styles import grow_boxes, hide_boxes


def _textured(h: int = 120, w: int = 160, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    ("box", "margin", "expected"),
    [
        ((10, 20, 30, 60), 0.0, (10, 20, 30, 60)),
        ((10, 20, 30, 60), 0.5, (0, 0, 40, 80)),  # grown by 10 x, 20 y
        ((10.2, 20.7, 29.1, 59.5), 0.0, (10, 20, 30, 60)),  # rounds outward
        ((150, 100, 170, 130), 0.2, (146, 94, 160, 120)),  # clipped to the 160x120 frame
        ((-20, -20, 5, 5), 0.0, (0, 0, 5, 5)),
    ],
)
def test_grow_boxes(box: tuple[float, ...], margin: float, expected: tuple[int, ...]) -> None:
    grown = grow_boxes(np.array([box], np.float32), margin, (160, 120))
    assert tuple(grown[0].tolist()) == expected


def test_grow_boxes_drops_boxes_outside_the_frame() -> None:
    assert grow_boxes(np.array([[200, 200, 220, 220]], np.float32), 0.1, (160, 120)).shape == (0, 4)


@pytest.mark.parametrize("style", ["blur", "pixelate", "fill"])
def test_style_hides_region_and_only_region(style: str) -> None:
    image = _textured()
    out = image.copy()
    box = np.array([[40, 30, 100, 90]], np.int64)
    hide_boxes(out, box, style)  # type: ignore[arg-type]
    inside, before = out[30:90, 40:100], image[30:90, 40:100]
    # Most pixels of the region changed, and its detail is gone (low variance after).
    assert np.mean(np.any(inside != before, axis=2)) > 0.9
    assert inside.astype(float).std() < before.astype(float).std() / 2
    outside = np.ones(image.shape[:2], bool)
    outside[30:90, 40:100] = False
    np.testing.assert_array_equal(out[outside], image[outside])


def test_fill_is_black() -> None:
    out = _textured()
    hide_boxes(out, np.array([[0, 0, 10, 10]], np.int64), "fill")
    assert not out[:10, :10].any()


@pytest.mark.parametrize("style", ["blur", "pixelate"])
def test_tiny_regions_do_not_crash(style: str) -> None:
    out = _textured()
    hide_boxes(out, np.array([[5, 5, 6, 6], [10, 10, 12, 11]], np.int64), style)  # type: ignore[arg-type]
