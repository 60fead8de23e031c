"""Box arithmetic for the motion stage: merging nearby boxes, choosing detection regions.

Pure functions on ``(n, 4)`` arrays of ``(x1, y1, x2, y2)`` boxes in frame pixels.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

#: A detection region: ``(x1, y1, x2, y2)`` integer frame pixels, end-exclusive.
Region = tuple[int, int, int, int]


def _as_boxes(boxes: npt.ArrayLike) -> npt.NDArray[np.float64]:
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, 4), np.float64)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"boxes must have shape (n, 4), got {arr.shape}")
    return arr


def _near(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64], gap: float) -> bool:
    """Whether two boxes overlap or are at most ``gap`` pixels apart on both axes."""
    dx = max(a[0], b[0]) - min(a[2], b[2])
    dy = max(a[1], b[1]) - min(a[3], b[3])
    return bool(dx <= gap and dy <= gap)


def group_boxes(boxes: npt.ArrayLike, gap: float) -> list[list[int]]:
    """Indices of ``boxes`` grouped so that each group's union is near no other group's.

    Two boxes join when they overlap or their gap is at most ``gap`` pixels on both axes;
    groups are merged until stable, since a grown union can reach a third box. Groups are in
    order of their first member. O(n²) per pass, meant for the tens of boxes of one frame.
    """
    arr = _as_boxes(boxes)
    unions = [arr[i].copy() for i in range(len(arr))]
    members = [[i] for i in range(len(arr))]
    changed = True
    while changed:
        changed = False
        i = 0
        while i < len(unions):
            j = i + 1
            while j < len(unions):
                if _near(unions[i], unions[j], gap):
                    unions[i] = np.concatenate(
                        [
                            np.minimum(unions[i][:2], unions[j][:2]),
                            np.maximum(unions[i][2:], unions[j][2:]),
                        ]
                    )
                    members[i].extend(members.pop(j))
                    unions.pop(j)
                    changed = True
                else:
                    j += 1
            i += 1
    return [sorted(m) for m in members]


def merge_boxes(boxes: npt.ArrayLike, gap: float) -> npt.NDArray[np.float64]:
    """The union box of each group of :func:`group_boxes`, as an ``(m, 4)`` array."""
    arr = _as_boxes(boxes)
    groups = group_boxes(arr, gap)
    if not groups:
        return np.zeros((0, 4), np.float64)
    return np.array(
        [np.concatenate([arr[g, :2].min(axis=0), arr[g, 2:].max(axis=0)]) for g in groups]
    )


def _grow(boxes: npt.NDArray[np.float64], margin: float) -> npt.NDArray[np.float64]:
    """Each box grown on every side by ``margin`` times its own width/height."""
    wh = boxes[:, 2:] - boxes[:, :2]
    return np.concatenate([boxes[:, :2] - margin * wh, boxes[:, 2:] + margin * wh], axis=1)


def _at_least(
    box: npt.NDArray[np.float64], min_side: float, frame_size: tuple[int, int]
) -> npt.NDArray[np.float64]:
    """``box`` widened/heightened around its centre to ``min_side`` (at most the frame's
    size), then shifted (not shrunk) to lie inside the frame."""
    out = box.copy()
    for axis, limit in ((0, frame_size[0]), (1, frame_size[1])):
        lo, hi = out[axis], out[axis + 2]
        side = min(max(hi - lo, min_side), float(limit))
        centre = (lo + hi) / 2.0
        lo = min(max(centre - side / 2.0, 0.0), limit - side)
        out[axis], out[axis + 2] = lo, lo + side
    return out


def detection_regions(
    frame_size: tuple[int, int],
    motion_boxes: npt.ArrayLike,
    track_boxes: npt.ArrayLike,
    *,
    margin: float = 0.25,
    min_side: int = 416,
    merge_gap: int = 16,
    full_frame_fraction: float = 0.5,
) -> list[Region]:
    """Where the detector should look in a frame of ``frame_size = (width, height)``.

    ``motion_boxes`` come from the motion gate, ``track_boxes`` are the tracker's predicted
    boxes of live tracks (so an object that stops moving is still looked at); both ``(n, 4)``
    in frame pixels. Each box grows by ``margin`` of its size on every side, boxes closer
    than ``merge_gap`` pixels merge, every region is made at least ``min_side`` pixels on both
    sides (the detector's input size: a smaller crop would only be upscaled) and shifted
    inside the frame, and regions that then overlap merge again.

    Returns ``[]`` when nothing moves and no track lives (skip the frame), the whole frame
    when the regions cover more than ``full_frame_fraction`` of it (one full-frame inference
    costs less than several crops), else non-overlapping integer regions sorted top-left
    first.
    """
    width, height = frame_size
    boxes = np.concatenate([_as_boxes(motion_boxes), _as_boxes(track_boxes)])
    if len(boxes) == 0:
        return []
    grown = _grow(boxes, margin)
    grown[:, [0, 2]] = np.clip(grown[:, [0, 2]], 0, width)
    grown[:, [1, 3]] = np.clip(grown[:, [1, 3]], 0, height)
    grown = grown[(grown[:, 2] > grown[:, 0]) & (grown[:, 3] > grown[:, 1])]
    if len(grown) == 0:
        return []
    merged = merge_boxes(grown, merge_gap)
    sized = np.array([_at_least(b, min_side, frame_size) for b in merged])
    # Enlarged regions may overlap now; a region bigger than min_side needs no second pass.
    regions = merge_boxes(sized, 0.0)
    covered = float(np.sum((regions[:, 2] - regions[:, 0]) * (regions[:, 3] - regions[:, 1])))
    if covered > full_frame_fraction * width * height:
        return [(0, 0, width, height)]
    result = [
        (
            max(0, math.floor(x1)),
            max(0, math.floor(y1)),
            min(width, math.ceil(x2)),
            min(height, math.ceil(y2)),
        )
        for x1, y1, x2, y2 in regions
    ]
    return sorted(result, key=lambda r: (r[1], r[0]))
