"""Camera worker processes: groups of cameras analysed outside the main process.

::

    main process (Supervisor)                          worker process k (spawn)
    ─────────────────────────                          ────────────────────────
    BatchingDetector (one per model) ◄─── detect ─── CameraWorker threads (decode, gate,
    per camera: a link thread ────────────► reply ──►    tracker, rules, events)
      sink (store · MQTT · webhooks · live) ◄─ events ─
      recorder.mark_activity ◄──────────── activity ─
    per process: a control thread ◄─────── status ──── status thread (every 0.1 s)
      latest_frame/tracks, counts, rules ── calls ───► control loop (main thread)
    shared memory (created and unlinked by the main process):
      per camera one *request slot* (detector images, event snapshots; grown on demand)
      and one *preview slot* (``latest_frame``)

Why this split: the main process is GIL-bound in the per-camera Python work (tracker, rules,
events; see ``docs/architecture.md``), while ONNX inference releases the GIL and gains from
one batch across every camera. So whole cameras move to workers and the detector stays
shared in the main process. Pixels cross the boundary only through the shared-memory slots
(``vigil.runtime.shm``): a pipe carries a few-dozen-byte layout, never a frame. (One small
array does ride with the tracks: ``TrackSnapshot.decided``, the analysed frame's 128x72
colour thumbnail, ~28 KB pickled, that live video compares its frames with; it is not worth
a slot of its own.) A request
slot is safe without locks because its camera's thread waits for the reply before writing
it again; the preview slot is guarded by a per-camera lock in the main process.

Each camera has its own duplex ``Pipe`` (the *link*) used only by that camera's thread in
the worker (serialised by a lock) and answered by one thread in the main process, so a
slow store or a long batch for one camera never holds up another camera's messages. What
the pipes carry are the typed frozen dataclasses of ``vigil.runtime.messages``, each
receiver dispatching on them with one ``match``. The worker restarts crashed camera
sessions itself (``run_supervised``); the main process restarts a worker process that died,
with backoff, and closes the events its cameras left open. ``ProcessPool`` is the
``CameraBackend`` of all this: ``stop()`` asks every worker to close its events and end its
sessions, ``close()`` waits for them and unlinks every shared-memory block.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from vigil import clock
from vigil.config.models import LineConfig, ResolvedCamera, ZoneConfig
from vigil.errors import ModelError, VigilError
from vigil.ingest import Backoff
from vigil.runtime.backend import (
    BackendHooks,
    BackendKind,
    resolve_worker_processes,  # noqa: F401  # its old home
)
from vigil.runtime.messages import (
    Activity,
    AllocSlot,
    Bye,
    Call,
    CallReply,
    CameraReport,
    CountsChanged,
    Detect,
    GetCounts,
    LatestFrame,
    LatestTracks,
    LinkNotice,
    LinkRequest,
    Motion,
    Online,
    PublishEvent,
    Query,
    Reply,
    RuleHits,
    SetDetection,
    StatusReport,
    Stop,
    UpdateRules,
)
from vigil.runtime.shm import ImageLayout, Slot, SlotRegistry, packed_size
from vigil.runtime.view import CameraStatus, TrackSnapshot
from vigil.runtime.worker import CameraWorker, SourceFactory, default_source, run_supervised
from vigil.types import Detections, Event, EventState, ImageArray, RuleEvent

log = logging.getLogger(__name__)

Zones = dict[str, ZoneConfig]
Lines = dict[str, LineConfig]
BackoffFactory = Callable[[], Backoff]

STATUS_INTERVAL = 0.1  # s between status reports: the live view follows last_frame_time
CALL_TIMEOUT = 5.0  # seconds the main process waits for a worker's answer
PREVIEW_SIDE = 640  # long side of latest_frame images (as CameraWorker's default)


def assign(cameras: Sequence[str], processes: int) -> list[list[str]]:
    """Cameras dealt round-robin (sorted by name) into ``processes`` non-empty groups."""
    groups: list[list[str]] = [[] for _ in range(min(processes, len(cameras)))]
    for i, name in enumerate(sorted(cameras)):
        groups[i % len(groups)].append(name)
    return groups


@dataclass(slots=True)
class _WorkerSpec:
    """Everything a worker process needs; pickled once at spawn."""

    index: int
    cameras: list[ResolvedCamera]
    #: By camera with a model: its shared detector's class names and input size.
    models: dict[str, tuple[list[str], tuple[int, int]]]
    previews: dict[str, str]  # camera -> preview slot name
    stall_timeout: float
    source_factory: SourceFactory | None
    backoff: BackoffFactory | None
    log_level: int
    #: Cameras whose analysis is switched off (``set_detection``), kept over restarts.
    paused: frozenset[str] = frozenset()


# -- the worker process side ------------------------------------------------------------------


class _Link:
    """The worker end of one camera's pipe and request slot (see the module docstring)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.lock = threading.RLock()
        self.slot: Slot | None = None

    def request(self, msg: LinkRequest) -> Any:
        """Send ``msg`` and return the answer's value (or raise its error)."""
        with self.lock:
            return self._request(msg)

    def request_with_images(
        self, images: Sequence[ImageArray], make: Callable[[str, ImageLayout], LinkRequest]
    ) -> Any:
        """Pack ``images`` into the request slot, then send ``make(slot, layout)``: under one
        hold of the lock, because the slot must not be rewritten before the answer."""
        with self.lock:
            name, layout = self._pack(images)
            return self._request(make(name, layout))

    def notify(self, msg: LinkNotice) -> None:
        """Send ``msg``, which nothing answers."""
        with self.lock:
            self.conn.send(msg)

    def _request(self, msg: LinkRequest) -> Any:
        self.conn.send(msg)
        match self.conn.recv():
            case Reply() as reply:
                return reply.unwrap()
            case other:
                raise VigilError(f"unexpected answer {type(other).__name__} to {msg!r}")

    def _pack(self, images: Sequence[ImageArray]) -> tuple[str, ImageLayout]:
        """Images into the request slot, grown first if needed (hold ``lock``)."""
        need = packed_size([im.shape for im in images])
        if self.slot is None or self.slot.size < need:
            old = self.slot
            # Twice the need: a frame's regions vary, the slot should not grow every frame.
            name = self._request(AllocSlot(2 * need, None if old is None else old.name))
            self.slot = Slot(name)
            if old is not None:
                old.close()
        return self.slot.name, self.slot.pack(images)


