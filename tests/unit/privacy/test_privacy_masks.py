"""Static masks black out their polygons, and bad polygons are refused with the fix."""

from __future__ import annotations

import numpy as np
import pytest

from vigil.errors import PrivacyError
from vigil.privacy.masks import StaticMasks, parse_polygon


def test_mask_blacks_out_polygon_only() -> None:
    image = np.full((100, 200, 3), 200, np.uint8)
    masks = StaticMasks([[(0.0, 0.0), (0.5, 0.0), (0.5, 0.5), (0.0, 0.5)]], (200, 100))
    masks.apply(image)
    assert not image[:50, :100].any()  # the left-top quarter is black
    assert (image[52:, :] == 200).all()
    assert (image[:, 102:] == 200).all()


def test_no_masks_changes_nothing() -> None:
    image = np.full((10, 10, 3), 7, np.uint8)
    StaticMasks([], (10, 10)).apply(image)
    assert (image == 7).all()


@pytest.mark.parametrize(
    ("text", "points"),
    [
        ("0,0 1,0 1,1", [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0)]),
        ("0.1,0.2;0.3,0.4;0.5,0.6", [(0.1, 0.2), (0.3, 0.4), (0.5, 0.6)]),
    ],
)
def test_parse_polygon(text: str, points: list[tuple[float, float]]) -> None:
    assert parse_polygon(text) == points


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0,0 1,1", "at least 3 points"),
        ("0,0 1,0 2,2", "outside 0..1"),
        ("0,0 1;0 1,1 x", "is not a point"),
    ],
)
def test_parse_polygon_errors(text: str, message: str) -> None:
    with pytest.raises(PrivacyError, match=message):
        parse_polygon(text)


def test_mask_out_of_range_refused() -> None:
    with pytest.raises(PrivacyError, match=r"0\.\.1"):
        StaticMasks([[(0.0, 0.0), (1.5, 0.0), (1.0, 1.0)]], (10, 10))
