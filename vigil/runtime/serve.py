"""``Supervisor``: the composition root behind ``vigil serve``.

::

    cameras ─► CameraWorker threads ─► BatchingDetector (one, shared) ─┐
       │            │ events                                           │
       │            ▼                                                  │
       │       FanoutSink: store · MQTT · webhooks · live subscribers  │
       └─► Recorder threads (stream copy) ─► segments ─► store ─► retention thread

One worker thread per camera analyses its ``detect`` input; one ``Recorder`` thread per
camera records its ``record`` input by stream copy (never decoded). The supervisor restarts a
worker that crashed or whose camera cannot be opened, with exponential backoff, and reports
it in the camera's status; a dead camera never stops the others. ``stop()`` is graceful: the
workers close their open events, the recorders finish their segments, MQTT reports the
cameras offline.

The supervisor implements ``vigil.api.runtime.RuntimeView`` for the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from vigil.alerts.fanout import FanoutSink
from vigil.api.runtime import CameraStatus, TrackSnapshot
from vigil.config.models import DetectConfig, LineConfig, ResolvedCamera, VigilConfig, ZoneConfig
from vigil.detect.base import Detector
from vigil.errors import VigilError
from vigil.events.sinks import EventSink, event_to_dict
from vigil.ingest import Backoff
from vigil.ingest.base import is_network_url
from vigil.ingest.pacing import loop_backoff
from vigil.record import (
    CameraRetention,
    Recorder,
    RetentionPolicy,
    SegmentInfo,
    SegmentMeta,
    plan_retention,
)
from vigil.runtime.batcher import BatchingDetector
from vigil.runtime.procs import ProcessPool, RemoteCamera, _Hooks, resolve_worker_processes
from vigil.runtime.worker import CameraWorker, SourceFactory, default_source, run_supervised
from vigil.types import Event, EventState, ImageArray, RuleEvent

if TYPE_CHECKING:
    from vigil.privacy.redactor import Redactor
    from vigil.store.db import Database

log = logging.getLogger(__name__)

Zones = dict[str, ZoneConfig]
Lines = dict[str, LineConfig]
DetectorFactory = Callable[[VigilConfig], Detector]


def _build_detector(config: VigilConfig) -> Detector:
    from vigil.detect import build_detector

    return build_detector(config.detect)


class LiveHub:
    """Fans events out to asyncio subscribers (WebSocket clients), from any thread.

    Each subscriber has a bounded queue: a slow one misses events, the pipeline never waits.
    An ``EventSink``: put it behind the ``FanoutSink``.
    """

    def __init__(self, queue_size: int = 100) -> None:
        self.queue_size = queue_size
        self._lock = threading.Lock()
        self._queues: list[tuple[asyncio.AbstractEventLoop, asyncio.Queue[dict[str, Any] | None]]]
        self._queues = []

    @property
    def subscribers(self) -> int:
        with self._lock:
            return len(self._queues)

    async def subscribe(self) -> AsyncIterator[dict[str, Any]]:
        """Every event published after the call, as ``event_to_dict``; ends at ``close``."""
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(self.queue_size)
        entry = (asyncio.get_running_loop(), queue)
        with self._lock:
            self._queues.append(entry)
        try:
            while (item := await queue.get()) is not None:
                yield item
        finally:
            with self._lock:
                self._queues.remove(entry)

    def publish(self, event: Event) -> None:
        self._offer_all(event_to_dict(event))

    def close(self) -> None:
        self._offer_all(None)

    def _offer_all(self, item: dict[str, Any] | None) -> None:
        with self._lock:
            queues = list(self._queues)
        for loop, queue in queues:
            # A RuntimeError means the subscriber's loop is closed: it is gone.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_offer, queue, item)


def _offer(queue: asyncio.Queue[dict[str, Any] | None], item: dict[str, Any] | None) -> None:
    try:
        queue.put_nowait(item)
    except asyncio.QueueFull:
        if item is None:  # the end must arrive: make room for it
            queue.get_nowait()
            queue.put_nowait(None)


def shared_detect_config(base: DetectConfig, cameras: Sequence[DetectConfig]) -> DetectConfig:
    """The settings of the one shared model: ``base`` (the global ``detect`` section) with the
    lowest confidence and the union of the labels of ``cameras``, so that every camera's
    results are a subset of the shared results; each camera then filters to its own
    (``CameraDetector``). Any camera keeping every class (``labels: []``) keeps all."""
    if not cameras:
        return base
    confidence = min(c.confidence for c in cameras)
    labels: list[str] = []
    if all(c.labels for c in cameras):
        for camera in cameras:
            labels.extend(label for label in camera.labels if label not in labels)
    return base.model_copy(update={"confidence": confidence, "labels": labels})


def retention_policy(config: VigilConfig) -> RetentionPolicy:
    """The retention limits of ``config``: per camera from its ``record`` section, the
    total quota and the free-space warning from ``server``."""
    cameras = {
        name: CameraRetention(cam.record.max_age, cam.record.max_bytes)
        for name in config.cameras
        for cam in [config.camera(name)]
    }
    return RetentionPolicy(
        default=CameraRetention(config.record.max_age, config.record.max_bytes),
        cameras=cameras, total_max_bytes=config.server.total_max_bytes,
        min_free_bytes=config.server.min_free_bytes,
    )  # fmt: skip


class ClipFlags:
    """Marks each event with ``has_clip`` (its camera records) before every sink sees it,
    so that MQTT, webhooks and the WebSocket tell what REST tells."""

    def __init__(self, sink: FanoutSink, recorders: Mapping[str, Recorder]) -> None:
        self.inner = sink
        self.recorders = recorders

    def publish(self, event: Event) -> None:
        event.has_clip = event.camera_id in self.recorders
        self.inner.publish(event)

    def close(self) -> None:
        self.inner.close()


#: Long side (px) of the snapshots sent to Home Assistant's camera entity.
SNAPSHOT_SIDE = 1280


class SnapshotPublisher:
    """Sends each event's snapshot, *redacted*, to the MQTT camera entity of its camera.

    An ``EventSink`` behind the ``FanoutSink``: it only copies the snapshot and hands it to
    its own thread, which redacts it with the camera's ``redact`` settings (faces, people,
    static masks: what any viewer gets) and encodes it, so face detection never delays the
    pipeline. Only the newest snapshot per camera waits: Home Assistant shows the latest
    picture, older ones would be stale by the time they are sent. A redaction failure (the
    face model cannot be loaded) sends nothing: fail closed.
    """

    def __init__(self, config: VigilConfig, send: Callable[[str, bytes], None]) -> None:
        self.config = config
        self.send = send
        self._pending: dict[str, ImageArray] = {}
        self._redactors: dict[tuple[str, int, int], Redactor] = {}
        self._wake = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="mqtt-snapshots", daemon=True)
        self._thread.start()

    def publish(self, event: Event) -> None:
        snapshot = event.snapshot
        if event.state is EventState.UPDATE or snapshot is None or snapshot.image is None:
            return  # the start shows the object at once, the end its best view
        with self._wake:
            self._pending[event.camera_id] = snapshot.image.copy()
            self._wake.notify()

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._thread.join(10)

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._pending and not self._closed:
                    self._wake.wait()
                if self._closed:
                    return
                camera, image = self._pending.popitem()
            try:
                self.send(camera, self.redacted_jpeg(camera, image))
            except Exception:  # one bad snapshot must not end the thread
                log.exception("%s: snapshot not sent to MQTT", camera)

    def redacted_jpeg(self, camera: str, image: ImageArray) -> bytes:
        """``image`` redacted as ``camera``'s viewers see it, as JPEG."""
        import cv2

        from vigil.privacy.redactor import build_redactor

        height, width = image.shape[:2]
        key = (camera, width, height)
        redactor = self._redactors.get(key)
        if redactor is None:
            redactor = build_redactor(self.config.redact_for(camera), (width, height))
            self._redactors[key] = redactor
        redacted = redactor.redact_still(image)
        # Redacted at full size (small faces are found there), sent at most SNAPSHOT_SIDE
        # wide: a dashboard picture, and a retained 4K JPEG on every event would weigh on
        # the broker and on Home Assistant.
        scale = SNAPSHOT_SIDE / max(width, height)
        if scale < 1:
            size = (max(2, round(width * scale)), max(2, round(height * scale)))
            redacted = cast(ImageArray, cv2.resize(redacted, size, interpolation=cv2.INTER_AREA))
        ok, data = cv2.imencode(".jpg", redacted, [cv2.IMWRITE_JPEG_QUALITY, 85])
        if not ok:
            raise VigilError(f"{camera}: the snapshot could not be encoded as JPEG")
        return bytes(data.tobytes())


