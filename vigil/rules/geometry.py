"""Plane geometry for zones and lines: pure numpy, float64, frame pixels.

Coordinate frame: frame pixels, x to the right, **y down**, origin at the top-left corner of the
frame (the frame of `vigil.types`). Normalized configuration points (0..1) are converted once by
`to_pixels`; everything else here works in pixels.

Exactness: every predicate is decided by the sign of a 2×2 cross product computed in float64,
never by a tolerance. For the coordinates rules actually see (pixel values with a few fractional
bits: integers, halves, float32 anchors) those products are exact, so a point exactly on an edge
or a path exactly through a line's endpoint is decided the same way every time. Only the
even-odd ray test inside `points_in_polygon` divides, and it is not used for points on an edge,
which are caught exactly first.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from vigil.errors import ConfigError

F64Array = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
Int8Array = npt.NDArray[np.int8]
Point = tuple[float, float]


def to_pixels(points: Sequence[Sequence[float]], frame_size: tuple[int, int]) -> F64Array:
    """Normalized ``(x, y)`` points (0..1 of width, height) → ``(n, 2)`` float64 pixels.

    ``x_px = x * width``, ``y_px = y * height``: continuous coordinates, so 1.0 is the far edge
    of the frame (not the centre of the last pixel) and a zone spanning 0..1 covers everything.
    """
    width, height = frame_size
    if width <= 0 or height <= 0:
        raise ConfigError(
            f"frame size must be positive, got {width}x{height}: pass the decoded frame's size"
        )
    arr = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return arr * np.array([width, height], dtype=np.float64)


def _cross(o: F64Array, a: F64Array, b: F64Array) -> F64Array:
    """z of ``(a - o) × (b - o)``, broadcast over leading axes; > 0 means b is right of o→a."""
    return np.asarray(
        (a[..., 0] - o[..., 0]) * (b[..., 1] - o[..., 1])
        - (a[..., 1] - o[..., 1]) * (b[..., 0] - o[..., 0]),
        dtype=np.float64,
    )


def side_of(points: npt.ArrayLike, a: npt.ArrayLike, b: npt.ArrayLike) -> F64Array:
    """Signed distance in pixels of each point from the infinite line through ``a`` → ``b``.

    ``points`` is ``(n, 2)`` (or one ``(2,)`` point); returns ``(n,)``. **Positive on the right**
    of the direction a→b *as seen on screen* (image coordinates, y down), negative on the left,
    zero on the line. In y-down coordinates the usual "cross > 0 is left" of y-up maths flips::

              left  (< 0)
        a ●━━━━━━━━━━━━━━━━▶● b
              right (> 0)
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    pa = np.asarray(a, dtype=np.float64)
    pb = np.asarray(b, dtype=np.float64)
    length = float(np.hypot(*(pb - pa)))
    if length == 0.0:
        raise ValueError("side_of needs a line with two different points")
    return _cross(pa, pb, pts) / length


def _on_segment(p: F64Array, q: F64Array, r: F64Array) -> BoolArray:
    """For r collinear with p–q: is r within the closed segment's bounding box?"""
    lo, hi = np.minimum(p, q), np.maximum(p, q)
    return np.asarray(np.all((r >= lo) & (r <= hi), axis=-1), dtype=np.bool_)


def crossing_direction(
    starts: npt.ArrayLike, ends: npt.ArrayLike, a: npt.ArrayLike, b: npt.ArrayLike
) -> Int8Array:
    """How each movement ``starts[i] → ends[i]`` passes the closed segment a–b.

    Returns ``(n,)`` int8: ``+1`` when the movement meets the segment while moving towards its
    right side (`side_of` increasing: side A → side B of a rule line), ``-1`` when moving towards
    its left, ``0`` when it does not meet the segment. Rules, chosen so counting is exact:

    * passing exactly through an endpoint of a–b counts (the segment is closed);
    * passing just beyond an endpoint, across the line's infinite extension, does not;
    * a movement that starts or ends exactly on the segment counts (the next movement, leaving
      the line, counts again in its own direction; line rules settle that with hysteresis);
    * movement along the line (collinear) and zero-length movement do not count: they do not
      go from one side to the other.
    """
    s = np.asarray(starts, dtype=np.float64).reshape(-1, 2)
    e = np.asarray(ends, dtype=np.float64).reshape(-1, 2)
    pa = np.asarray(a, dtype=np.float64)
    pb = np.asarray(b, dtype=np.float64)
    ds, de = _cross(pa, pb, s), _cross(pa, pb, e)
    # The movement reaches the infinite line through a–b (endpoints on it included) ...
    meets_line = ((ds <= 0) & (de >= 0)) | ((ds >= 0) & (de <= 0))
    # ... at a point between a and b: a and b are not strictly on one side of the movement.
    oa, ob = _cross(s, e, np.broadcast_to(pa, s.shape)), _cross(s, e, np.broadcast_to(pb, s.shape))
    within = ~(((oa > 0) & (ob > 0)) | ((oa < 0) & (ob < 0)))
    # ds == de: parallel or collinear or zero-length; no side change, so no crossing.
    moving = ds != de
    direction = np.sign(de - ds).astype(np.int8)
    return np.where(meets_line & within & moving, direction, np.int8(0)).astype(np.int8)


def polygon_area(polygon: npt.ArrayLike) -> float:
    """Absolute area (pixels²) of a simple polygon ``(m, 2)`` (shoelace formula)."""
    p = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    x, y = p[:, 0], p[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2.0)


def points_in_polygon(points: npt.ArrayLike, polygon: npt.ArrayLike) -> BoolArray:
    """Which of ``points`` ``(n, 2)`` lie inside ``polygon`` ``(m, 2)``; returns ``(n,)`` bool.

    Points exactly **on an edge or a vertex count as inside**: a zone drawn along a doorway
    should catch a foot standing on its border, and the decision must not flip with the order
    the vertices were drawn in. Interior is the even-odd rule (what a self-intersecting polygon
    means is then defined, if rarely useful). Vectorised as one ``(n, m)`` pass.
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    poly = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    if pts.shape[0] == 0:
        return np.zeros(0, dtype=np.bool_)
    vi = poly[None, :, :]
    vj = np.roll(poly, -1, axis=0)[None, :, :]
    p = pts[:, None, :]
    on_edge = (_cross(vi, vj, p) == 0) & _on_segment(vi, vj, p)
    yi, yj = vi[..., 1], vj[..., 1]
    px, py = p[..., 0], p[..., 1]
    straddles = (yi > py) != (yj > py)
    # Only evaluated where the edge straddles the ray, so yj != yi there.
    with np.errstate(divide="ignore", invalid="ignore"):
        x_at = vi[..., 0] + (py - yi) * (vj[..., 0] - vi[..., 0]) / (yj - yi)
    hits = straddles & (px < x_at)
    inside = (np.count_nonzero(hits, axis=1) % 2) == 1
    return np.asarray(inside | on_edge.any(axis=1), dtype=np.bool_)
