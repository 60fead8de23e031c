"""Static privacy masks: polygons that are always blacked out (a neighbour's window, a street).

Polygons are configured in normalized 0..1 coordinates (so they survive a change of stream
resolution) and compiled once per frame size into pixel polygons that ``cv2.fillPoly`` paints
each frame: the cost is the masked area, not the frame.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt

from vigil.errors import PrivacyError
from vigil.types import ImageArray

NormPolygon = Sequence[tuple[float, float]]


class StaticMasks:
    """Normalized polygons compiled for one ``frame_size=(width, height)``."""

    def __init__(self, polygons: Sequence[NormPolygon], frame_size: tuple[int, int]) -> None:
        w, h = frame_size
        self.frame_size = frame_size
        self._polys: list[npt.NDArray[np.int32]] = []
        for i, poly in enumerate(polygons):
            pts = np.asarray(poly, np.float64).reshape(-1, 2)
            if len(pts) < 3 or np.any(pts < 0) or np.any(pts > 1):
                raise PrivacyError(
                    f"privacy mask {i} must have at least 3 points with coordinates in 0..1 "
                    f"(fractions of the frame), got {pts.tolist()}"
                )
            # Map 0..1 onto pixel edges: 1.0 is the far edge of the last pixel column/row.
            px = np.round(pts * [w, h]).astype(np.int32)
            self._polys.append(px)

    def __len__(self) -> int:
        return len(self._polys)

    def apply(self, image: ImageArray) -> None:
        """Black out every polygon of ``image`` (H×W×3 uint8, of ``frame_size``) in place."""
        if self._polys:
            cv2.fillPoly(image, self._polys, (0, 0, 0))


def masked(image: ImageArray, polygons: Sequence[NormPolygon]) -> ImageArray:
    """A copy of ``image`` with ``polygons`` blacked out: what audited unredacted output gets,
    since static masks mark what a camera must never show (the input is left as it is)."""
    out = image.copy()
    StaticMasks(polygons, (int(image.shape[1]), int(image.shape[0]))).apply(out)
    return out


#: Cells per side of the grid ``mask_coverage`` measures on (a box's share to ~0.4 %).
COVERAGE_GRID = 256


def mask_coverage(
    polygons: Sequence[NormPolygon], boxes: Sequence[tuple[float, float, float, float]]
) -> list[float]:
    """The fraction (0..1) of each normalised ``(x1, y1, x2, y2)`` box that ``polygons``
    black out, measured on a ``COVERAGE_GRID`` square grid (a box thinner than a cell counts
    the cell it lies in)."""
    if not polygons:
        return [0.0 for _ in boxes]
    grid = np.zeros((COVERAGE_GRID, COVERAGE_GRID, 3), np.uint8)
    grid[:] = 255
    StaticMasks(polygons, (COVERAGE_GRID, COVERAGE_GRID)).apply(grid)
    covered = grid[:, :, 0] == 0
    out = []
    for x1, y1, x2, y2 in boxes:
        c1, r1 = (min(COVERAGE_GRID - 1, int(v * COVERAGE_GRID)) for v in (x1, y1))
        c2, r2 = (max(c + 1, round(v * COVERAGE_GRID)) for c, v in ((c1, x2), (r1, y2)))
        out.append(float(covered[r1:r2, c1:c2].mean()))
    return out


def parse_polygon(text: str) -> list[tuple[float, float]]:
    """``"x1,y1 x2,y2 x3,y3"`` (normalized 0..1) → points, or ``PrivacyError`` naming the form.

    Points are separated by spaces or semicolons, coordinates by a comma.
    """
    points: list[tuple[float, float]] = []
    for chunk in text.replace(";", " ").split():
        try:
            x, y = (float(v) for v in chunk.split(","))
        except ValueError as exc:
            raise PrivacyError(
                f"mask {text!r}: {chunk!r} is not a point; write points as 'x,y' fractions of "
                "the frame separated by spaces, e.g. '0,0 0.3,0 0.3,0.2'"
            ) from exc
        if not (0 <= x <= 1 and 0 <= y <= 1):
            raise PrivacyError(
                f"mask {text!r}: point {chunk!r} is outside 0..1; coordinates are fractions of "
                "the frame's width and height"
            )
        points.append((x, y))
    if len(points) < 3:
        raise PrivacyError(f"mask {text!r} needs at least 3 points, got {len(points)}")
    return points
