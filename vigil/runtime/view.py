"""What the API sees of the running cameras: ``RuntimeView``, ``CameraStatus``, ``TrackSnapshot``.

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
  (boxes normalised to 0..1, so they fit any scaled copy of the frame) with the detector's
  boxes of that frame (``detections``: people not tracked yet); an empty snapshot
  (``time`` None) before the first frame or for an unknown camera. Cheap, any thread.
* ``counts(camera)``: the live pipeline's ``RuleEngine.counts()`` (``{"lines": {...},
  "zones": {...}}``), ``{}`` before the first frame; ``KeyError`` for an unknown camera.
* optionally (``PacketTaps``) ``packet_tap(camera)``: the camera's recorded video packets,
  for stream-copied unredacted live video; or (``CopyFeeds``) ``copy_feed(camera)``: those
  packets already muxed where the camera is recorded (a cluster node).
* ``subscribe()``: an async iterator of live events as ``vigil.events.sinks.event_to_dict``
  dicts, one iterator per WebSocket client, each seeing every event published after it
  subscribed; it ends when the runtime stops. A slow client may miss events (bounded queue)
  but must never block the pipeline.

These types live in the runtime, not in ``vigil.api``, because camera worker processes build
``CameraStatus`` and ``TrackSnapshot`` too: importing them from the API package would load
FastAPI (and the store) into every worker. ``vigil.api.runtime`` re-exports them and adds
``StaticRuntime``, an in-memory implementation for serving recordings without cameras.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from vigil.config.models import LineConfig, ZoneConfig
from vigil.types import Detections, ImageArray

if TYPE_CHECKING:  # a worker process imports this module: it needs no recording code
    from vigil.record.copyfeed import CopyReader
    from vigil.record.tap import PacketTap

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
    ``node``: the name of the cluster node the camera runs on now (``server.backend: ray``);
    None on a single host.
    ``decode_errors``: corrupt packets skipped or frames decoded with errors (the camera
    goes on). ``segments_unindexed``: finished segments the store did not take (given up after
    ``MAX_REPORT_ATTEMPTS`` tries, in this run or an earlier one) and not indexed since
    (``vigil.record.unindexed``): their files are on disk, unknown to retention.
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
    node: str | None = None
    #: Corrupt packets skipped or frames decoded with errors since start (analysis stream).
    decode_errors: int = 0
    segments_unindexed: int = 0


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
    when there is no frame yet; ``width``/``height``: the analysed frame's size in pixels.
    ``detections``: the detector's boxes of that frame (id -1), which hold what no confirmed
    track holds yet (a new track needs ``tracker.min_hits`` detections): people-hiding
    redaction hides them too (``people``). ``decided``: the ``vigil.privacy.changes``
    thumbnail of the *analysed* frame these boxes come from, made from that frame as
    ``latest_frame`` would give it (a frame that was not analysed carries the boxes of the
    last one that was): live video hides what changed since then outside the boxes (None:
    the runtime gives none, e.g. ``StaticRuntime``)."""

    time: float | None = None
    width: int = 0
    height: int = 0
    tracks: tuple[TrackBox, ...] = ()
    detections: tuple[TrackBox, ...] = ()
    decided: ImageArray | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(
        cls, tracked: Detections, class_names: Sequence[str], time: float, size: tuple[int, int],
        detections: Detections | None = None, *, decided: ImageArray | None = None,
    ) -> TrackSnapshot:  # fmt: skip
        """From pixel ``Detections`` of a ``size`` = ``(width, height)`` frame."""
        raw = () if detections is None else _boxes(detections, class_names, size, track=False)
        return cls(time=time, width=size[0], height=size[1],
                   tracks=_boxes(tracked, class_names, size, track=True),
                   detections=raw, decided=decided)  # fmt: skip

    def people(self) -> tuple[TrackBox, ...]:
        """Every box that may be a person: the person tracks and the person detections."""
        return tuple(t for t in self.tracks + self.detections if t.label == "person")


def _boxes(dets: Detections, class_names: Sequence[str], size: tuple[int, int], *,
           track: bool) -> tuple[TrackBox, ...]:  # fmt: skip
    """``dets`` as normalised ``TrackBox``es (id -1 unless ``track``)."""
    w, h = max(1, size[0]), max(1, size[1])
    scale = np.array([w, h, w, h], np.float64)
    boxes = np.clip(dets.xyxy.astype(np.float64) / scale, 0.0, 1.0)
    return tuple(
        TrackBox(int(tid) if track else -1, _label(class_names, int(cid)), round(float(conf), 4),
                 (float(b[0]), float(b[1]), float(b[2]), float(b[3])))
        for tid, cid, conf, b in zip(dets.tracker_id, dets.class_id, dets.confidence, boxes,
                                     strict=True)
    )  # fmt: skip


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

    def switches(self, camera: str) -> dict[str, bool]:
        """The camera's switches and their states: ``detection``, and ``recording`` for a
        camera recorded here; ``KeyError`` for an unknown camera."""
        ...

    def set_switch(self, camera: str, switch: str, on: bool) -> None:
        """Switch one of ``switches(camera)`` on or off (kept over restarts where the runtime
        has a database); ``KeyError`` for an unknown camera, ``VigilError`` for a switch the
        camera does not have."""
        ...


@runtime_checkable
class PacketTaps(Protocol):
    """A runtime whose recorders run in the API's process can hand out their packet taps
    (``vigil.record.tap``) for stream-copied unredacted live video: ``packet_tap(camera)``
    is the camera's tap, None when it is not recorded in this process (not recorded, or on
    a cluster node). Optional: the API re-encodes when the runtime is not one."""

    def packet_tap(self, camera: str) -> PacketTap | None: ...


@runtime_checkable
class CopyFeeds(Protocol):
    """A runtime whose cameras are recorded elsewhere (cluster nodes) can hand out a reader
    of each camera's copy feed (``vigil.record.copyfeed``), muxed where it is recorded:
    ``copy_feed(camera)`` is None when the runtime has none for that camera (then the API
    asks ``PacketTaps``, if the runtime is one)."""

    def copy_feed(self, camera: str) -> CopyReader | None: ...
