"""The messages between the main process and camera worker processes (``procs``).

Each is a frozen dataclass, pickled over the existing ``multiprocessing`` pipes, and each
receiver dispatches on them with one ``match``. Typed messages rather than positional tuples
so that a field cannot be read at the wrong index, mypy checks both ends, and a backend that
is not built on pipes (a cluster backend) can carry the same messages over its own transport.

Two kinds of pipe (see ``procs``):

* the **control** pipe of a worker process. Main → worker: ``Call`` (a ``Query`` for one of
  its cameras, answered by a ``CallReply`` with the same ``req``) and ``Stop``. Worker → main:
  ``StatusReport`` every ``STATUS_INTERVAL``, ``CallReply``, and ``Bye`` when it ends.
* the **link** of one camera, worker → main. A ``LinkRequest`` (``Detect``, ``AllocSlot``,
  ``PublishEvent``) waits for a ``Reply``; a ``LinkNotice`` (``RuleHits``, ``CountsChanged``,
  ``Online``, ``Activity``) is answered by nothing.

Pixels never travel in a message: ``Detect`` and ``PublishEvent`` name a shared-memory slot
and the ``ImageLayout`` of the images in it (``vigil.runtime.shm``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vigil.config.models import LineConfig, ZoneConfig
from vigil.runtime.shm import ImageLayout
from vigil.runtime.view import CameraStatus
from vigil.types import Event, RuleEvent

# -- status -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CameraReport:
    """One camera's state as its worker process reports it; ``latencies`` are the analysed
    frames since the previous report, as ``(when, latency s, emitted events)``."""

    status: CameraStatus
    frames: int
    analysed: int
    restarts: int
    sessions: int
    last_error: str | None
    latencies: tuple[tuple[float, float, bool], ...] = ()


# -- control pipe: main -> worker -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LatestFrame:
    """Pack the camera's newest frame into its preview slot; answered with the slot's
    ``ImageLayout``, or None before the first frame."""


@dataclass(frozen=True, slots=True)
class LatestTracks:
    """The camera's ``TrackSnapshot``."""


@dataclass(frozen=True, slots=True)
class GetCounts:
    """The camera's live ``RuleEngine.counts()``."""


@dataclass(frozen=True, slots=True)
class UpdateRules:
    """Replace the camera's zones and lines (its ``ConfigError`` comes back as the error)."""

    zones: Mapping[str, ZoneConfig]
    lines: Mapping[str, LineConfig]


Query = LatestFrame | LatestTracks | GetCounts | UpdateRules


@dataclass(frozen=True, slots=True)
class Call:
    """Run ``query`` on ``camera``'s worker; ``req`` pairs it with its ``CallReply``."""

    req: int
    camera: str
    query: Query


@dataclass(frozen=True, slots=True)
class Stop:
    """Close the open events, end every session and leave (after a last ``StatusReport``)."""


# -- answers ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reply:
    """The outcome of a request: ``value``, or ``error`` raised again on the asking side."""

    value: Any = None
    error: BaseException | None = None

    def unwrap(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value


# -- control pipe: worker -> main -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StatusReport:
    """Every camera of the process, by name."""

    reports: Mapping[str, CameraReport] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CallReply:
    req: int
    reply: Reply


@dataclass(frozen=True, slots=True)
class Bye:
    """The process has stopped; nothing follows."""


# -- a camera's link: worker -> main ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Detect:
    """Run the shared detector on the images in ``slot``; answered with their
    ``list[Detections]``."""

    slot: str
    layout: ImageLayout


@dataclass(frozen=True, slots=True)
class AllocSlot:
    """Create a request slot of ``size`` bytes (unlinking ``replaces``); answered with its
    name."""

    size: int
    replaces: str | None


@dataclass(frozen=True, slots=True)
class PublishEvent:
    """An event for the main process's sink; its snapshot's pixels, if any, are in ``slot``."""

    event: Event
    slot: str | None = None
    layout: ImageLayout | None = None


@dataclass(frozen=True, slots=True)
class RuleHits:
    """One frame's rule hits, for the counts in the store."""

    hits: tuple[RuleEvent, ...]


@dataclass(frozen=True, slots=True)
class CountsChanged:
    """The camera's ``RuleEngine.counts()`` after a change (for MQTT)."""

    counts: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Online:
    """The camera came online (True) or dropped out (False)."""

    online: bool


@dataclass(frozen=True, slots=True)
class Activity:
    """Motion or an open event at ``wall_time``, for the recorder's motion/events modes."""

    wall_time: float


@dataclass(frozen=True, slots=True)
class Motion:
    """The motion gate saw motion at ``wall_time``: the recorded segment there has motion."""

    wall_time: float


LinkRequest = Detect | AllocSlot | PublishEvent
LinkNotice = RuleHits | CountsChanged | Online | Activity | Motion
