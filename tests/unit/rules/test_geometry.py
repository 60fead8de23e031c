"""Geometry: exact endpoint and edge decisions, sign convention of sides."""

from __future__ import annotations

import numpy as np
import pytest

from vigil.errors import ConfigError
from vigil.rules.geometry import (
    crossing_direction,
    points_in_polygon,
    polygon_area,
    side_of,
    to_pixels,
)

LINE_A, LINE_B = (0.0, 0.0), (10.0, 0.0)  # horizontal, pointing right on screen


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        ((5.0, -5.0), (5.0, 5.0), 1),  # straight through the middle, downwards: left → right
        ((5.0, 5.0), (5.0, -5.0), -1),  # and back
        ((10.0, -5.0), (10.0, 5.0), 1),  # exactly through the B endpoint counts
        ((0.0, 5.0), (0.0, -5.0), -1),  # exactly through the A endpoint counts
        ((9.0, -1.0), (11.0, 1.0), 1),  # diagonal exactly through the B endpoint
        ((10.5, -5.0), (10.5, 5.0), 0),  # just beyond the B end: the extension, not the line
        ((-0.001, -5.0), (-0.001, 5.0), 0),  # just beyond the A end
        ((9.0, -1.0), (11.0, 0.5), 0),  # diagonal meeting y=0 at x=10.33, beyond B
        ((2.0, 0.0), (8.0, 0.0), 0),  # collinear movement along the line
        ((-5.0, 0.0), (20.0, 0.0), 0),  # collinear, covering the whole line
        ((5.0, 0.0), (5.0, 0.0), 0),  # zero-length movement on the line
        ((5.0, -3.0), (5.0, -3.0), 0),  # zero-length movement off the line
        ((5.0, -5.0), (5.0, 0.0), 1),  # ends exactly on the line
        ((5.0, 0.0), (5.0, 5.0), 1),  # starts exactly on the line
        ((0.0, -5.0), (10.0, -5.0), 0),  # parallel, never meets
        ((5.0, -5.0), (5.0, -1.0), 0),  # approaches, stops short
    ],
)
def test_crossing_direction(
    start: tuple[float, float], end: tuple[float, float], expected: int
) -> None:
    result = crossing_direction([start], [end], LINE_A, LINE_B)
    assert result.tolist() == [expected]


def test_crossing_direction_is_vectorised() -> None:
    starts = np.array([[5, -5], [10.5, -5], [5, 5]], dtype=np.float64)
    ends = np.array([[5, 5], [10.5, 5], [5, -5]], dtype=np.float64)
    assert crossing_direction(starts, ends, LINE_A, LINE_B).tolist() == [1, 0, -1]


@pytest.mark.parametrize(
    ("a", "b", "point", "sign"),
    [
        # A line pointing right on screen: above (y smaller) is its left, below its right.
        ((0, 0), (10, 0), (5, -3), -1),
        ((0, 0), (10, 0), (5, 3), 1),
        # Pointing down the screen: the screen's right (x larger) is its left.
        ((0, 0), (0, 10), (3, 5), -1),
        ((0, 0), (0, 10), (-3, 5), 1),
        # Pointing left: below is its left.
        ((10, 0), (0, 0), (5, 3), -1),
        ((0, 0), (10, 0), (20, 0), 0),  # on the infinite extension
    ],
)
def test_side_of_sign_convention(
    a: tuple[float, float], b: tuple[float, float], point: tuple[float, float], sign: int
) -> None:
    assert np.sign(side_of([point], a, b)).tolist() == [sign]


def test_side_of_is_a_distance_in_pixels() -> None:
    assert side_of([(1.0, 7.0)], (0.0, 0.0), (0.0, 3.0)).tolist() == pytest.approx([-1.0])
    assert side_of([(3.0, 4.0)], (0.0, 0.0), (4.0, -3.0)).tolist() == pytest.approx([5.0])


SQUARE = [(0, 0), (10, 0), (10, 10), (0, 10)]
CONCAVE = [(0, 0), (10, 0), (10, 10), (5, 5), (0, 10)]  # a notch from the top edge down


@pytest.mark.parametrize(
    ("polygon", "point", "inside"),
    [
        (SQUARE, (5, 5), True),
        (SQUARE, (0, 5), True),  # on the left edge
        (SQUARE, (10, 5), True),  # on the right edge
        (SQUARE, (5, 0), True),  # on the top edge
        (SQUARE, (5, 10), True),  # on the bottom edge
        (SQUARE, (10, 10), True),  # on a vertex
        (SQUARE, (0, 0), True),  # on the first vertex
        (SQUARE, (10.001, 5), False),  # just outside
        (SQUARE, (-0.001, 5), False),
        (SQUARE, (5, 10.5), False),
        (CONCAVE, (5, 8), False),  # in the notch
        (CONCAVE, (5, 5), True),  # on the notch's tip vertex
        (CONCAVE, (7.5, 7.5), True),  # on a slanted notch edge
        (CONCAVE, (5, 3), True),
        (list(reversed(SQUARE)), (10, 5), True),  # vertex order does not matter
    ],
)
def test_points_in_polygon(
    polygon: list[tuple[float, float]], point: tuple[float, float], inside: bool
) -> None:
    assert points_in_polygon([point], polygon).tolist() == [inside]


def test_points_in_polygon_vectorised_and_empty() -> None:
    pts = np.array([[5, 5], [20, 20], [0, 10]], dtype=np.float32)
    assert points_in_polygon(pts, SQUARE).tolist() == [True, False, True]
    assert points_in_polygon(np.zeros((0, 2)), SQUARE).shape == (0,)


def test_to_pixels_and_area() -> None:
    pixels = to_pixels([(0.0, 0.0), (1.0, 0.5), (0.25, 1.0)], (640, 360))
    assert pixels.tolist() == [[0, 0], [640, 180], [160, 360]]
    assert polygon_area(to_pixels([(0, 0), (1, 0), (1, 1), (0, 1)], (640, 360))) == 640 * 360


def test_to_pixels_rejects_empty_frame() -> None:
    with pytest.raises(ConfigError, match="frame size"):
        to_pixels([(0.5, 0.5)], (0, 360))