class _RemoteDetector:
    """The shared detector of the main process, seen from a worker (``Detector``)."""

    def __init__(self, link: _Link, class_names: list[str], input_size: tuple[int, int]):
        self.link = link
        self.class_names: Sequence[str] = class_names
        self.input_size = input_size

    def detect_batch(self, images: Sequence[ImageArray]) -> list[Detections]:
        if not images:
            return []
        contiguous = [np.ascontiguousarray(im, dtype=np.uint8) for im in images]
        result: list[Detections] = self.link.request_with_images(contiguous, Detect)
        return result


class _ForwardSink:
    """Events to the main process's sink; a snapshot's pixels travel in the request slot."""

    def __init__(self, link: _Link) -> None:
        self.link = link

    def publish(self, event: Event) -> None:
        snap = event.snapshot
        if snap is None or snap.image is None:
            self.link.request(PublishEvent(event))
            return
        bare = dataclasses.replace(event, snapshot=dataclasses.replace(snap, image=None))
        self.link.request_with_images(
            [np.ascontiguousarray(snap.image)],
            lambda slot, layout: PublishEvent(bare, slot, layout),
        )

    def close(self) -> None:
        pass


class _RecorderProxy:
    """What a ``CameraWorker`` needs of its recorder, forwarded to the main process."""

    def __init__(self, link: _Link, mode: str) -> None:
        self.link, self.mode = link, mode

    def mark_activity(self, wall_time: float) -> None:
        self.link.notify(Activity(wall_time))

    def note_motion(self, wall_time: float) -> None:
        self.link.notify(Motion(wall_time))


class _Notices:
    """A ``CameraWorker``'s callbacks as link notices. The camera's name is left out: the
    main process knows whose link it is."""

    def __init__(self, link: _Link) -> None:
        self.link = link

    def hits(self, hits: list[RuleEvent]) -> None:
        self.link.notify(RuleHits(tuple(hits)))

    def counts(self, camera: str, counts: Mapping[str, Any]) -> None:
        self.link.notify(CountsChanged(dict(counts)))

    def online(self, camera: str, online: bool) -> None:
        self.link.notify(Online(online))


