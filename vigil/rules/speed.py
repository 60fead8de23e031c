"""Speeds on the ground plane: a zone's calibration homography and windowed velocity fits.

Calibration (`GroundPlane`). A calibrated zone has four polygon corners A, B, C, D that lie on
flat ground, and the true lengths of its sides AB, BC, CD, DA. The ground quadrilateral is
built with a right angle at A (A at the origin, B along +x, D along the second axis, C where
the circles around B and D with radii BC and CD meet, on the convex side), which is exact for
the usual case of a rectangle marked on a road, and a homography maps image pixels to ground
units (OpenCV ``getPerspectiveTransform``). Side lengths alone do not fix a quadrilateral's
angles, hence the right-angle assumption, which the documentation states.

The ground frame is then turned, and mirrored if needed, so that it has the image's handedness
and the ground direction that points *up the screen* at the zone's centre is its ``-y``: a
ground heading then means what the same heading means on the screen (0 = up, 90 = right),
only measured true on the road. See `vigil.rules.heading` for the heading convention.

Velocity (`MotionWindow`). Each track's ground (or image) positions over the last ``window``
seconds are fitted with a least-squares line per axis against the frames' own timestamps; the
slope is the velocity. A fit averages box jitter over every sample in the window rather than
differencing two noisy positions, and uneven frame gaps (skipped frames, a varying fps) are
weighted by their real times.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from vigil.errors import ConfigError

F64Array = npt.NDArray[np.float64]

#: Ground length unit → speed unit, and the factor from length units per second to it.
UNITS: dict[str, tuple[str, str, float]] = {
    "metric": ("m", "km/h", 3.6),
    "imperial": ("ft", "mph", 3600.0 / 5280.0),
}


def speed_key(speed_unit: str) -> str:
    """The measure-name suffix of a speed unit: ``km/h`` → ``kmh``, ``mph`` → ``mph``."""
    return speed_unit.replace("/", "")


def _signed_area(points: F64Array) -> float:
    """Shoelace area: > 0 when the points run clockwise on screen (y down)."""
    x, y = points[:, 0], points[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


def _is_convex(points: F64Array) -> bool:
    """Whether the closed polygon turns the same way at every corner (no fold, no dent)."""
    turns = []
    n = len(points)
    for i in range(n):
        o, a, b = points[i], points[(i + 1) % n], points[(i + 2) % n]
        turns.append((a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]))
    return all(t > 0 for t in turns) or all(t < 0 for t in turns)


def ground_quad(zone: str, distances: Sequence[float]) -> F64Array:
    """Ground corners A, B, C, D (A = origin, B on +x, D on +y) from the side lengths.

    Raises `ConfigError` when the lengths cannot close such a quadrilateral.
    """
    ab, bc, cd, da = (float(d) for d in distances)
    b, d = np.array([ab, 0.0]), np.array([0.0, da])
    # C is at distance bc from B and cd from D: intersect the two circles.
    gap = float(np.hypot(*(d - b)))
    along = (bc * bc - cd * cd + gap * gap) / (2.0 * gap)
    h2 = bc * bc - along * along
    if h2 <= 0.0:
        raise ConfigError(
            f"zone {zone!r}: calibration.distances {list(distances)} cannot close a "
            "four-sided shape with a right angle at the first corner; give the true side "
            "lengths in polygon order (1→2, 2→3, 3→4, 4→1), opposite sides equal for a rectangle"
        )
    unit = (d - b) / gap
    normal = np.array([unit[1], -unit[0]])
    base = b + along * unit
    candidates = [base + math.sqrt(h2) * normal, base - math.sqrt(h2) * normal]
    c = max(candidates, key=lambda p: float(np.hypot(*p)))  # the convex one: away from A
    quad = np.array([[0.0, 0.0], b, c, d], dtype=np.float64)
    if not _is_convex(quad):
        raise ConfigError(
            f"zone {zone!r}: calibration.distances {list(distances)} make a dented shape; "
            "give the true side lengths in polygon order (1→2, 2→3, 3→4, 4→1)"
        )
    return quad


class GroundPlane:
    """Image pixels → ground units of one calibrated zone (see the module docstring).

    ``corners`` are the zone's four polygon corners in frame pixels, ``distances`` the true
    lengths of its sides in ``units`` (metric: metres, imperial: feet).
    """

    def __init__(
        self, zone: str, corners: F64Array, distances: Sequence[float], units: str = "metric"
    ) -> None:
        corners = np.asarray(corners, dtype=np.float64).reshape(-1, 2)
        if corners.shape != (4, 2):
            raise ConfigError(f"zone {zone!r}: a calibrated zone needs exactly 4 corners")
        if not _is_convex(corners):
            raise ConfigError(
                f"zone {zone!r}: a calibrated zone's 4 corners must make a convex shape in "
                "the image (no crossing sides); list them in order around the zone"
            )
        self.length_unit, self.speed_unit, self._to_speed = UNITS[units]
        ground = ground_quad(zone, distances)
        if (_signed_area(ground) > 0) != (_signed_area(corners) > 0):
            ground[:, 1] = -ground[:, 1]  # same turning order as the image: no mirror image
        raw = cv2.getPerspectiveTransform(corners.astype(np.float32), ground.astype(np.float32))
        self.matrix = self._upright(np.asarray(raw, dtype=np.float64), corners.mean(axis=0))

    @staticmethod
    def _upright(matrix: F64Array, centre: F64Array) -> F64Array:
        """Turn the ground frame about its origin so "up the screen" at ``centre`` is -y."""
        pts = np.array([[centre, centre - np.array([0.0, 1.0])]], dtype=np.float64)
        here, up = cv2.perspectiveTransform(pts, matrix)[0]
        angle = math.atan2(up[0] - here[0], -(up[1] - here[1]))  # heading of "up", radians
        cos, sin = math.cos(-angle), math.sin(-angle)
        # Rotating a vector of heading `angle` by -angle (clockwise on screen = y-down turn).
        turn = np.array([[cos, -sin, 0.0], [sin, cos, 0.0], [0.0, 0.0, 1.0]])
        return np.asarray(turn @ matrix, dtype=np.float64)

    def to_ground(self, points: npt.ArrayLike) -> F64Array:
        """``(n, 2)`` frame pixels → ``(n, 2)`` ground units (metres or feet)."""
        pts = np.asarray(points, dtype=np.float64).reshape(1, -1, 2)
        return np.asarray(cv2.perspectiveTransform(pts, self.matrix)[0], dtype=np.float64)

    def speed(self, units_per_second: float) -> float:
        """Ground units per second → km/h (metric) or mph (imperial)."""
        return units_per_second * self._to_speed


@dataclass(frozen=True, slots=True)
class Fit:
    """A track's smoothed state over its window: mean position and velocity per second."""

    x: float
    y: float
    vx: float
    vy: float
    span: float

    @property
    def speed(self) -> float:
        """Distance per second (ground units or pixels)."""
        return math.hypot(self.vx, self.vy)


