"""What changed since the frame the hidden boxes were decided on: hidden too, until the next
decision.

Live video shows frames at the camera's rate, but the boxes it hides come from detections
made less often (the analysed frames of a ``detect.fps`` below the decode rate; the live face
and person detectors at most 5 Hz). A person who enters between two decisions is in no box
yet. The boxes of a decision are right for the frame they were decided on; in a later frame
only what *changed* since that frame can be new. So each output frame is compared with a
thumbnail of the decided frame (``Decided``): every changed region not covered by a box
being hidden (nor by ``Decided.known``: objects the decision looked at) is hidden as well.
The next decision then says what it was.

Thumbnails are in colour, ``THUMB_WIDTH`` pixels wide and blurred (sensor noise and
compression blocks do not count as change); a pixel changed when one of its colours differs
by ``THRESHOLD`` levels (a grey jumper in front of a floor of the same brightness changes
the colour more than the brightness).
The cost is one small resize, blur and difference per frame (``bench/changes.py``).
A thumbnail of another size than the frame's (the camera changed resolution) cannot be
compared: the whole frame counts as changed (fail closed) until the next decision.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
import numpy.typing as npt

from vigil.types import FloatArray, ImageArray

#: Width of the compared thumbnails (a 640 px frame: 5 px per thumbnail pixel; a person
#: entering spans dozens of them, a face of 20 px four).
THUMB_WIDTH = 128
#: Levels (0-255, after the blur) one colour of a thumbnail pixel must change by to count.
THRESHOLD = 18
#: Changed thumbnail pixels a region needs outside the hidden boxes to be hidden: fewer is a
#: sliver of a moving limb or noise (at 640 px, 3 pixels are ~75 frame pixels).
MIN_PIXELS = 3
#: ``Decided.known`` boxes grow by this fraction of their size on each side: a detector's box
#: is tight, and hair and swinging limbs stick out of it.
KNOWN_MARGIN = 0.15


def _empty() -> FloatArray:
    return np.zeros((0, 4), np.float32)


@dataclass(frozen=True, slots=True)
class Decided:
    """The frame the boxes of an output frame were decided on: its ``thumbnail`` and the
    boxes (frame pixels) of objects that decision looked at (``known``: what changes
    inside them is no one new; empty when every such object is among the hidden boxes)."""

    thumb: ImageArray
    known: FloatArray = field(default_factory=_empty)


def thumbnail(image: ImageArray) -> ImageArray:
    """The blurred, ``THUMB_WIDTH``-wide colour thumbnail of a BGR frame that ``changed``
    compares (make both sides with this function, from frames of the same size)."""
    h, w = image.shape[:2]
    size = (min(THUMB_WIDTH, w), max(1, round(h * min(THUMB_WIDTH, w) / w)))
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return np.asarray(cv2.GaussianBlur(small, (5, 5), 0), np.uint8)


def changed(image: ImageArray, decided: Decided, covers: npt.ArrayLike) -> FloatArray:
    """Boxes (``(n, 4)`` frame pixels) around what changed in ``image`` since the decided
    frame and lies outside ``covers`` (the boxes being hidden, frame pixels) and outside
    ``decided.known``. The whole frame when the thumbnails' sizes differ."""
    h, w = image.shape[:2]
    now = thumbnail(image)
    if now.shape != decided.thumb.shape:
        return np.array([[0, 0, w, h]], np.float32)
    # Colour, not grey: a grey jumper in front of a floor of the same brightness is a change.
    moved = np.asarray(cv2.absdiff(now, decided.thumb).max(axis=2) >= THRESHOLD, np.uint8)
    sx, sy = w / now.shape[1], h / now.shape[0]
    known = np.asarray(decided.known, np.float32).reshape(-1, 4)
    grow = np.tile((known[:, 2:] - known[:, :2]) * KNOWN_MARGIN, 2) * [-1, -1, 1, 1]
    for x1, y1, x2, y2 in np.concatenate([np.asarray(covers, np.float32).reshape(-1, 4),
                                          known + grow]):  # fmt: skip
        # Inward rounding: only thumbnail pixels wholly inside a box are cleared.
        a, b = int(np.ceil(x1 / sx)), int(np.ceil(y1 / sy))
        c, d = int(np.floor(x2 / sx)), int(np.floor(y2 / sy))
        if c > a and d > b:
            moved[max(0, b) : max(0, d), max(0, a) : max(0, c)] = 0
    if int(moved.sum()) < MIN_PIXELS:
        return _empty()
    # Dilation joins the fragments of one moving shape into one region.
    joined = cv2.dilate(moved, np.ones((3, 3), np.uint8), iterations=2)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(joined)
    boxes = []
    for i in range(1, count):
        x, y, bw, bh, _ = stats[i]
        if int(moved[labels == i].sum()) < MIN_PIXELS:
            continue
        boxes.append((x * sx, y * sy, (x + bw) * sx, (y + bh) * sy))
    if not boxes:
        return _empty()
    return np.clip(np.array(boxes, np.float32), 0, [w, h, w, h]).astype(np.float32)
