"""A synthetic camera: a textured static scene with objects moving along straight paths.

It exists so that Vigil can be tried, tested and benchmarked without footage or a model: the
ground truth of every frame is known exactly. The background carries mild sensor noise (what
the motion gate must learn to ignore); objects are filled rectangles with a little texture.

Everything is deterministic for a given ``seed``: the same source renders the same pixels.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import cv2
import numpy as np
import numpy.typing as npt

from vigil import clock
from vigil.ingest.base import SourceInfo
from vigil.types import Frame, ImageArray

#: A box in frame pixels: ``(x1, y1, x2, y2)``.
Box = tuple[float, float, float, float]

#: Distinct sensor-noise frames rendered at start; frames pick one pseudo-randomly.
_GRAIN_BANK = 8

#: The line the default scene's objects cross, as normalized ``y``.
DEFAULT_LINE_Y = 0.5
#: How often the default scene's objects cross ``y = DEFAULT_LINE_Y`` going down (y grows).
DEFAULT_DOWN_CROSSINGS = 3
#: How often they cross it going up.
DEFAULT_UP_CROSSINGS = 2

#: Object colours (BGR), alternately far darker and far brighter than the background (grey
#: levels 90..170), as people in dark or light clothes are.
_PALETTE: tuple[tuple[int, int, int], ...] = (
    (30, 25, 70),
    (230, 240, 250),
    (90, 30, 15),
    (40, 230, 250),
    (70, 20, 60),
)


@dataclass(frozen=True, slots=True)
class SyntheticObject:
    """An object moving in a straight line at constant speed.

    ``start``/``end`` are the normalized ``(x, y)`` positions of the box centre at times
    ``t0``/``t1`` (seconds); the object exists only for ``t0 <= t <= t1``. ``size`` is
    ``(width, height)`` in pixels; ``color`` is BGR.
    """

    start: tuple[float, float]
    end: tuple[float, float]
    t0: float
    t1: float
    size: tuple[int, int]
    label: str = "person"
    color: tuple[int, int, int] | None = None

    def __post_init__(self) -> None:
        if self.t1 <= self.t0:
            raise ValueError(f"an object needs t1 > t0, got t0={self.t0}, t1={self.t1}")
        if self.size[0] <= 0 or self.size[1] <= 0:
            raise ValueError(f"an object needs a positive size, got {self.size}")

    def box(self, t: float, frame_size: tuple[int, int]) -> Box | None:
        """The box at time ``t`` in pixels of a ``(width, height)`` frame, None when absent.

        Not clipped to the frame, so that rendering and ground truth agree on sub-pixel
        positions; see :meth:`SyntheticSource.ground_truth_boxes` for clipped boxes.
        """
        if not self.t0 <= t <= self.t1:
            return None
        a = (t - self.t0) / (self.t1 - self.t0)
        cx = (self.start[0] + a * (self.end[0] - self.start[0])) * frame_size[0]
        cy = (self.start[1] + a * (self.end[1] - self.start[1])) * frame_size[1]
        w, h = self.size
        return cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2


def default_scene(
    duration: float = 20.0, frame_size: tuple[int, int] = (640, 360)
) -> list[SyntheticObject]:
    """Five person-sized objects walking vertically through the frame, one at a time.

    Each walks from ``y = 0.15`` to ``y = 0.85`` (or back) over a fifth of ``duration`` minus
    a pause, at a different ``x``, so they never overlap in time or space. Over the whole
    scene the horizontal line ``y = 0.5`` is crossed **3 times downwards and 2 times upwards**
    (``DEFAULT_DOWN_CROSSINGS``/``DEFAULT_UP_CROSSINGS``), in this order: down, up, down, up,
    down. Times scale with ``duration``, so the counts hold for any duration; at 10 fps keep
    ``duration >= 10`` s so every walk spans enough frames for a tracker to confirm it.
    Sizes are 1/16 of the frame width by 2/9 of its height (40×80 at 640×360).
    """
    w, h = frame_size
    size = (max(4, round(w / 16)), max(8, round(h * 2 / 9)))
    slot = duration / 5.0
    walks = [  # (x, downwards)
        (0.2, True),
        (0.4, False),
        (0.6, True),
        (0.8, False),
        (0.3, True),
    ]
    objects = []
    for i, (x, down) in enumerate(walks):
        y0, y1 = (0.15, 0.85) if down else (0.85, 0.15)
        objects.append(
            SyntheticObject(
                start=(x, y0),
                end=(x, y1),
                t0=i * slot + 0.1 * slot,
                t1=(i + 1) * slot - 0.1 * slot,
                size=size,
                color=_PALETTE[i % len(_PALETTE)],
            )
        )
    return objects


def _background(width: int, height: int, rng: np.random.Generator) -> ImageArray:
    """A static textured scene: smooth shading, a few 'furniture' rectangles, fine grain."""
    coarse = rng.uniform(95, 165, size=(max(2, height // 40), max(2, width // 40), 3))
    image = np.asarray(
        cv2.resize(coarse.astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC),
        dtype=np.float32,
    )
    for _ in range(6):
        x1, y1 = int(rng.integers(0, width - 8)), int(rng.integers(0, height - 8))
        x2 = min(width, x1 + int(rng.integers(width // 20, width // 5)))
        y2 = min(height, y1 + int(rng.integers(height // 20, height // 5)))
        shade = rng.uniform(90, 170, size=3)
        image[y1:y2, x1:x2] = shade
    image = image + np.asarray(rng.normal(0, 6, size=image.shape), dtype=np.float32)
    return np.asarray(np.clip(image, 0, 255), dtype=np.uint8)


class SyntheticSource:
    """A rendered scene as a :class:`~vigil.ingest.base.Source`.

    Frame ``seq`` has ``pts = seq / fps``; there are ``round(duration * fps)`` frames. With
    ``live=True`` frames are paced in real time and carry wall-clock times, like a camera.
    ``objects`` defaults to :func:`default_scene`; ``noise`` is the standard deviation of the
    per-frame sensor noise in grey levels.
    """

    def __init__(
        self,
        camera_id: str = "synthetic",
        *,
        width: int = 640,
        height: int = 360,
        fps: float = 10.0,
        duration: float = 20.0,
        objects: Sequence[SyntheticObject] | None = None,
        seed: int = 0,
        live: bool = False,
        noise: float = 2.0,
    ) -> None:
        if width < 16 or height < 16 or fps <= 0 or duration <= 0:
            raise ValueError(
                "SyntheticSource needs width, height >= 16 and fps, duration > 0, got "
                f"{width}x{height} at {fps} fps for {duration} s"
            )
        self.camera_id = camera_id
        self.width, self.height = width, height
        self.fps, self.duration = fps, duration
        self.objects = (
            list(objects) if objects is not None else default_scene(duration, (width, height))
        )
        self.seed = seed
        self.live = live
        self.noise = noise
        self.frame_count = round(duration * fps)
        rng = np.random.default_rng(seed)
        self._background = _background(width, height, rng)
        self._grain: npt.NDArray[np.int16] | None = None
        if noise > 0:
            grain = rng.normal(0.0, noise, size=(_GRAIN_BANK, height, width, 3))
            self._grain = np.asarray(np.rint(grain), dtype=np.int16)
        self._closed = False

    def open(self) -> SourceInfo:
        query = (
            f"width={self.width}&height={self.height}&fps={self.fps:g}"
            f"&duration={self.duration:g}&seed={self.seed}"
        )
        return SourceInfo(
            url=f"synthetic://?{query}",
            width=self.width,
            height=self.height,
            fps=self.fps,
            frame_count=self.frame_count,
            live=self.live,
        )

    def render(self, seq: int) -> ImageArray:
        """The BGR image of frame ``seq`` (deterministic)."""
        t = seq / self.fps
        image = self._background.copy()
        for obj in self.objects:
            box = obj.box(t, (self.width, self.height))
            if box is None:
                continue
            x1, y1, x2, y2 = (round(v) for v in box)
            color = obj.color or _PALETTE[0]
            cv2.rectangle(image, (x1, y1), (x2 - 1, y2 - 1), color, thickness=-1)
            # A darker band across the middle: objects are not perfectly flat either.
            band = tuple(int(c * 0.7) for c in color)
            mid = (y1 + y2) // 2
            cv2.rectangle(image, (x1, mid - 2), (x2 - 1, mid + 2), band, thickness=-1)
        if self._grain is not None:
            # A pseudo-random pick from a bank: drawing fresh Gaussian noise for every frame
            # would cost more than everything else the source does.
            grain = self._grain[int(np.random.default_rng((self.seed, seq)).integers(_GRAIN_BANK))]
            image = np.asarray(np.clip(image.astype(np.int16) + grain, 0, 255), dtype=np.uint8)
        return image

    def ground_truth_boxes(self, t: float) -> list[tuple[str, Box]]:
        """``(label, xyxy)`` of every object visible at time ``t``, clipped to the frame."""
        result = []
        for obj in self.objects:
            box = obj.box(t, (self.width, self.height))
            if box is None:
                continue
            x1, y1 = max(0.0, box[0]), max(0.0, box[1])
            x2, y2 = min(float(self.width), box[2]), min(float(self.height), box[3])
            if x2 > x1 and y2 > y1:
                result.append((obj.label, (x1, y1, x2, y2)))
        return result

    def frames(self) -> Iterator[Frame]:
        start, paced = clock.now(), time.monotonic()  # paced by the monotonic clock
        for seq in range(self.frame_count):
            if self._closed:
                return
            pts = seq / self.fps
            if self.live:
                delay = paced + pts - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            yield Frame.from_bgr(
                self.render(seq),
                camera_id=self.camera_id,
                seq=seq,
                pts=pts,
                wall_time=clock.now() if self.live else start + pts,
                live=self.live,
            )

    def close(self) -> None:
        self._closed = True

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