def worker_main(spec: _WorkerSpec, control: Connection, links: dict[str, Connection]) -> None:
    """Entry point of a worker process: run ``spec``'s cameras until told to stop or the
    main process goes away (its pipe closes)."""
    logging.basicConfig(level=spec.log_level)
    # Ctrl-C reaches the whole process group: the main process orchestrates the shutdown.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stop = threading.Event()
    send_lock = threading.Lock()
    workers = _build_workers(spec, links)
    threads = [
        threading.Thread(target=run_supervised, name=f"camera-{name}", daemon=True,
                         args=(w, stop, (spec.backoff or Backoff)()))
        for name, w in workers.items()
    ]  # fmt: skip
    for thread in threads:
        thread.start()
    previews = {name: Slot(slot) for name, slot in spec.previews.items()}
    reporter = threading.Thread(
        target=_report_loop, args=(workers, control, send_lock, stop), daemon=True
    )
    reporter.start()
    try:
        _control_loop(workers, previews, control, send_lock)
    finally:
        stop.set()
        for worker in workers.values():
            worker.stop()
        for thread in threads:
            thread.join(10.0)
        with contextlib.suppress(OSError, ValueError), send_lock:
            control.send(StatusReport(_reports(workers)))
            control.send(Bye())
        for slot in previews.values():
            slot.close()


def _build_workers(spec: _WorkerSpec, links: dict[str, Connection]) -> dict[str, CameraWorker]:
    def factory(src: Any, cam: str, cb: Any) -> Any:
        return default_source(src, cam, cb, stall_timeout=spec.stall_timeout)

    workers: dict[str, CameraWorker] = {}
    for camera in spec.cameras:
        link = _Link(links[camera.name])
        model = spec.models.get(camera.name)
        detector = None if model is None else _RemoteDetector(link, model[0], model[1])
        recorder = _RecorderProxy(link, camera.record.mode)
        notices = _Notices(link)
        worker = CameraWorker(
            camera, detector, _ForwardSink(link), counts=notices.hits,
            on_counts=notices.counts, on_online=notices.online,
            recorder=recorder,  # type: ignore[arg-type]  # duck-typed: mode + mark_activity
            source_factory=spec.source_factory or factory, preview_side=PREVIEW_SIDE,
        )  # fmt: skip
        worker.detection = camera.name not in spec.paused
        workers[camera.name] = worker
    return workers


def _reports(workers: Mapping[str, CameraWorker]) -> dict[str, CameraReport]:
    out: dict[str, CameraReport] = {}
    for name, w in workers.items():
        lat: list[tuple[float, float, bool]] = []
        while w.latencies:
            lat.append(w.latencies.popleft())
        out[name] = CameraReport(w.status(), w.frames, w.analysed, w.restarts, w.sessions,
                                 w.last_error, tuple(lat))  # fmt: skip
    return out


def _report_loop(
    workers: Mapping[str, CameraWorker], control: Connection, lock: threading.Lock,
    stop: threading.Event,
) -> None:  # fmt: skip
    while not stop.wait(STATUS_INTERVAL):
        try:
            with lock:
                control.send(StatusReport(_reports(workers)))
        except (OSError, ValueError):
            return


def _control_loop(
    workers: Mapping[str, CameraWorker], previews: Mapping[str, Slot], control: Connection,
    lock: threading.Lock,
) -> None:  # fmt: skip
    """Answer the main process's calls until ``stop`` or until its pipe closes."""
    while True:
        try:
            msg = control.recv()
        except (EOFError, OSError):
            return
        match msg:
            case Stop():
                return
            case Call(req=req, camera=camera, query=query):
                try:
                    reply = Reply(_answer(workers[camera], previews[camera], query))
                except Exception as exc:
                    reply = Reply(error=exc if isinstance(exc, VigilError | KeyError) else
                                  VigilError(f"{type(exc).__name__}: {exc}"))  # fmt: skip
                with lock:
                    control.send(CallReply(req, reply))
            case _:
                log.warning("unknown control message %s; ignored", type(msg).__name__)


