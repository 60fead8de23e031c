"""Face search in video by regions: the whole frame now and then, in between only where a face
can be.

On a fixed camera a face that was not in the last frame can only come with movement, so
between full passes (every ``full_every`` frames, and on the first) the detector looks only
at: the regions that changed since the previous frame (frame difference at a quarter of the
size), the faces found in the previous frame (grown, so a face that moves a little stays
inside), and ``hints`` (boxes where people are known to be, e.g. an event's box). When those
regions cover more than ``max_area`` of the frame, the whole frame is searched (cheaper than
many crops, never less thorough).

This is what makes rendering a clip faster than real time on two cores: a full CenterFace pass
per frame costs several times a frame interval; crops around the people cost a fraction.
What it gives up: a face that appears without any movement between two full passes (a
still person turning round without moving) is found at the next full pass, at most
``full_every - 1`` frames late; the Redactor's hold covers misses of a few frames either way.
"""

from __future__ import annotations

import math
import time

import cv2
import numpy as np

from vigil.privacy.faces import FaceDetector, empty_faces
from vigil.types import FloatArray, ImageArray

_SHRINK = 4  # motion is measured at 1/4 of each side: 1/16 of the pixels
_MIN_CROP = 64  # crops smaller than this on a side are grown (the network needs context)

_Rect = tuple[int, int, int, int]  # x1, y1, x2, y2 in pixels


class RegionFaceDetector:
    """A ``FaceDetector`` for the frames of one video, in order (it keeps the last frame).

    ``inner``: the real detector. ``full_every``: frames between full passes (1: every
    frame is searched whole, as without this class). ``full_every_s``: seconds between full
    passes as well (0: frames only), for frames that come at no fixed rate (live video's
    detector takes the newest frame when it is free). ``hints``: ``(n, 4)`` xyxy pixel boxes
    always searched. ``motion_threshold``: grey-level change (0-255) that counts as movement.
    ``pad``: pixels added around every region. ``max_area``: fraction of the frame above
    which the whole frame is searched.
    """

    def __init__(
        self, inner: FaceDetector, *, full_every: int, full_every_s: float = 0.0,
        hints: FloatArray | None = None, motion_threshold: int = 16, pad: int = 24,
        max_area: float = 0.6,
    ) -> None:  # fmt: skip
        self.inner = inner
        self.full_every = max(1, int(full_every))
        self.full_every_s = full_every_s
        self._full_at = -math.inf
        self.hints = empty_faces()[:, :4] if hints is None else np.asarray(hints, np.float32)
        self.motion_threshold = motion_threshold
        self.pad = pad
        self.max_area = max_area
        self.frames = 0
        self.full_passes = 0
        self.searched_area = 0.0  # sum over frames of the fraction of the frame searched
        self._previous: np.ndarray | None = None
        self._faces = empty_faces()[:, :4]

    def reset(self) -> None:
        """A cut: the next frame is searched whole."""
        self._previous = None
        self._faces = empty_faces()[:, :4]

    def detect(self, image: ImageArray) -> FloatArray:
        h, w = image.shape[:2]
        small = _grey_small(image)
        regions = None
        now = time.monotonic()
        if (
            self._previous is not None
            and self._previous.shape == small.shape
            and (self.frames % self.full_every)
            and (self.full_every_s <= 0 or now - self._full_at < self.full_every_s)
        ):
            regions = self._regions(small, (w, h))
        self._previous = small
        self.frames += 1
        if regions is None:
            self._full_at = now
            self.full_passes += 1
            self.searched_area += 1.0
            found = self.inner.detect(image)
        else:
            found = self._in_regions(image, regions)
        self._faces = np.asarray(found[:, :4], np.float32)
        return found

    def _regions(self, small: np.ndarray, size: tuple[int, int]) -> list[_Rect] | None:
        """Pixel rectangles to search, or None for the whole frame."""
        assert self._previous is not None
        changed = cv2.absdiff(small, self._previous) > self.motion_threshold
        mask = cv2.dilate(changed.astype(np.uint8), np.ones((3, 3), np.uint8))
        count, _, stats, _ = cv2.connectedComponentsWithStats(mask)
        boxes = [
            (x * _SHRINK, y * _SHRINK, (x + bw) * _SHRINK, (y + bh) * _SHRINK)
            for x, y, bw, bh, _ in stats[1:count]
        ]
        for x1, y1, x2, y2 in np.concatenate([self._faces, self.hints]):
            grow_x, grow_y = (x2 - x1) * 0.5, (y2 - y1) * 0.5  # a face moving between frames
            boxes.append((int(x1 - grow_x), int(y1 - grow_y), int(x2 + grow_x), int(y2 + grow_y)))
        rects = _merge([_padded(b, self.pad, size) for b in boxes])
        area = sum((x2 - x1) * (y2 - y1) for x1, y1, x2, y2 in rects) / (size[0] * size[1])
        if area > self.max_area:
            return None
        self.searched_area += area
        return rects

    def _in_regions(self, image: ImageArray, rects: list[_Rect]) -> FloatArray:
        found = [empty_faces()]
        for x1, y1, x2, y2 in rects:
            boxes = np.array(self.inner.detect(np.ascontiguousarray(image[y1:y2, x1:x2])),
                             np.float32)  # fmt: skip
            boxes[:, [0, 2]] += x1
            boxes[:, [1, 3]] += y1
            found.append(boxes)
        return np.concatenate(found)


def _grey_small(image: ImageArray) -> np.ndarray:
    h, w = image.shape[:2]
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    small = cv2.resize(grey, (max(1, w // _SHRINK), max(1, h // _SHRINK)),
                       interpolation=cv2.INTER_AREA)  # fmt: skip
    return np.asarray(cv2.GaussianBlur(small, (3, 3), 0), np.uint8)


def _padded(box: _Rect, pad: int, size: tuple[int, int]) -> _Rect:
    x1, y1, x2, y2 = box[0] - pad, box[1] - pad, box[2] + pad, box[3] + pad
    if x2 - x1 < _MIN_CROP:
        x1, x2 = x1 - (_MIN_CROP - (x2 - x1)) // 2, x1 + _MIN_CROP
    if y2 - y1 < _MIN_CROP:
        y1, y2 = y1 - (_MIN_CROP - (y2 - y1)) // 2, y1 + _MIN_CROP
    w, h = size
    return max(0, x1), max(0, y1), min(w, x2), min(h, y2)


def _merge(rects: list[_Rect]) -> list[_Rect]:
    """Overlapping rectangles joined into their bounding boxes until none overlap (a face on
    the border of two regions is then whole in one crop)."""
    rects = [r for r in rects if r[2] > r[0] and r[3] > r[1]]
    merged = True
    while merged:
        merged = False
        out: list[_Rect] = []
        for r in rects:
            for i, o in enumerate(out):
                if r[0] < o[2] and o[0] < r[2] and r[1] < o[3] and o[1] < r[3]:
                    out[i] = (min(r[0], o[0]), min(r[1], o[1]), max(r[2], o[2]), max(r[3], o[3]))
                    merged = True
                    break
            else:
                out.append(r)
        rects = out
    return rects
