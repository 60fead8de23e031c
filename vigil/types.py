"""The types that cross stage boundaries: numpy and the standard library only.

Coordinate frame: every box and point here is in **frame pixels** of the frame it came from
(x to the right, y down, origin at the top-left corner), unless a docstring says "normalized".
Times are seconds: media time (pts) for files, UNIX time (UTC) for live sources; `Frame.time`
picks the right one so later stages never have to ask.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]
ImageArray = npt.NDArray[np.uint8]

#: Builds the BGR image of a frame, scaled to ``(width, height)`` when a size is given.
BgrLoader = Callable[[tuple[int, int] | None], ImageArray]
#: Builds the luma plane of a frame (full range), reduced to ``(width, height)`` by area
#: averaging when a size is given.
LumaLoader = Callable[[tuple[int, int] | None], ImageArray]
#: Builds the BGR image of one region ``(x1, y1, x2, y2)`` (frame pixels, end-exclusive).
RegionLoader = Callable[[tuple[int, int, int, int]], ImageArray]


class Frame:
    """One decoded video frame.

    The motion gate needs nothing but the luma, and that reduced (:meth:`luma_at`); the full
    luma plane is built on first use from a source's ``luma_loader`` (or given), the BGR image
    on demand (colour conversion of a full frame costs more than decoding it) and cached for
    the full size only, since scaled copies are asked for once, by the detector.
    """

    __slots__ = (
        "_bgr",
        "_loader",
        "_luma",
        "_luma_loader",
        "_region_loader",
        "camera_id",
        "height",
        "live",
        "pts",
        "seq",
        "wall_time",
        "width",
    )

    def __init__(
        self,
        *,
        camera_id: str,
        seq: int,
        pts: float,
        wall_time: float,
        luma: ImageArray | None = None,
        loader: BgrLoader,
        live: bool = False,
        region_loader: RegionLoader | None = None,
        luma_loader: LumaLoader | None = None,
        size: tuple[int, int] | None = None,
    ) -> None:
        if luma is not None:
            if luma.ndim != 2 or luma.dtype != np.uint8:
                raise ValueError(f"luma must be a 2-D uint8 array, got {luma.dtype} {luma.shape}")
            size = (int(luma.shape[1]), int(luma.shape[0]))
        elif luma_loader is None or size is None:
            raise ValueError("a Frame needs its luma, or a luma_loader and the frame's size")
        self.camera_id = camera_id
        self.seq = seq
        self.pts = pts
        self.wall_time = wall_time
        self._luma = luma
        self._luma_loader = luma_loader
        self.width, self.height = size
        self.live = live
        self._loader = loader
        self._region_loader = region_loader
        self._bgr: ImageArray | None = None

    @classmethod
    def from_bgr(
        cls,
        image: ImageArray,
        *,
        camera_id: str = "camera",
        seq: int = 0,
        pts: float = 0.0,
        wall_time: float = 0.0,
        live: bool = False,
    ) -> Frame:
        """Wrap an already decoded BGR image (tests, synthetic sources, still images)."""
        import cv2

        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image must be HxWx3 uint8 BGR, got {image.dtype} {image.shape}")
        luma = np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), dtype=np.uint8)

        def load(size: tuple[int, int] | None) -> ImageArray:
            if size is None or size == (image.shape[1], image.shape[0]):
                return image
            return np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), np.uint8)

        frame = cls(
            camera_id=camera_id,
            seq=seq,
            pts=pts,
            wall_time=wall_time,
            luma=luma,
            loader=load,
            live=live,
        )
        frame._bgr = image
        return frame

    @property
    def luma(self) -> ImageArray:
        """The luma plane, ``(height, width)`` uint8, full range (built on first use)."""
        if self._luma is None:
            assert self._luma_loader is not None
            self._luma = self._luma_loader(None)
        return self._luma

    @luma.setter
    def luma(self, value: ImageArray) -> None:
        self._luma = value

    def luma_at(self, size: tuple[int, int]) -> ImageArray:
        """The luma reduced to ``size = (w, h)`` by area averaging (the motion gate's input).

        A source's ``luma_loader`` reduces the decoded plane directly, without the full-size
        copy (at 1080p that copy is a fifth of the decoding's cost); always through it when
        there is one, so the result does not depend on whether :attr:`luma` was read first.
        """
        if size == self.size:
            return self.luma
        if self._luma_loader is not None:
            return self._luma_loader(size)
        import cv2

        return np.asarray(cv2.resize(self.luma, size, interpolation=cv2.INTER_AREA), np.uint8)

    @property
    def time(self) -> float:
        """Event time base: UTC seconds for live sources, media seconds for files."""
        return self.wall_time if self.live else self.pts

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` in pixels."""
        return self.width, self.height

    def bgr(self, size: tuple[int, int] | None = None) -> ImageArray:
        """The frame as BGR uint8, at full size (cached) or scaled to ``size=(w, h)``."""
        if size is not None and size != (self.width, self.height):
            return self._loader(size)
        if self._bgr is None:
            self._bgr = self._loader(None)
        return self._bgr

    def bgr_region(self, region: tuple[int, int, int, int]) -> ImageArray:
        """BGR uint8 of ``region = (x1, y1, x2, y2)`` (frame pixels, end-exclusive), a copy.

        Converting only the region costs its share of a full-frame conversion (a 416-pixel
        crop of a 1080p frame: 8 %); a source that cannot do that gets the full frame's slice.
        """
        x1, y1, x2, y2 = region
        if not (0 <= x1 < x2 <= self.width and 0 <= y1 < y2 <= self.height):
            raise ValueError(f"region {region} is empty or outside the {self.size} frame")
        if self._bgr is None and self._region_loader is not None:
            return self._region_loader(region)
        return np.ascontiguousarray(self.bgr()[y1:y2, x1:x2])


def _as_float32_2d(value: Any, cols: int, name: str) -> FloatArray:
    arr = np.asarray(value, dtype=np.float32)
    if arr.size == 0:
        return np.zeros((0, cols), dtype=np.float32)
    if arr.ndim != 2 or arr.shape[1] != cols:
        raise ValueError(f"{name} must have shape (n, {cols}), got {arr.shape}")
    return np.ascontiguousarray(arr)


@dataclass(slots=True)
class Detections:
    """Columnar detections of one frame; rows are objects.

    ``xyxy`` (n, 4) float32 frame pixels; ``confidence`` (n,) float32 in 0..1; ``class_id`` (n,)
    int64 (index into the detector's class names); ``tracker_id`` (n,) int64, -1 until a tracker
    assigned one. Index with a boolean mask or an index array to select rows.
    """

    xyxy: FloatArray
    confidence: FloatArray = field(default_factory=lambda: np.zeros(0, np.float32))
    class_id: IntArray = field(default_factory=lambda: np.zeros(0, np.int64))
    tracker_id: IntArray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __post_init__(self) -> None:
        self.xyxy = _as_float32_2d(self.xyxy, 4, "xyxy")
        n = self.xyxy.shape[0]
        self.confidence = self._column(self.confidence, n, np.float32, 1.0, "confidence")
        self.class_id = self._column(self.class_id, n, np.int64, 0, "class_id")
        self.tracker_id = self._column(self.tracker_id, n, np.int64, -1, "tracker_id")

    @staticmethod
    def _column(value: Any, n: int, dtype: Any, default: float, name: str) -> Any:
        arr = np.asarray(value, dtype=dtype).reshape(-1)
        if arr.size == 0 and n > 0:
            return np.full(n, default, dtype=dtype)
        if arr.shape[0] != n:
            raise ValueError(f"{name} has {arr.shape[0]} rows but xyxy has {n}")
        return arr

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32))

    @classmethod
    def merge(cls, parts: Sequence[Detections]) -> Detections:
        """Concatenate the rows of several ``Detections``."""
        if not parts:
            return cls.empty()
        return cls(
            np.concatenate([p.xyxy for p in parts]),
            np.concatenate([p.confidence for p in parts]),
            np.concatenate([p.class_id for p in parts]),
            np.concatenate([p.tracker_id for p in parts]),
        )

    def __len__(self) -> int:
        return int(self.xyxy.shape[0])

    def __getitem__(self, index: Any) -> Detections:
        if isinstance(index, int | np.integer):
            index = [int(index)]
        return Detections(
            self.xyxy[index], self.confidence[index], self.class_id[index], self.tracker_id[index]
        )

    @property
    def area(self) -> FloatArray:
        wh = np.clip(self.xyxy[:, 2:] - self.xyxy[:, :2], 0.0, None)
        return np.asarray(wh[:, 0] * wh[:, 1], dtype=np.float32)

    def anchors(self, anchor: Anchor) -> FloatArray:
        """(n, 2) points of each box at ``anchor`` (bottom centre is where feet touch ground)."""
        x1, y1, x2, y2 = self.xyxy.T
        cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
        xs = {"left": x1, "center": cx, "right": x2}
        ys = {"top": y1, "center": cy, "bottom": y2}
        vert, horiz = anchor.value.split("_") if "_" in anchor.value else ("center", "center")
        return np.stack([xs[horiz], ys[vert]], axis=1).astype(np.float32)