def _answer(worker: CameraWorker, preview: Slot, query: Query) -> Any:
    match query:
        case LatestFrame():
            image = worker.latest_frame()
            return None if image is None else preview.pack([image])
        case LatestTracks():
            return worker.latest_tracks()
        case GetCounts():
            return worker.counts()
        case UpdateRules(zones=zones, lines=lines):
            worker.update_rules(zones, lines)
            return None
        case SetDetection(on=on):
            worker.set_detection(on)
            return None
    raise KeyError(type(query).__name__)


# -- the main process side --------------------------------------------------------------------


class RemoteCamera:
    """The main process's view of a camera analysed in a worker process: its
    ``CameraHandle`` (status, frame, tracks, counts, rules), from the worker's reports and
    calls into it."""

    def __init__(self, camera: ResolvedCamera, pool: ProcessPool) -> None:
        self.camera = camera
        self.name = camera.name
        self._pool = pool
        self.process: WorkerProcess | None = None
        self._zones: Zones = dict(camera.zones)
        self._lines: Lines = dict(camera.lines)
        self._report: CameraReport | None = None
        self.latencies: deque[tuple[float, float, bool]] = deque(maxlen=4096)
        self.open_events: dict[str, Event] = {}
        self.last_time: float | None = None
        self.preview_lock = threading.Lock()
        self.state_override: str | None = "starting"
        self.process_restarts = 0
        self.detection = True

    # -- what the reports say -----------------------------------------------------------------

    def report(self, report: CameraReport) -> None:
        self._report = report
        self.latencies.extend(report.latencies)
        if report.status.last_frame_time is not None:
            self.last_time = report.status.last_frame_time
        self.state_override = None

    def mark_restarting(self) -> bool:
        """Its process died and is being restarted; True if the camera had reported before
        (then it is seen to drop out)."""
        self.process_restarts += 1
        self.state_override = "restarting"
        return self._report is not None

    @property
    def frames(self) -> int:
        return self._report.frames if self._report else 0

    @property
    def analysed(self) -> int:
        return self._report.analysed if self._report else 0

    @property
    def sessions(self) -> int:
        return self._report.sessions if self._report else 0

    @property
    def last_error(self) -> str | None:
        return self._report.last_error if self._report else None

    @property
    def state(self) -> str:
        if self.state_override is not None or self._report is None:
            return self.state_override or "starting"
        return self._report.status.state

    @property
    def skipped_frames(self) -> int:
        return self._report.status.skipped_frames if self._report else 0

    @property
    def online(self) -> bool:
        report = self._report
        return self.state_override is None and report is not None and report.status.online

    @property
    def restarts(self) -> int:
        return self.process_restarts + (self._report.restarts if self._report else 0)

    def status(self) -> CameraStatus:
        depth = self._pool.hooks.queue_depth(self.name)
        if self._report is None or self.state_override is not None:
            state = self.state_override or "starting"
            return CameraStatus(name=self.name, online=False, state=state, queue_depth=depth)
        return dataclasses.replace(self._report.status, queue_depth=depth)

    # -- calls into the worker ----------------------------------------------------------------

    def _call(self, query: Query) -> Any:
        process = self.process
        if process is None:
            raise VigilError(f"camera {self.name!r}: its worker process is not running")
        return process.call(self.name, query)

    def latest_frame(self) -> ImageArray | None:
        with self.preview_lock:
            try:
                layout = self._call(LatestFrame())
            except VigilError:
                return None
            if layout is None or self.process is None:
                return None
            return self.process.preview_copy(self.name, layout)

    def latest_tracks(self) -> TrackSnapshot:
        try:
            tracks: TrackSnapshot = self._call(LatestTracks())
        except VigilError:
            return TrackSnapshot()
        return tracks

    def counts(self) -> dict[str, Any]:
        try:
            counts: dict[str, Any] = self._call(GetCounts())
        except VigilError:
            return {}
        return counts

    def rules(self) -> tuple[Zones, Lines]:
        return dict(self._zones), dict(self._lines)

    def update_rules(
        self, zones: Mapping[str, ZoneConfig], lines: Mapping[str, LineConfig]
    ) -> None:
        """Apply in the worker (its ``ConfigError`` reaches the caller); a worker that is
        down gets them when it is restarted."""
        with contextlib.suppress(_ProcessDownError):
            self._call(UpdateRules(dict(zones), dict(lines)))
        self._zones, self._lines = dict(zones), dict(lines)

    def set_detection(self, on: bool) -> None:
        """Switch analysis in the worker; a worker that is down gets it when restarted."""
        self.detection = bool(on)
        with contextlib.suppress(_ProcessDownError):
            self._call(SetDetection(self.detection))

    def resolved(self) -> ResolvedCamera:
        """The camera with the rules in force now (for a (re)started worker process)."""
        return self.camera.model_copy(update={"zones": self._zones, "lines": self._lines})


