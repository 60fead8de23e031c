"""``StaticRuntime``: an in-memory ``RuntimeView`` for serving recordings without cameras.

The contract between the API and the camera runtime (``RuntimeView``, ``CameraStatus``,
``TrackSnapshot``) lives in ``vigil.runtime.view`` so that camera workers need not import the
web app; it is re-exported here for the API's modules. ``StaticRuntime`` serves recordings
without cameras and tests: set statuses, frames, rules, tracks and counts, and ``publish``
events to subscribers.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Mapping
from typing import Any

from vigil.errors import VigilError
from vigil.runtime.view import (
    CameraStatus,
    CopyFeeds,
    Lines,
    PacketTaps,
    RuntimeView,
    TrackBox,
    TrackSnapshot,
    Zones,
)
from vigil.types import ImageArray

__all__ = [
    "CameraStatus",
    "CopyFeeds",
    "Lines",
    "PacketTaps",
    "RuntimeView",
    "StaticRuntime",
    "TrackBox",
    "TrackSnapshot",
    "Zones",
]


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
        self._switches: dict[str, dict[str, bool]] = {}
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

    def switches(self, camera: str) -> dict[str, bool]:
        if camera not in self._statuses:
            raise KeyError(camera)
        return {"detection": True, **self._switches.get(camera, {})}

    def set_switch(self, camera: str, switch: str, on: bool) -> None:
        if switch not in self.switches(camera):
            raise VigilError(f"camera {camera!r} has no {switch!r} switch")
        self._switches.setdefault(camera, {})[switch] = bool(on)

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