def label_of(class_names: Sequence[str], class_id: int) -> str:
    """The class name of ``class_id``, or ``class_<id>`` when the detector gave no name."""
    if 0 <= class_id < len(class_names):
        return class_names[class_id]
    return f"class_{class_id}"


class Anchor(enum.StrEnum):
    """The point of a box that stands for the object in zone and line rules."""

    BOTTOM_CENTER = "bottom_center"
    CENTER = "center"
    TOP_CENTER = "top_center"
    BOTTOM_LEFT = "bottom_left"
    BOTTOM_RIGHT = "bottom_right"


class RuleEventKind(enum.StrEnum):
    ENTER = "enter"
    EXIT = "exit"
    DWELL = "dwell"
    LOITER = "loiter"
    CROSS = "cross"
    #: A track's smoothed ground speed in a calibrated zone went over its ``speed_limit``.
    SPEEDING = "speeding"
    #: A track moved against a one-way zone's allowed direction (see ``ZoneDirection``).
    WRONG_WAY = "wrong_way"
    #: A track stood still inside a zone for its ``stopped`` seconds.
    STOPPED = "stopped"


class Direction(enum.StrEnum):
    """Which way an object crossed a line: from side A to side B or back (see rules.line)."""

    A_TO_B = "a_to_b"
    B_TO_A = "b_to_a"