class _ProcessDownError(VigilError):
    """The worker process is not running (it crashed or is being restarted)."""


class WorkerProcess:
    """One worker process and the main-process threads that serve it."""

    def __init__(self, index: int, cameras: list[RemoteCamera], pool: ProcessPool) -> None:
        self.index = index
        self.cameras = {c.name: c for c in cameras}
        self.pool = pool
        self.process: multiprocessing.process.BaseProcess | None = None
        self._control: Connection | None = None
        self._send_lock = threading.Lock()
        self._pending: dict[int, Future[Any]] = {}
        self._ids = itertools.count()
        self._threads: list[threading.Thread] = []
        self._previews: dict[str, Slot] = {}
        self._requests: dict[str, str] = {}  # camera -> its request slot's name
        self.started_at = 0.0

    # -- life cycle -----------------------------------------------------------------------------

    def spawn(self) -> None:
        """Start the process with the rules in force now, and the threads that serve it."""
        ctx = multiprocessing.get_context("spawn")
        pool = self.pool
        for name in self.cameras:
            if name not in self._previews:
                self._previews[name] = pool.registry.create(PREVIEW_SIDE * PREVIEW_SIDE * 3)
            old = self._requests.pop(name, None)
            if old is not None:  # a dead process's request slot: the new one makes its own
                pool.registry.unlink(old)
        control, child_control = ctx.Pipe()
        links = {name: ctx.Pipe() for name in self.cameras}
        spec = _WorkerSpec(
            index=self.index, cameras=[c.resolved() for c in self.cameras.values()],
            models={n: pool.models[n] for n in self.cameras if n in pool.models},
            previews={n: s.name for n, s in self._previews.items()},
            stall_timeout=pool.stall_timeout, source_factory=pool.source_factory,
            backoff=pool.backoff_picklable, log_level=logging.getLogger().getEffectiveLevel(),
            paused=frozenset(n for n, c in self.cameras.items() if not c.detection),
        )  # fmt: skip
        process = ctx.Process(
            target=worker_main, name=f"vigil-worker-{self.index}", daemon=True,
            args=(spec, child_control, {n: c for n, (_, c) in links.items()}),
        )  # fmt: skip
        process.start()
        child_control.close()
        self._control, self.process = control, process
        self.started_at = time.monotonic()
        threads = [threading.Thread(target=self._read_control, args=(control,), daemon=True,
                                    name=f"vigil-worker-{self.index}-control")]  # fmt: skip
        for name, (conn, child_end) in links.items():
            child_end.close()
            threads.append(threading.Thread(target=self._serve_link, args=(name, conn),
                                            daemon=True, name=f"vigil-link-{name}"))  # fmt: skip
        for cam in self.cameras.values():
            cam.process = self
        for thread in threads:
            thread.start()
        self._threads = threads

    def stop(self) -> None:
        """Ask the process to end its sessions (it closes its events first); nothing to ask
        when it was never started."""
        with contextlib.suppress(OSError, ValueError), self._send_lock:
            if self._control is not None:
                self._control.send(Stop())

    def join(self, timeout: float) -> None:
        """Wait for the process, then for the threads serving it; kill it past ``timeout``."""
        process = self.process
        if process is not None:
            process.join(timeout)
            if process.is_alive():
                log.warning("worker process %d did not stop in time; killing it", self.index)
                process.kill()
                process.join(5.0)
        for thread in self._threads:
            thread.join(5.0)
        if self._control is not None:
            self._control.close()
        self._fail_pending()

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.is_alive()

    # -- calls ----------------------------------------------------------------------------------

    def call(self, camera: str, query: Query) -> Any:
        """Run ``query`` on ``camera``'s worker in the process; re-raises its exception."""
        future: Future[Any] = Future()
        req = next(self._ids)
        self._pending[req] = future
        try:
            with self._send_lock:
                if self._control is None or not self.alive:
                    raise _ProcessDownError(f"camera {camera!r}: its worker process is not running")
                self._control.send(Call(req, camera, query))
            return future.result(CALL_TIMEOUT)
        except TimeoutError:
            raise _ProcessDownError(f"camera {camera!r}: no answer from its worker") from None
        except (OSError, ValueError) as exc:
            raise _ProcessDownError(f"camera {camera!r}: worker process gone ({exc})") from None
        finally:
            self._pending.pop(req, None)

    def preview_copy(self, camera: str, layout: ImageLayout) -> ImageArray:
        return self._previews[camera].views(layout)[0].copy()

    def _fail_pending(self) -> None:
        for future in list(self._pending.values()):
            if not future.done():
                future.set_exception(_ProcessDownError("the worker process ended"))

    # -- the threads that serve the process -----------------------------------------------------

    def _read_control(self, conn: Connection) -> None:
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                break
            match msg:
                case StatusReport(reports=reports):
                    for name, report in reports.items():
                        self.cameras[name].report(report)
                case CallReply(req=req, reply=reply):
                    self._resolve(req, reply)
                case Bye():
                    break
                case _:
                    log.warning("worker process %d: unknown message %s; ignored", self.index,
                                type(msg).__name__)  # fmt: skip
        self._fail_pending()

    def _resolve(self, req: int, reply: Reply) -> None:
        future = self._pending.get(req)
        if future is None or future.done():
            return  # the caller gave up waiting
        if reply.error is not None:
            future.set_exception(reply.error)
        else:
            future.set_result(reply.value)

    def _serve_link(self, camera: str, conn: Connection) -> None:
        """Answer one camera's messages (see the module docstring) until its pipe closes."""
        cam = self.cameras[camera]
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                return
            try:
                reply = self._handle(cam, msg)
            except Exception as exc:
                if not isinstance(msg, LinkRequest):  # a notice: nobody waits for an answer
                    log.exception("%s: %s from the worker process failed", camera,
                                  type(msg).__name__)  # fmt: skip
                    continue
                reply = Reply(error=exc if isinstance(exc, VigilError) else
                              ModelError(f"{type(exc).__name__}: {exc}"))  # fmt: skip
            if reply is not None:
                with contextlib.suppress(OSError, ValueError):
                    conn.send(reply)

    def _handle(self, cam: RemoteCamera, msg: object) -> Reply | None:
        """Act on one message of ``cam``'s link: the answer to a request, None for a notice."""
        hooks = self.pool.hooks
        match msg:
            case Detect(slot=slot, layout=layout):
                detector = hooks.detectors.get(cam.name)
                if detector is None:
                    raise ModelError(f"{cam.name}: no shared detector in the main process")
                views = self.pool.registry.get(slot).views(layout)
                return Reply(detector.detect_batch(views))
            case AllocSlot(size=size, replaces=replaces):
                created = self.pool.registry.create(size, replaces=replaces)
                self._requests[cam.name] = created.name
                return Reply(created.name)
            case PublishEvent(event=event, slot=slot, layout=layout):
                self._publish(cam, event, slot, layout)
                return Reply()
            case RuleHits(hits=hits):
                hooks.counts(list(hits))
            case CountsChanged(counts=counts):
                hooks.on_counts(cam.name, counts)
            case Online(online=online):
                hooks.on_online(cam.name, online)
            case Activity(wall_time=wall_time):
                recorder = hooks.recorders.get(cam.name)
                if recorder is not None:
                    recorder.mark_activity(wall_time)
            case Motion(wall_time=wall_time):
                recorder = hooks.recorders.get(cam.name)
                if recorder is not None:
                    recorder.note_motion(wall_time)
            case _:
                log.warning("%s: unknown message %s from the worker process; ignored",
                            cam.name, type(msg).__name__)  # fmt: skip
        return None

    def _publish(
        self, cam: RemoteCamera, event: Event, slot: str | None, layout: ImageLayout | None
    ) -> None:
        if slot is not None and layout and event.snapshot is not None:
            image = self.pool.registry.get(slot).views(layout)[0].copy()
            event.snapshot = dataclasses.replace(event.snapshot, image=image)
        if event.state is EventState.END:
            cam.open_events.pop(event.id, None)
        else:
            cam.open_events[event.id] = event
        self.pool.hooks.sink.publish(event)

    def close_orphans(self) -> None:
        """End the events the dead process left open (it could not), at its last frame."""
        for cam in self.cameras.values():
            when = cam.last_time if cam.last_time is not None else clock.now()
            for event in list(cam.open_events.values()):
                end = max(when, event.start)
                closed = dataclasses.replace(event, end=end, state=EventState.END)
                cam.open_events.pop(event.id, None)
                try:
                    self.pool.hooks.sink.publish(closed)
                except Exception:
                    log.exception("%s: event %s could not be closed", cam.name, event.id)