class Supervisor:
    """Runs every enabled camera of ``config`` (see the module docstring).

    Args:
        config: the whole configuration; ``data_dir`` holds the recordings.
        db: where events, counts and segments go (None: nowhere, e.g. in tests of alerts).
        sinks: further event sinks (after the store, MQTT and webhooks of ``config``).
        detector: the detector to share instead of building ``config.detect``'s model.
        source_factory: how workers open their analysis stream.
        backoff: a fresh ``Backoff`` per camera, for restarts of workers and recorders.
        stall_timeout: seconds without a frame after which a network camera reconnects.
        worker_processes: overrides ``server.worker_processes``: 0 analyses every camera in
            a thread of this process; n > 0 in n spawned worker processes (``procs``), where
            ``source_factory`` and ``backoff`` must be picklable.
    """

    def __init__(
        self,
        config: VigilConfig,
        *,
        db: Database | None = None,
        sinks: Sequence[EventSink] = (),
        detector: Detector | None = None,
        detector_factory: DetectorFactory = _build_detector,
        source_factory: SourceFactory | None = None,
        backoff: Callable[[], Backoff] = Backoff,
        stall_timeout: float = 10.0,
        worker_processes: int | None = None,
    ) -> None:
        self.config = config
        self.db = db
        self.root = Path(config.data_dir)
        self._backoff = backoff
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.started = False
        cameras = [config.camera(n) for n in config.cameras if config.cameras[n].enabled]
        self.batcher = self._shared_detector(cameras, detector, detector_factory)
        self.hub = LiveHub()
        self.store: Any = None
        self.mqtt: Any = None
        self.recorders: dict[str, Recorder] = {}
        self.sink = ClipFlags(FanoutSink(self._sinks(sinks)), self.recorders)
        setting = config.server.worker_processes if worker_processes is None else worker_processes
        self.processes = resolve_worker_processes(setting, len(cameras), os.cpu_count())
        for camera in cameras:
            recorder = self._recorder(camera, stall_timeout)
            if recorder is not None:
                self.recorders[camera.name] = recorder
        self.pool: ProcessPool | None = None
        self.workers: dict[str, CameraWorker | RemoteCamera] = {}
        self._local: dict[str, CameraWorker] = {}
        if self.processes > 0:
            self.pool = self._process_pool(cameras, source_factory, stall_timeout)
            self.workers.update(self.pool.remote)
        else:
            self._local = self._camera_threads(cameras, source_factory, stall_timeout)
            self.workers.update(self._local)
        self.retention_warnings: list[str] = []

    # -- composition ------------------------------------------------------------------------

    def _camera_threads(
        self, cameras: list[ResolvedCamera], source_factory: SourceFactory | None,
        stall_timeout: float,
    ) -> dict[str, CameraWorker]:  # fmt: skip
        factory = source_factory or (
            lambda src, cam, cb: default_source(src, cam, cb, stall_timeout=stall_timeout)
        )
        workers: dict[str, CameraWorker] = {}
        for camera in cameras:
            worker = CameraWorker(
                camera,
                None if camera.detect.is_motion else self.batcher,
                self.sink, counts=self._count, on_counts=self._publish_counts,
                on_online=self._online, recorder=self.recorders.get(camera.name),
                source_factory=factory,
            )  # fmt: skip
            worker.queue_depth = self._queue_depth
            workers[camera.name] = worker
        return workers

    def _process_pool(
        self, cameras: list[ResolvedCamera], source_factory: SourceFactory | None,
        stall_timeout: float,
    ) -> ProcessPool:  # fmt: skip
        hooks = _Hooks(
            detector=self.batcher, sink=self.sink, counts=self._count,
            on_counts=self._publish_counts, on_online=self._online, recorders=self.recorders,
            queue_depth=self._queue_depth,
        )  # fmt: skip
        batcher = self.batcher
        model = (
            None if batcher is None
            else (list(batcher.class_names), tuple(batcher.input_size))
        )  # fmt: skip
        return ProcessPool(
            cameras, self.processes, hooks, model,  # type: ignore[arg-type]
            stall_timeout=stall_timeout, source_factory=source_factory, backoff=self._backoff,
        )  # fmt: skip

    def worker_pids(self) -> list[int]:
        """Process ids of the worker processes (none in thread mode)."""
        return self.pool.pids() if self.pool is not None else []

    def _shared_detector(
        self, cameras: list[ResolvedCamera], detector: Detector | None,
        factory: DetectorFactory,
    ) -> BatchingDetector | None:  # fmt: skip
        """One batching detector for every camera with a model (none if all use motion)."""
        if all(c.detect.is_motion for c in cameras):
            return None
        models = [c for c in cameras if not c.detect.is_motion]
        if detector is not None:
            model = detector
        else:
            widened = shared_detect_config(self.config.detect, [c.detect for c in models])
            model = factory(self.config.model_copy(update={"detect": widened}))
        batching = self.config.detector
        return BatchingDetector(model, batching.max_batch, batching.max_wait_ms / 1000.0)

    def _sinks(self, extra: Sequence[EventSink]) -> list[EventSink]:
        sinks: list[EventSink] = []
        if self.db is not None:
            from vigil.store.sink import StoreEventSink

            self.store = StoreEventSink(self.db, self.root)
            sinks.append(self.store)
        if self.config.mqtt is not None:
            from vigil.alerts.mqtt import MqttSink

            self.mqtt = MqttSink(self.config.mqtt)
            self.mqtt.on_command = self._command
            sinks += [self.mqtt, SnapshotPublisher(self.config, self._send_snapshot)]
        if self.config.webhooks is not None:
            from vigil.alerts.webhook import WebhookSink

            sinks.append(WebhookSink(self.config.webhooks))
        return [*sinks, *extra, self.hub]

    def _recorder(self, camera: ResolvedCamera, stall_timeout: float) -> Recorder | None:
        record = camera.record
        inputs = [s for s in camera.sources if "record" in s.roles]
        if record.mode == "off" or not inputs:
            return None
        source = inputs[0]
        if source.url.lower().startswith("synthetic:"):
            # A synthetic scene has no encoded stream: there is nothing to record.
            log.warning("%s: %s is rendered, not encoded; not recording it", camera.name,
                        source.url)  # fmt: skip
            return None
        # A file stands for a camera: recorded in real time as it plays, once or looping.
        file_loop = None if is_network_url(source.url) else source.loop
        return Recorder(
            source.url, camera.name, self.root, mode=record.mode, pre_roll=record.pre_roll,
            post_roll=record.post_roll, segment_seconds=record.segment_seconds,
            options=dict(source.options), on_segment=self._segment_added,
            open_timeout=stall_timeout, read_timeout=stall_timeout,
            backoff=self._backoff() if file_loop is None else loop_backoff(),
            file_loop=file_loop,
        )  # fmt: skip

    # -- life cycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start every camera, recorder and the retention job; returns at once."""
        if self.started:
            return
        self.started = True
        self._register_cameras()
        for name, worker in self._local.items():
            self._spawn(f"camera-{name}", self._supervise, worker)
        if self.pool is not None:
            self.pool.start()
        for recorder in self.recorders.values():
            self._threads.append(recorder.start())
        if self.db is not None:
            self._spawn("retention", self._retention_loop)

    def _spawn(self, name: str, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _register_cameras(self) -> None:
        if self.db is not None:
            from vigil.store.repo import CameraRepo, EventRepo

            now = time.time()
            with self.db.session(immediate=True) as session:
                for name in self.workers:
                    CameraRepo(session).ensure(name)
                    # A crash (kill -9, power loss) left these open; nobody will end them.
                    closed = EventRepo(session).close_dangling(name, now)
                    if closed:
                        log.warning("%s: closed %d event(s) left open by an unclean stop",
                                    name, closed)  # fmt: skip
        self._announce()

    def _announce(self) -> None:
        if self.mqtt is None:
            return
        self._announce_lines()
        for name, worker in self.workers.items():
            self.mqtt.camera_online(name, False)
            self.mqtt.switch_state(name, "detection", worker.detection)
            recorder = self.recorders.get(name)
            if recorder is not None:
                self.mqtt.switch_state(name, "recording", recorder.enabled)

    def set_switch(self, camera: str, switch: str, on: bool) -> None:
        """Switch ``detection`` or ``recording`` of ``camera`` on or off (Home Assistant's
        switches, through MQTT) and report the state now in force."""
        if switch == "detection":
            self.workers[camera].set_detection(on)
            state = self.workers[camera].detection
        elif switch == "recording" and camera in self.recorders:
            self.recorders[camera].enabled = on
            state = self.recorders[camera].enabled
        else:
            raise VigilError(f"camera {camera!r} has no {switch!r} switch")
        log.info("%s: %s switched %s", camera, switch, "on" if state else "off")
        if self.mqtt is not None:
            self.mqtt.switch_state(camera, switch, state)

    def _command(self, camera: str, switch: str, on: bool) -> None:
        try:
            self.set_switch(camera, switch, on)
        except (KeyError, VigilError) as exc:
            log.warning("MQTT %s command for %s ignored: %s", switch, camera, exc)

    def _send_snapshot(self, camera: str, jpeg: bytes) -> None:
        if self.mqtt is not None:
            try:
                self.mqtt.publish_snapshot(camera, jpeg)
            except VigilError:
                log.debug("%s: MQTT sink closed", camera)

    def _supervise(self, worker: CameraWorker) -> None:
        """Run the worker's sessions until ``stop()``: retry and restart with backoff."""
        run_supervised(worker, self._stop, self._backoff())

    def stop(self, timeout: float = 15.0) -> None:
        """Graceful shutdown: close open events, finish segments, report cameras offline."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for worker in self._local.values():
            worker.stop()
        if self.pool is not None:
            # Workers first: their last events reach the sinks through this process.
            self.pool.stop(timeout)
        for recorder in self.recorders.values():
            recorder.close()
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if self.batcher is not None:
            self.batcher.close()
        if self.mqtt is not None:
            for name in self.workers:
                self._online(name, False)
        self.sink.close()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until ``stop()`` was called (True) or ``timeout`` passed (False)."""
        return self._stop.wait(timeout)

    # -- callbacks from the threads ---------------------------------------------------------

    def _count(self, hits: list[RuleEvent]) -> None:
        if self.mqtt is not None:
            try:
                self.mqtt.publish_rule_hits(hits[0].camera_id, hits)
            except VigilError:
                log.exception("%s: rule hits not published to MQTT", hits[0].camera_id)
        if self.store is None:
            return
        try:
            self.store.count(hits)
        except VigilError:
            log.exception("counts of %s were not stored", hits[0].camera_id)

    def _publish_counts(self, camera: str, counts: Mapping[str, Any]) -> None:
        if self.mqtt is not None:
            try:
                self.mqtt.publish_counts(camera, counts)
            except VigilError:
                log.exception("%s: counts not published to MQTT", camera)

    def _online(self, camera: str, online: bool) -> None:
        if self.mqtt is not None:
            try:
                self.mqtt.camera_online(camera, online)
            except VigilError:
                log.debug("%s: MQTT sink closed", camera)

    def _segment_added(self, info: SegmentInfo) -> None:
        if self.db is None:
            return
        from vigil.store.repo import SegmentRepo

        path = info.path.resolve().relative_to(self.root.resolve()).as_posix()
        with self.db.session(immediate=True) as session:
            SegmentRepo(session).add(camera=info.camera, path=path, start=info.start,
                                     end=info.end, size=info.size, sha256=info.sha256)

    # -- retention --------------------------------------------------------------------------

    def _retention_loop(self) -> None:
        interval = self.config.server.retention_interval
        while not self._stop.wait(interval):
            try:
                self.run_retention(time.time())
            except Exception:
                log.exception("retention run failed; retrying in %.0f s", interval)

    def run_retention(self, now: float) -> list[str]:
        """Delete what the retention policy says, never a locked segment; returns the paths.

        Rows are deleted first (``SegmentRepo.delete`` re-checks the lock in the same
        transaction), files after the commit: a crash in between leaves an orphan file, never
        a row that points at nothing.
        """
        from vigil.store.repo import SegmentRepo

        assert self.db is not None
        self.expire_snapshots(now)
        with self.db.session() as session:
            rows = SegmentRepo(session).list()
            metas = [SegmentMeta(r.id, r.camera, r.start, r.end, r.size, r.evidence_lock)
                     for r in rows]  # fmt: skip
        recordings = self.root / "recordings"
        free = _free_bytes(recordings)
        plan = plan_retention(metas, now, retention_policy(self.config), free_bytes=free)
        self.retention_warnings = plan.warnings
        for warning in plan.warnings:
            log.warning("retention: %s", warning)
        if not plan.delete:
            return []
        doomed = set(plan.delete)
        with self.db.session(immediate=True) as session:
            rows = SegmentRepo(session).delete([r.id for r in rows if r.id in doomed])
            deleted = [r.path for r in rows]
        _unlink_all(self.root, deleted)
        return deleted

    def expire_snapshots(self, now: float) -> list[str]:
        """Delete the snapshots of events that ended longer than their camera's
        ``record.max_age`` ago, unless the event is locked; returns the relative paths.
        Rows first, files after the commit, as for segments."""
        from vigil.store.repo import EventRepo

        assert self.db is not None
        paths: list[str] = []
        with self.db.session(immediate=True) as session:
            repo = EventRepo(session)
            for name in self.config.cameras:
                max_age = self.config.camera(name).record.max_age
                if max_age is not None:
                    paths.extend(repo.expire_snapshots(name, now - max_age))
        _unlink_all(self.root, paths)
        return paths

    def _queue_depth(self) -> int:
        return self.batcher.stats.queue_depth if self.batcher is not None else 0

    # -- RuntimeView ------------------------------------------------------------------------

    def cameras(self) -> list[CameraStatus]:
        return [self.workers[name].status() for name in sorted(self.workers)]

    def latest_frame(self, camera: str) -> ImageArray | None:
        worker = self.workers.get(camera)
        return None if worker is None else worker.latest_frame()

    def rules(self, camera: str) -> tuple[Zones, Lines]:
        return self.workers[camera].rules()

    def latest_tracks(self, camera: str) -> TrackSnapshot:
        worker = self.workers.get(camera)
        return TrackSnapshot() if worker is None else worker.latest_tracks()

    def counts(self, camera: str) -> dict[str, Any]:
        return self.workers[camera].counts()

    def update_rules(self, camera: str, zones: Zones, lines: Lines) -> None:
        """Apply new zones and lines to the running camera from its next frame."""
        self.workers[camera].update_rules(zones, lines)
        if self.mqtt is not None:
            try:
                self._announce_lines()
            except VigilError:
                log.exception("MQTT discovery was not updated")

    def _announce_lines(self) -> None:
        """Home Assistant discovery of every camera: occupancy per label, counts per line,
        activity, presence and zone binary sensors, crossing and entry events, the snapshot
        camera, the detection switch and, for a recording camera, the recording switch."""
        from vigil.alerts.mqtt import CameraDiscovery

        cameras = {}
        for name, worker in self.workers.items():
            zones, lines = worker.rules()
            switches = ("detection", "recording") if name in self.recorders else ("detection",)
            cameras[name] = CameraDiscovery(
                labels=worker.camera.detect.labels, lines=list(lines), zones=list(zones),
                activity=True, snapshot=True, switches=switches,
            )  # fmt: skip
        self.mqtt.announce(cameras)

    def subscribe(self) -> AsyncIterator[dict[str, Any]]:
        return self.hub.subscribe()


def _unlink_all(root: Path, paths: Sequence[str]) -> None:
    """Delete ``root / rel`` for each path; a file already gone is fine, others are logged."""
    for rel in paths:
        try:
            (root / rel).unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("retention: cannot delete %s: %s", rel, exc)


def _free_bytes(path: Path) -> int | None:
    import shutil

    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None