@dataclass(frozen=True, slots=True)
class RuleEvent:
    """What one rule saw one track do at one instant."""

    rule_id: str
    kind: RuleEventKind
    camera_id: str
    track_id: int
    class_id: int
    label: str
    time: float
    point: tuple[float, float]
    direction: Direction | None = None
    duration: float | None = None
    #: Measurements of the track in this rule, as ``(name, value)`` pairs, e.g.
    #: ``("speed_kmh", 52.1)``, ``("heading", 87.0)`` (a tuple, so the event stays hashable).
    measures: tuple[tuple[str, float], ...] = ()


class EventState(enum.StrEnum):
    START = "start"
    UPDATE = "update"
    END = "end"


@dataclass(slots=True)
class Snapshot:
    """The best view of an event's object: the frame it came from and the box in it."""

    seq: int
    time: float
    box: tuple[float, float, float, float]
    score: float
    image: ImageArray | None = None
    #: ``(width, height)`` of the frame ``box`` is in (pixels), so that it can be normalised.
    frame_size: tuple[int, int] | None = None


@dataclass(slots=True)
class Event:
    """The lifecycle record users see: one object doing something, from start to end.

    ``start``/``end`` are in the camera's time base (media seconds for files, UTC seconds for
    live sources, ``live`` tells which); ``end`` is None while the event is open.
    """

    id: str
    camera_id: str
    label: str
    class_id: int
    track_id: int
    start: float
    end: float | None
    state: EventState
    live: bool = False
    zones: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    top_score: float = 0.0
    snapshot: Snapshot | None = None
    #: The zones the object is in as of this change (``zones``: every zone it entered).
    zones_now: list[str] = field(default_factory=list)
    #: Whether the camera records while the event happens, so that a clip of it exists.
    has_clip: bool = False
    #: The latest measurements rule hits carried, as ``"<rule>:<name>"`` → value
    #: (``"road:speed_kmh"``, ``"road:heading"``); see `RuleEvent.measures`.
    measures: dict[str, float] = field(default_factory=dict)

    @property
    def duration(self) -> float | None:
        return None if self.end is None else self.end - self.start