class MotionWindow:
    """One track's recent ``(time, x, y)`` samples and their least-squares velocity.

    Holds the samples of the last ``window`` seconds (so memory is bounded by the detect fps).
    `fit` needs three samples spanning at least half the window, fewer gives no estimate.
    """

    __slots__ = ("_samples", "window")

    def __init__(self, window: float) -> None:
        if window <= 0:
            raise ValueError("the smoothing window must be positive")
        self.window = float(window)
        self._samples: deque[tuple[float, float, float]] = deque()

    def add(self, time: float, x: float, y: float) -> None:
        """Append one sample (times must not go back) and drop those older than the window."""
        if self._samples and time < self._samples[-1][0]:
            self._samples.clear()  # a clock jump back (stream restart): start afresh
        self._samples.append((float(time), float(x), float(y)))
        while self._samples and self._samples[0][0] < time - self.window:
            self._samples.popleft()

    def __len__(self) -> int:
        return len(self._samples)

    def fit(self) -> Fit | None:
        """Mean position and velocity over the window, or None while too few samples."""
        if len(self._samples) < 3:
            return None
        data = np.asarray(self._samples, dtype=np.float64)
        t = data[:, 0] - data[:, 0].mean()
        span = float(data[-1, 0] - data[0, 0])
        if span < self.window / 2.0:
            return None
        denom = float(np.dot(t, t))
        mean = data[:, 1:].mean(axis=0)
        slope = (t @ (data[:, 1:] - mean)) / denom
        return Fit(float(mean[0]), float(mean[1]), float(slope[0]), float(slope[1]), span)
