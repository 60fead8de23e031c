"""The API's view of the running cameras: the ``RuntimeView`` protocol and ``StaticRuntime``.

The camera supervisor (``vigil/runtime/serve.py``, built separately) implements
``RuntimeView``; the API only reads it and never reaches into the supervisor. Its contract:

* ``cameras()``: one ``CameraStatus`` per configured camera, cheap (no I/O, no locks held
  long), callable from any thread; the API calls it for ``/api/cameras`` and ``/metrics``.
* ``latest_frame(camera)``: the newest decoded frame of the camera's analysis stream as BGR
  ``uint8 (h, w, 3)``, or None when there is none yet or the camera is unknown. The API
  **redacts** it before any pixel leaves; the runtime must not hand out a buffer it will write
  to later (return a copy or an immutable frame).
* ``rules(camera)``: ``(zones, lines)`` currently in force, as the config models of
  ``vigil.config.models`` keyed by rule name; ``KeyError`` for an unknown camera.
* ``update_rules(camera, zones, lines)``: replace the camera's zones and lines at run time
  (already validated by the API with the pydantic models); ``KeyError`` for an unknown camera,
  ``ConfigError`` when the runtime cannot apply them. Takes effect from the next frame.
* ``latest_tracks(camera)``: a ``TrackSnapshot`` of the tracks of the newest *processed* frame
  (boxes normalised to 0..1, so they fit any scaled copy of the frame); an empty snapshot
  (``time`` None) before the first frame or for an unknown camera. Cheap, any thread.
* ``counts(camera)``: the live pipeline's ``RuleEngine.counts()`` (``{"lines": {...},
  "zones": {...}}``), ``{}`` before the first frame; ``KeyError`` for an unknown camera.
* ``subscribe()``: an async iterator of live events as ``vigil.events.sinks.event_to_dict``
  dicts, one iterator per WebSocket client, each seeing every event published after it
  subscribed; it ends when the runtime stops. A slow client may miss events (bounded queue)
  but must never block the pipeline.

``StaticRuntime`` is an in-memory implementation for serving recordings without cameras and
for tests: set statuses, frames, rules, tracks and counts, and ``publish`` events to
subscribers.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from vigil.config.models import LineConfig, ZoneConfig
from vigil.types import Detections, ImageArray

Zones = dict[str, ZoneConfig]
Lines = dict[str, LineConfig]


@dataclass(frozen=True, slots=True)
class CameraStatus:
    """What ``/api/cameras`` and ``/metrics`` show about one camera.

    ``state``: the worker's state in words (``running``, ``connecting``, ``backoff``,
    ``stopped``...). Rates in frames per second; ``last_frame_time`` in UNIX seconds (None
    before the first frame); ``inference_ms`` the mean detector time per frame lately.
    ``recording``: the recorder's state (``recording``, ``reconnecting``, ``failed``...; None
    when the camera is not recorded) and ``recording_error`` why it fails ("recording failed:
    disk full"), independent of ``online``, which is about the analysis stream.
    """

    name: str
    online: bool
    state: str
    decode_fps: float = 0.0
    detect_fps: float = 0.0
    last_frame_time: float | None = None
    skipped_frames: int = 0
    inference_ms: float = 0.0
    queue_depth: int = 0
    recording: str | None = None
    recording_error: str | None = None


@dataclass(frozen=True, slots=True)
class TrackBox:
    """One tracked object: ``box`` is ``(x1, y1, x2, y2)`` normalised to 0..1 of the frame."""

    id: int
    label: str
    score: float
    box: tuple[float, float, float, float]


@dataclass(frozen=True, slots=True)
class TrackSnapshot:
    """The tracks of one processed frame. ``time``: the frame's wall-clock time (UNIX s), None
    when there is no frame yet; ``width``/``height``: the analysed frame's size in pixels."""

    time: float | None = None
    width: int = 0
    height: int = 0
    tracks: tuple[TrackBox, ...] = ()

    @classmethod
    def of(
        cls, tracked: Detections, class_names: Sequence[str], time: float, size: tuple[int, int]
    ) -> TrackSnapshot:
        """From pixel ``Detections`` of a ``size`` = ``(width, height)`` frame."""
        w, h = max(1, size[0]), max(1, size[1])
        scale = np.array([w, h, w, h], np.float64)
        boxes = np.clip(tracked.xyxy.astype(np.float64) / scale, 0.0, 1.0)
        tracks = tuple(
            TrackBox(int(tid), _label(class_names, int(cid)), round(float(conf), 4),
                     (float(b[0]), float(b[1]), float(b[2]), float(b[3])))
            for tid, cid, conf, b in zip(tracked.tracker_id, tracked.class_id,
                                         tracked.confidence, boxes, strict=True)
        )  # fmt: skip
        return cls(time=time, width=size[0], height=size[1], tracks=tracks)


def _label(names: Sequence[str], class_id: int) -> str:
    return names[class_id] if 0 <= class_id < len(names) else str(class_id)


class RuntimeView(Protocol):
    """What the API needs from the camera runtime (see the module docstring)."""

    def cameras(self) -> list[CameraStatus]: ...

    def latest_frame(self, camera: str) -> ImageArray | None: ...

    def rules(self, camera: str) -> tuple[Zones, Lines]: ...

    def update_rules(self, camera: str, zones: Zones, lines: Lines) -> None: ...

    def latest_tracks(self, camera: str) -> TrackSnapshot: ...

    def counts(self, camera: str) -> dict[str, Any]: ...

    def subscribe(self) -> AsyncIterator[dict[str, Any]]: ...


class StaticRuntime:
    """An in-memory ``RuntimeView``: cameras with fixed statuses, frames and rules.

    ``publish(event_dict)`` delivers to every current subscriber (from the event loop's
    thread, or any thread via ``publish_threadsafe``). ``close()`` ends all subscriptions.
    """

    def __init__(
        self,
        statuses: Mapping[str, CameraStatus] | None = None,
        *,
        frames: Mapping[str, ImageArray] | None = None,
        rules: Mapping[str, tuple[Zones, Lines]] | None = None,
        queue_size: int = 100,
    ) -> None:
        self._statuses = dict(statuses or {})
        self._frames = dict(frames or {})
        self._rules = {k: (dict(z), dict(ln)) for k, (z, ln) in (rules or {}).items()}
        self._tracks: dict[str, TrackSnapshot] = {}
        self._counts: dict[str, dict[str, Any]] = {}
        self._queues: list[tuple[asyncio.AbstractEventLoop, asyncio.Queue[dict[str, Any] | None]]]
        self._queues = []
        self._queue_size = queue_size

    def cameras(self) -> list[CameraStatus]:
        return [self._statuses[k] for k in sorted(self._statuses)]

    def set_status(self, status: CameraStatus) -> None:
        self._statuses[status.name] = status

    def latest_frame(self, camera: str) -> ImageArray | None:
        frame = self._frames.get(camera)
        return None if frame is None else frame.copy()

    def set_frame(self, camera: str, frame: ImageArray, *, time: float | None = None) -> None:
        """Set the camera's frame; ``time`` also becomes its status's ``last_frame_time`` (the
        clock by which live viewers notice a new frame)."""
        self._frames[camera] = frame
        status = self._statuses.get(camera)
        if time is not None and status is not None:
            self._statuses[camera] = dataclasses.replace(status, last_frame_time=time)

    def rules(self, camera: str) -> tuple[Zones, Lines]:
        if camera not in self._statuses:
            raise KeyError(camera)
        zones, lines = self._rules.get(camera, ({}, {}))
        return dict(zones), dict(lines)

    def update_rules(self, camera: str, zones: Zones, lines: Lines) -> None:
        if camera not in self._statuses:
            raise KeyError(camera)
        self._rules[camera] = (dict(zones), dict(lines))

    def latest_tracks(self, camera: str) -> TrackSnapshot:
        return self._tracks.get(camera, TrackSnapshot())

    def set_tracks(self, camera: str, tracks: TrackSnapshot) -> None:
        self._tracks[camera] = tracks

    def counts(self, camera: str) -> dict[str, Any]:
        if camera not in self._statuses:
            raise KeyError(camera)
        return dict(self._counts.get(camera, {}))

    def set_counts(self, camera: str, counts: Mapping[str, Any]) -> None:
        self._counts[camera] = dict(counts)

    @property
    def subscribers(self) -> int:
        return len(self._queues)

    async def subscribe(self) -> AsyncIterator[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(self._queue_size)
        entry = (asyncio.get_running_loop(), queue)
        self._queues.append(entry)
        try:
            while (item := await queue.get()) is not None:
                yield item
        finally:
            self._queues.remove(entry)

    def publish(self, event: dict[str, Any] | None) -> None:
        """Deliver to every subscriber, from any thread; a full queue drops the event."""
        for loop, queue in list(self._queues):
            loop.call_soon_threadsafe(_offer, queue, event)

    def close(self) -> None:
        self.publish(None)


def _offer(queue: asyncio.Queue[dict[str, Any] | None], item: dict[str, Any] | None) -> None:
    # A slow client misses events rather than blocking the pipeline.
    with contextlib.suppress(asyncio.QueueFull):
        queue.put_nowait(item)