@dataclass(slots=True)
class ProcessPool:
    r"""Worker processes owning groups of cameras, restarted with backoff when they die: the
    process ``CameraBackend`` (``vigil.runtime.backend``), its handles ``RemoteCamera``\ s.

    ``models``: by camera with a model, its shared detector's (class names, input size);
    a camera on the motion detector is not in it. ``source_factory``/``backoff`` travel to
    the workers and so must be picklable (module-level functions or classes); ``backoff``
    that is not is replaced by the default ``Backoff`` in the workers (the main process
    still uses it for restarts).
    """

    cameras: list[ResolvedCamera]
    processes: int
    hooks: BackendHooks
    models: Mapping[str, tuple[list[str], tuple[int, int]]]
    stall_timeout: float = 10.0
    source_factory: SourceFactory | None = None
    backoff: BackoffFactory = Backoff
    registry: SlotRegistry = field(
        default_factory=lambda: SlotRegistry(f"vigil-{os.getpid()}-{time.monotonic_ns() % 10**9}")
    )
    remote: dict[str, RemoteCamera] = field(default_factory=dict)
    workers: list[WorkerProcess] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _monitors: list[threading.Thread] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.remote = {c.name: RemoteCamera(c, self) for c in self.cameras}
        groups = assign(list(self.remote), self.processes)
        self.workers = [
            WorkerProcess(i, [self.remote[n] for n in group], self)
            for i, group in enumerate(groups)
        ]

    @property
    def backoff_picklable(self) -> BackoffFactory | None:
        import pickle

        try:
            pickle.dumps(self.backoff)
        except Exception:
            return None
        return self.backoff

    @property
    def kind(self) -> BackendKind:
        return "processes"

    @property
    def handles(self) -> Mapping[str, RemoteCamera]:
        return self.remote

    def start(self) -> None:
        for worker in self.workers:
            worker.spawn()
            thread = threading.Thread(target=self._monitor, args=(worker,), daemon=True,
                                      name=f"vigil-worker-{worker.index}-monitor")  # fmt: skip
            thread.start()
            self._monitors.append(thread)

    def pids(self) -> list[int]:
        return [w.process.pid for w in self.workers if w.process is not None and w.process.pid]

    def _monitor(self, worker: WorkerProcess) -> None:
        """Restart ``worker``'s process whenever it dies before ``stop()``."""
        backoff = self.backoff()
        while True:
            process = worker.process
            assert process is not None
            multiprocessing.connection.wait([process.sentinel])
            if self._stop.is_set():
                return
            log.error("worker process %d died (exit code %s); restarting its cameras %s",
                      worker.index, process.exitcode, sorted(worker.cameras))  # fmt: skip
            worker.join(5.0)
            worker.close_orphans()
            for cam in worker.cameras.values():
                if cam.mark_restarting():
                    self.hooks.on_online(cam.name, False)
            if time.monotonic() - worker.started_at > 60.0:
                backoff.reset()  # it ran for a while: start the delays again
            if self._stop.wait(backoff.next()):
                return
            worker.spawn()

    def stop(self) -> None:
        """Ask every worker to close its events and end its sessions; returns at once."""
        self._stop.set()
        for worker in self.workers:
            worker.stop()

    def close(self, timeout: float) -> None:
        """Wait for the workers (killing those past ``timeout``), close the events the
        killed ones left open, then free shared memory."""
        if not self._stop.is_set():
            self.stop()
        deadline = time.monotonic() + timeout
        for worker in self.workers:
            worker.join(max(0.5, deadline - time.monotonic()))
            worker.close_orphans()
        for thread in self._monitors:
            thread.join(1.0)
        for cam in self.remote.values():
            if cam.state not in ("stopped", "ended"):  # no final report: it was killed
                cam.state_override = "stopped"
            cam.process = None
        self.registry.close()
