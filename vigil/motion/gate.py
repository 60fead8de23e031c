"""The motion gate: is anything moving, and where?

Most camera frames show nothing new; the detector is the expensive stage, so frames without
motion skip it and frames with motion send it only the busy regions. The gate works on the
luma plane reduced to ``config.width`` pixels: a blurred frame is compared with a running
average of past frames (the background), pixels differing by ``config.threshold`` grey levels
count as changed, and their dilated blobs become motion boxes.

Background learning is selective: still pixels follow the scene at ``config.alpha`` per frame,
pixels under motion at the much slower ``config.moving_alpha``, so a walking person leaves no
ghost trail in the background. The price is named openly: an object that stops (a parked car,
a person standing at a counter) is absorbed only slowly, in about half a minute at 5 fps, and
when it leaves, its "ghost" in the background reads as motion for a similar time. Differencing
cannot tell the two apart; that is why live tracks keep their detection regions (see
:func:`~vigil.motion.regions.detection_regions`) instead of relying on motion alone.
A global change (lights switched, the camera's IR mode) would make everything
"move"; when the changed fraction exceeds ``config.recalibrate`` the background is reset to
the current frame instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
import numpy.typing as npt

from vigil.config.models import MotionConfig
from vigil.motion.regions import Region, detection_regions
from vigil.types import FloatArray, Frame, ImageArray

__all__ = ["MotionGate", "MotionResult", "Region", "detection_regions"]


def _empty_boxes() -> FloatArray:
    return np.zeros((0, 4), np.float32)


def _empty_fill() -> FloatArray:
    return np.zeros(0, np.float32)


@dataclass(frozen=True, slots=True)
class MotionResult:
    """What the gate saw in one frame.

    ``boxes`` (n, 4) float32: motion blobs in **full-frame pixels** ``(x1, y1, x2, y2)``.
    ``fill`` (n,) float32: fraction of each box's pixels that changed (0..1), what a
    model-free detector turns into a confidence. ``changed_fraction``: changed pixels over
    watched (unmasked) pixels of the frame. ``recalibrated``: the background was reset on
    this frame (no boxes then). ``frame_size``: ``(width, height)`` of the frame.
    """

    boxes: FloatArray = field(default_factory=_empty_boxes)
    changed_fraction: float = 0.0
    recalibrated: bool = False
    fill: FloatArray = field(default_factory=_empty_fill)
    frame_size: tuple[int, int] = (0, 0)

    @property
    def has_motion(self) -> bool:
        return len(self.boxes) > 0


def rasterise_masks(
    masks: list[list[tuple[float, float]]], size: tuple[int, int]
) -> ImageArray | None:
    """A ``(h, w)`` uint8 image: 255 where motion counts, 0 inside any mask polygon.

    Polygons are normalized ``(x, y)`` points; None when there are no masks.
    """
    if not masks:
        return None
    width, height = size
    watched = np.full((height, width), 255, np.uint8)
    scale = np.array([width, height], np.float64)
    polygons = [np.rint(np.asarray(p, np.float64) * scale).astype(np.int32) for p in masks]
    cv2.fillPoly(watched, polygons, 0)
    return watched


class MotionGate:
    """Finds moving regions in consecutive frames of one camera (stateful; one per camera).

    ``frame_size`` is ``(width, height)`` of the frames to come; a frame of another size
    (the camera changed resolution) restarts the gate, and that frame reports
    ``recalibrated=True``. The first frame initialises the background and reports no motion.
    """

    def __init__(self, config: MotionConfig, frame_size: tuple[int, int]) -> None:
        self.config = config
        self._setup(frame_size)

    def _setup(self, frame_size: tuple[int, int]) -> None:
        width, height = frame_size
        if width <= 0 or height <= 0:
            raise ValueError(f"frame_size must be positive (width, height), got {frame_size}")
        small_w = min(self.config.width, width)
        small_h = max(1, round(height * small_w / width))
        self.frame_size = (width, height)
        self.small_size = (small_w, small_h)
        self._scale = np.array(
            [width / small_w, height / small_h, width / small_w, height / small_h], np.float32
        )
        self._watched = rasterise_masks([list(p) for p in self.config.masks], self.small_size)
        watched = small_w * small_h
        if self._watched is not None:
            watched = int(cv2.countNonZero(self._watched))
        self._watched_pixels = max(1, watched)
        self._min_blob = self.config.min_area * small_w * small_h
        # Blur over ~1.5 % of the width: smooths sensor noise and compression blocks.
        k = max(3, (small_w // 64) | 1)
        self._blur = (k, k)
        self._kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
        self._background: npt.NDArray[np.float32] | None = None

    def reset(self) -> None:
        """Forget the background; the next frame initialises it."""
        self._background = None

    def update(self, frame: Frame) -> MotionResult:
        """Compare ``frame`` with the background, learn from it, and report the motion."""
        if frame.size != self.frame_size:
            self._setup(frame.size)
            self._background = self._prepare(frame).astype(np.float32)
            return MotionResult(recalibrated=True, frame_size=self.frame_size)
        current = self._prepare(frame)
        if self._background is None:
            self._background = current.astype(np.float32)
            return MotionResult(frame_size=self.frame_size)
        changed = self._changed(current, self._background)
        fraction = cv2.countNonZero(changed) / self._watched_pixels
        if fraction > self.config.recalibrate:
            self._background = current.astype(np.float32)
            return MotionResult(
                changed_fraction=fraction, recalibrated=True, frame_size=self.frame_size
            )
        blobs = np.asarray(cv2.dilate(changed, self._kernel, iterations=2), dtype=np.uint8)
        boxes, fill = self._boxes(changed, blobs)
        self._learn(current, blobs)
        return MotionResult(boxes, fraction, False, fill, self.frame_size)

    def _prepare(self, frame: Frame) -> ImageArray:
        """The frame's luma reduced to the working size (area averaging), then blurred."""
        small = frame.luma_at(self.small_size)
        return np.asarray(cv2.GaussianBlur(small, self._blur, 0), dtype=np.uint8)

    def _changed(self, current: ImageArray, background: npt.NDArray[np.float32]) -> ImageArray:
        """255 where ``current`` differs from the background by >= threshold, 0 elsewhere."""
        diff = cv2.absdiff(current, cv2.convertScaleAbs(background))
        _, changed = cv2.threshold(diff, self.config.threshold - 1, 255, cv2.THRESH_BINARY)
        if self._watched is not None:
            changed = cv2.bitwise_and(changed, self._watched)
        return np.asarray(changed, dtype=np.uint8)

    def _boxes(self, changed: ImageArray, blobs: ImageArray) -> tuple[FloatArray, FloatArray]:
        """Bounding boxes (full-frame pixels) and fill of blobs with enough changed pixels."""
        contours, _ = cv2.findContours(blobs, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        boxes: list[tuple[int, int, int, int]] = []
        fills: list[float] = []
        for contour in contours:
            x, y, w, h = cv2.boundingRect(contour)
            inside = changed[y : y + h, x : x + w]
            moved = cv2.countNonZero(inside)
            if moved < max(1.0, self._min_blob):
                continue
            # Dilation only joins fragments; the box hugs the changed pixels themselves.
            dx, dy, w, h = cv2.boundingRect(inside)
            x, y = x + dx, y + dy
            boxes.append((x, y, x + w, y + h))
            fills.append(moved / float(w * h))
        if not boxes:
            return _empty_boxes(), _empty_fill()
        full = np.asarray(boxes, np.float32) * self._scale
        return full.astype(np.float32), np.asarray(fills, np.float32)

    def _learn(self, current: ImageArray, blobs: ImageArray) -> None:
        """Blend ``current`` into the background: fast where still, slow under motion."""
        background = self._background
        if background is None:
            return
        still = cv2.bitwise_not(blobs)
        cv2.accumulateWeighted(current, background, self.config.alpha, mask=still)
        if self.config.moving_alpha > 0:
            cv2.accumulateWeighted(current, background, self.config.moving_alpha, mask=blobs)
