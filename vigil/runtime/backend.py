"""How cameras run, as one protocol: ``CameraBackend`` of ``CameraHandle``\\ s.

The ``Supervisor`` composes the detector, sinks, recorders and store the same way whatever
runs the cameras; it picks a backend from ``server.backend`` (``resolve_backend``) and from
then on uses only this protocol:

* ``ThreadBackend`` (``vigil.runtime.threads``): every camera a ``CameraWorker`` thread of
  the main process; the handle is the worker itself.
* ``ProcessPool`` (``vigil.runtime.procs``): cameras dealt to spawned worker processes; the
  handle is a ``RemoteCamera`` that reads the worker's reports and calls into it.

* ``RayBackend`` (``vigil.cluster.backend``): every camera a Ray actor on a cluster node;
  the handle asks the actor, and the actor writes to PostgreSQL itself.

The backend owns the cameras' life cycle
as a whole, not each handle: cameras of one worker process share its lifetime, so a camera
cannot be started or stopped alone.

``BackendHooks`` is what the cameras' outputs reach in the main process, whatever backend:
the shared detectors, the event sink, counts, availability and the recorders.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from vigil.config.models import LineConfig, ResolvedCamera, ServerConfig, ZoneConfig
from vigil.detect.base import Detector
from vigil.events.sinks import EventSink
from vigil.record import Recorder
from vigil.runtime.view import CameraStatus, Lines, TrackSnapshot, Zones
from vigil.types import ImageArray, RuleEvent

BackendKind = Literal["threads", "processes", "ray"]


class CameraHandle(Protocol):
    """One running camera as the supervisor sees it; every method may be called from any
    thread and is cheap (a backend that must ask elsewhere bounds the wait).

    ``latest_frame``/``latest_tracks``/``counts``/``rules``/``update_rules`` are the
    per-camera halves of ``RuntimeView`` (see ``vigil.runtime.view``); the read-only figures
    (frames decoded, frames analysed, restarts, sessions, skipped frames, the last error and
    per-frame latencies) serve tests, logs and ``bench/capacity.py``.
    """

    @property
    def name(self) -> str: ...

    @property
    def camera(self) -> ResolvedCamera: ...

    @property
    def state(self) -> str: ...

    @property
    def online(self) -> bool: ...

    @property
    def frames(self) -> int: ...

    @property
    def analysed(self) -> int: ...

    @property
    def restarts(self) -> int: ...

    @property
    def sessions(self) -> int: ...

    @property
    def skipped_frames(self) -> int: ...

    @property
    def last_error(self) -> str | None: ...

    @property
    def latencies(self) -> deque[tuple[float, float, bool]]: ...

    def status(self) -> CameraStatus: ...

    def latest_frame(self) -> ImageArray | None: ...

    def latest_tracks(self) -> TrackSnapshot: ...

    def counts(self) -> dict[str, Any]: ...

    def rules(self) -> tuple[Zones, Lines]: ...

    def update_rules(
        self, zones: Mapping[str, ZoneConfig], lines: Mapping[str, LineConfig]
    ) -> None: ...

    @property
    def detection(self) -> bool: ...

    def set_detection(self, on: bool) -> None: ...


@runtime_checkable
class RemoteRecording(Protocol):
    """A handle whose camera records where it runs, not in this process (the Ray backend's
    camera actors): Home Assistant's recording switch goes through it. ``recording``: the
    switch in force (kept for a camera that restarts)."""

    @property
    def recording(self) -> bool: ...

    def set_recording(self, on: bool) -> None: ...


class CameraBackend(Protocol):
    """Runs a fixed set of cameras.

    ``start()`` returns at once; ``stop()`` asks every camera to close its open events and end
    its session, and returns at once; ``close(timeout)`` then waits for that (about ``timeout``
    seconds at most) and frees what the backend holds: a worker process still running is
    killed and the events it left open are closed, shared memory is unlinked (a thread cannot
    be killed: one that hangs is left behind, a daemon). Every event reaches the hooks' sink
    before ``close`` returns, except those of a hung thread.
    """

    @property
    def kind(self) -> BackendKind: ...

    @property
    def handles(self) -> Mapping[str, CameraHandle]: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def close(self, timeout: float) -> None: ...

    def pids(self) -> list[int]:
        """Process ids of the processes running cameras, other than this one."""
        ...


@dataclass(slots=True)
class BackendHooks:
    """Where the cameras' outputs go in the main process (the ``Supervisor``'s).

    ``detectors``: by camera, the shared (batching) detector of its model (cameras with the
    same model settings share one); a camera on the motion detector has none.
    ``recorders``: by camera, for ``mark_activity``; ``queue_depth``: the requests waiting
    for the camera's detector, shown in its status.
    """

    detectors: Mapping[str, Detector]
    sink: EventSink
    counts: Callable[[list[RuleEvent]], None]
    on_counts: Callable[[str, Mapping[str, Any]], None]
    on_online: Callable[[str, bool], None]
    recorders: Mapping[str, Recorder]
    queue_depth: Callable[[str], int]
    #: Whether what ``sink`` was handed is settled (``FanoutSink``); None: at once.
    delivery: Delivery | None = None


class Delivery(Protocol):
    """``mark()`` now, ``is_settled(mark)`` later: whether the sinks have settled what they
    had been handed at the mark (``vigil.alerts.fanout.FanoutSink``)."""

    def mark(self) -> Any: ...

    def is_settled(self, mark: Any) -> bool: ...


def resolve_backend(
    server: ServerConfig, cameras: int, cpus: int | None, *, worker_processes: int | None = None
) -> tuple[BackendKind, int]:
    """The backend of ``server`` for ``cameras`` cameras, and its number of worker processes
    (0 for threads and for ``ray``, whose cameras are actors on the cluster).

    ``backend: auto`` keeps the rule of ``server.worker_processes`` (``resolve_worker_processes``);
    ``processes`` with ``worker_processes: auto`` uses one process per CPU core, at most one per
    camera. ``worker_processes`` given here (tests, benchmarks) overrides the configuration as
    if ``backend`` were ``auto``.
    """
    if server.backend == "ray" and worker_processes is None:
        return "ray", 0
    if worker_processes is not None:
        count = resolve_worker_processes(worker_processes, cameras, cpus)
    elif server.backend == "threads":
        count = 0
    elif server.backend == "processes":
        wanted = server.worker_processes
        count = min((cpus or 1) if wanted == "auto" else int(wanted), cameras)
    else:
        count = resolve_worker_processes(server.worker_processes, cameras, cpus)
    return ("processes" if count > 0 else "threads"), count


def resolve_worker_processes(setting: int | str, cameras: int, cpus: int | None) -> int:
    """The number of worker processes for ``server.worker_processes``: an int as given
    (capped at one per camera), ``"auto"`` one per CPU when there are enough cameras to make
    the main process GIL-bound (more than 4 per CPU), else 0 (threads in one process)."""
    if setting == "auto":
        cores = cpus or 1
        return min(cores, cameras) if cores > 1 and cameras > 4 * cores else 0
    return min(int(setting), cameras)
