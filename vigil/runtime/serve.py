"""``Supervisor``: the composition root behind ``vigil serve``.

::

    cameras ─► camera backend ─────────► BatchingDetector (one per model) ┐
       │            │ events                                           │
       │            ▼                                                  │
       │       FanoutSink: store · MQTT · webhooks · live subscribers  │
       └─► Recorder threads (stream copy) ─► segments ─► store ─► retention thread

A camera backend (``vigil.runtime.backend``: threads of this process, or worker processes,
per ``server.backend``) analyses each camera's ``detect`` input; one ``Recorder`` thread per
camera records its ``record`` input by stream copy (never decoded). A camera that crashed or
cannot be opened is retried with exponential backoff and reported in its status; a dead
camera never stops the others. ``stop()`` is graceful: the cameras close their open events,
then the recorders finish their segments, MQTT reports the cameras offline.

The supervisor implements ``vigil.runtime.view.RuntimeView`` for the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Container, Hashable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from vigil import clock
from vigil.alerts.fanout import FanoutSink
from vigil.config.models import (
    DetectConfig,
    LineConfig,
    ResolvedCamera,
    SourceConfig,
    VigilConfig,
    ZoneConfig,
    rule_names_problem,
)
from vigil.detect.base import Detector
from vigil.errors import ConfigError, VigilError
from vigil.events.sinks import EventSink, event_to_dict
from vigil.ingest import Backoff
from vigil.ingest.base import is_network_url
from vigil.ingest.pacing import loop_backoff
from vigil.record import CameraRetention, Recorder, RetentionPolicy, SegmentInfo, SegmentMeta
from vigil.record.copyfeed import CopyReader
from vigil.record.derived import Span, delete_derived, plan_derived, scan_derived
from vigil.record.previews import PreviewSet
from vigil.record.quarantine import QUARANTINE
from vigil.record.recorder import RecorderState
from vigil.record.recovery import recover
from vigil.record.retention import (
    DerivedFolders,
    RetentionJob,
    SegmentFile,
    prune_empty_dirs,
    snapshot_ages,
)
from vigil.record.tap import PacketTap
from vigil.record.unindexed import UnindexedJournal, orphan_journals, reindex
from vigil.runtime.backend import (
    BackendHooks,
    CameraBackend,
    CameraHandle,
    RemoteRecording,
    resolve_backend,
)
from vigil.runtime.batcher import BatchingDetector
from vigil.runtime.previews import PreviewTaker
from vigil.runtime.procs import ProcessPool
from vigil.runtime.telemetry import DeliveryHealth, RuntimeMetrics, Telemetry
from vigil.runtime.threads import ThreadBackend
from vigil.runtime.view import CameraStatus, TrackSnapshot
from vigil.runtime.worker import SourceFactory
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


def cluster_detect_configs(cameras: Sequence[ResolvedCamera]) -> dict[str, DetectConfig]:
    """Each camera with a model, by name, with the settings of the model it shares: the
    cameras of equal ``model_settings`` are one group (one detector actor per node and
    group on a Ray cluster), whose model runs with the group's widened labels and
    confidence (``shared_detect_config``). Motion cameras have none."""
    groups: dict[tuple[tuple[str, object], ...], list[ResolvedCamera]] = {}
    for camera in cameras:
        if not camera.detect.is_motion:
            groups.setdefault(camera.detect.model_settings, []).append(camera)
    by_camera: dict[str, DetectConfig] = {}
    for members in groups.values():
        widened = shared_detect_config(members[0].detect, [c.detect for c in members])
        by_camera.update((c.name, widened) for c in members)
    return by_camera


def shared_detect_config(base: DetectConfig, cameras: Sequence[DetectConfig]) -> DetectConfig:
    """The settings of one shared model: ``base`` (the ``detect`` section of one of the
    cameras sharing it: they agree on ``model_settings``) with the
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
        reserve_seconds=config.server.free_space_reserve or None,
        export_max_age=config.server.export_max_age,
    )  # fmt: skip


class ClipFlags:
    """Marks each event with ``has_clip`` (its camera records) before every sink sees it,
    so that MQTT, webhooks and the WebSocket tell what REST tells. ``recorders``: the
    recording cameras (the recorders by name, or the names of cameras recorded elsewhere)."""

    def __init__(self, sink: FanoutSink, recorders: Container[str]) -> None:
        self.inner = sink
        self.recorders = recorders

    def publish(self, event: Event) -> None:
        event.has_clip = event.camera_id in self.recorders
        self.inner.publish(event)

    def close(self) -> None:
        self.inner.close()


class StoreCatalog:
    """The store's segments as a ``SegmentCatalog`` for the ``RetentionJob``: rows are
    deleted in one transaction that re-checks each evidence lock, before any file goes."""

    def __init__(self, db: Database, root: Path) -> None:
        self.db, self.root = db, root

    def segments(self) -> list[SegmentFile]:
        from vigil.store.repo import SegmentRepo

        with self.db.session() as session:
            return [SegmentFile(_meta(r), self.root / r.path) for r in SegmentRepo(session).list()]

    def remove(self, ids: Sequence[Hashable]) -> list[SegmentFile]:
        from vigil.store.repo import SegmentRepo

        wanted = [int(i) for i in ids if isinstance(i, int)]
        with self.db.session(immediate=True) as session:
            rows = SegmentRepo(session).delete(wanted)
            return [SegmentFile(_meta(r), self.root / r.path) for r in rows]


def _meta(row: Any) -> SegmentMeta:
    # A segment's previews are part of what it costs on disk (quotas, free space).
    size = row.size + (row.preview_bytes or 0)
    return SegmentMeta(row.id, row.camera, row.start, row.end, size, row.evidence_lock)


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
        detector: one detector for every camera with a model, instead of building theirs.
        detector_factory: builds a model from a configuration whose ``detect`` is one model's
            settings (``shared_detect_config`` of the cameras using it); called once per
            distinct ``DetectConfig.model_settings`` of the cameras.
        source_factory: how workers open their analysis stream.
        backoff: a fresh ``Backoff`` per camera, for restarts of workers and recorders.
        stall_timeout: seconds without a frame after which a network camera reconnects.
        worker_processes: overrides ``server.backend`` and ``server.worker_processes``: 0
            analyses every camera in a thread of this process; n > 0 in n spawned worker
            processes (``procs``), where ``source_factory`` and ``backoff`` must be picklable.
        cluster_backend: the Ray backend (``vigil.cluster.backend.RayBackend``) for
            ``server.backend: ray``. Given by the caller (``vigil serve``): the cluster
            package sits above the runtime, which never imports it.
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
        cluster_backend: Callable[..., CameraBackend] | None = None,
    ) -> None:
        self.config = config
        self._cluster_backend = cluster_backend
        self.db = db
        self.root = Path(config.data_dir)
        self._backoff = backoff
        self._stop = threading.Event()
        #: Set to run retention now (a recorder found the disk full), not at the next interval.
        self._retention_now = threading.Event()
        self._threads: list[threading.Thread] = []
        self.started = False
        cameras = [config.camera(n) for n in config.cameras if config.cameras[n].enabled]
        self.kind, self.processes = resolve_backend(config.server, len(cameras), os.cpu_count(),
                                                    worker_processes=worker_processes)  # fmt: skip
        #: Cameras run on cluster nodes, which record, store and keep their own files: this
        #: process neither records nor writes what the nodes write.
        self.clustered = self.kind == "ray"
        #: The batching detectors, one per distinct model; ``detectors`` says whose is whose.
        self.batchers: list[BatchingDetector] = []
        self.detectors: dict[str, BatchingDetector] = (
            {} if self.clustered else self._shared_detectors(cameras, detector, detector_factory)
        )
        self.hub = LiveHub()
        self.telemetry = Telemetry(c.name for c in cameras)
        self.started_at = time.time()
        self.store: Any = None
        self.mqtt: Any = None
        #: The sinks that publish for the cluster's supervisor (MQTT, its snapshots,
        #: webhooks, ``start_alerts``' extras): what ``stop_alerts`` takes away.
        self._alerting: list[EventSink] = []
        self.recorders: dict[str, Recorder] = {}
        self.webhooks: Any = None
        #: The cameras that record on the cluster's nodes (none but in cluster mode).
        self.recorded_remotely = frozenset(
            c.name for c in cameras if self.clustered and record_input(c) is not None
        )
        recording = self.recorded_remotely if self.clustered else self.recorders
        self.sink = ClipFlags(FanoutSink(self._sinks(sinks)), recording)
        for camera in cameras if not self.clustered else ():
            recorder = self._recorder(camera, stall_timeout)
            if recorder is not None:
                self.recorders[camera.name] = recorder
        #: The process backend when cameras run in worker processes, else None: for tests and
        #: benchmarks that look at the processes; the supervisor itself uses ``backend``.
        self.pool: ProcessPool | None = None
        self.backend = self._backend(cameras, source_factory, stall_timeout)
        self.workers: Mapping[str, CameraHandle] = self.backend.handles
        self.retention_warnings: list[str] = []
        #: The recording cameras' redacted timeline previews (``vigil.runtime.previews``).
        #: Only with a database: the segments' rows are the previews' index.
        self.previews = PreviewTaker(
            config, self.workers, self.recorders if db is not None else {}, self.root
        )

    # -- composition ------------------------------------------------------------------------

    def _backend(
        self, cameras: list[ResolvedCamera], source_factory: SourceFactory | None,
        stall_timeout: float,
    ) -> CameraBackend:  # fmt: skip
        """The camera backend that ``server.backend`` asks for (the only place that knows
        the backends apart)."""
        kind = self.kind
        hooks = BackendHooks(
            detectors=self.detectors, sink=self.sink, counts=self._count,
            on_counts=self._publish_counts, on_online=self._online, recorders=self.recorders,
            queue_depth=self._queue_depth, delivery=self.sink.inner,
        )  # fmt: skip
        if kind == "ray":
            return self._ray_backend(cameras, hooks, source_factory, stall_timeout)
        if kind == "threads":
            return ThreadBackend(cameras, hooks, source_factory=source_factory,
                                 stall_timeout=stall_timeout, backoff=self._backoff)  # fmt: skip
        models = {
            name: (list(batcher.class_names), (batcher.input_size[0], batcher.input_size[1]))
            for name, batcher in self.detectors.items()
        }  # fmt: skip
        self.pool = ProcessPool(
            cameras, self.processes, hooks, models, stall_timeout=stall_timeout,
            source_factory=source_factory, backoff=self._backoff,
        )  # fmt: skip
        return self.pool

    def _ray_backend(
        self, cameras: list[ResolvedCamera], hooks: BackendHooks,
        source_factory: SourceFactory | None, stall_timeout: float,
    ) -> CameraBackend:  # fmt: skip
        """Cameras as actors on the cluster: they write to the database themselves, so it
        must be one every node reaches."""
        if self.db is None or self.db.backend != "postgresql":
            raise ConfigError(cluster_database_error())
        if self._cluster_backend is None:
            raise VigilError("server.backend is 'ray' but no cluster backend was given: pass "
                             "cluster_backend=vigil.cluster.backend.RayBackend")  # fmt: skip
        return self._cluster_backend(
            cameras, hooks, self.config, database_url=self.db.url,
            detect=cluster_detect_configs(cameras),
            stall_timeout=stall_timeout, source_factory=source_factory, backoff=self._backoff,
        )  # fmt: skip

    def worker_pids(self) -> list[int]:
        """Process ids of the worker processes (none in thread mode)."""
        return self.backend.pids()

    def _shared_detectors(
        self, cameras: list[ResolvedCamera], detector: Detector | None,
        factory: DetectorFactory,
    ) -> dict[str, BatchingDetector]:  # fmt: skip
        """One batching detector per distinct model (``DetectConfig.model_settings``), by
        camera: cameras with equal model settings share it and batch together, each gets
        its own model otherwise (none for a camera on the motion detector). ``detector``,
        when given, is the one model of every camera."""
        groups: dict[tuple[tuple[str, object], ...], list[ResolvedCamera]] = {}
        for camera in cameras:
            if not camera.detect.is_motion:
                key = () if detector is not None else camera.detect.model_settings
                groups.setdefault(key, []).append(camera)
        batching = self.config.detector
        by_camera: dict[str, BatchingDetector] = {}
        for members in groups.values():
            if detector is not None:
                model = detector
            else:
                # The group's own settings, loosened to every member's labels and confidence.
                widened = shared_detect_config(members[0].detect, [c.detect for c in members])
                model = factory(self.config.model_copy(update={"detect": widened}))
            batcher = BatchingDetector(model, batching.max_batch, batching.max_wait_ms / 1000.0)
            self.batchers.append(batcher)
            by_camera.update((c.name, batcher) for c in members)
        return by_camera

    @property
    def batcher(self) -> BatchingDetector | None:
        """The first model's batching detector (the only one when every camera shares one
        model), None when every camera uses motion; ``batchers`` holds them all."""
        return self.batchers[0] if self.batchers else None

    def _sinks(self, extra: Sequence[EventSink]) -> list[EventSink]:
        sinks: list[EventSink] = []
        if self.db is not None and not self.clustered:  # nodes store their cameras' events
            from vigil.store.sink import StoreEventSink

            self.store = StoreEventSink(self.db, self.root)
            sinks.append(self.store)
        sinks += self._alert_sinks()
        return [*sinks, *extra, self.telemetry, self.hub]

    def _alert_sinks(self) -> list[EventSink]:
        """MQTT (with its snapshot publisher) and webhooks, as the configuration has them."""
        sinks: list[EventSink] = []
        if self.config.mqtt is not None:
            from vigil.alerts.mqtt import MqttSink

            self.mqtt = MqttSink(self.config.mqtt)
            self.mqtt.on_command = self._command
            sinks += [self.mqtt, SnapshotPublisher(self.config, self._send_snapshot)]
        if self.config.webhooks is not None:
            from vigil.alerts.webhook import WebhookSink

            self.webhooks = WebhookSink(self.config.webhooks)
            sinks.append(self.webhooks)
        self._alerting += sinks
        return sinks

    def start_alerts(self, config: VigilConfig, extra: Sequence[EventSink] = ()) -> None:
        """Start publishing to ``config``'s MQTT and webhooks (and to ``extra`` sinks) from
        now on: an API replica runs without them (the head publishes), and one that takes
        over supervision (``vigil.cluster.leader``) must publish in the head's place. Home
        Assistant then hears the cameras' discovery, switches and whether each is online."""
        added = [sink for sink in extra if sink not in self._alerting]
        self._alerting += added
        if self.mqtt is None and self.webhooks is None:
            self.config = self.config.model_copy(
                update={"mqtt": config.mqtt, "webhooks": config.webhooks}
            )
            added = [*self._alert_sinks(), *added]
        else:
            config = self.config  # publishing already
        self.sink.inner.add(added)
        if self.mqtt is not None and config.mqtt is not None and self.mqtt in added:
            self._announce()
            for name, handle in self.workers.items():
                self._online(name, handle.status().online)

    def stop_alerts(self) -> None:
        """Stop publishing (``start_alerts`` undone): this process no longer supervises the
        cluster, another one publishes. MQTT disconnects without marking Vigil or the
        cameras offline (they are not: the new supervisor says so); webhooks deliver what
        they hold, within their close timeout (then dead-letter it)."""
        sinks, self._alerting = self._alerting, []
        mqtt, self.mqtt, self.webhooks = self.mqtt, None, None
        self.sink.inner.remove(sinks)
        for sink in sinks:
            try:
                if sink is not mqtt:
                    sink.close()
            except Exception:  # each one closed whatever happened to another
                log.exception("%s not closed cleanly", type(sink).__name__)
        if mqtt is not None:
            mqtt.close(offline=False)

    @property
    def supervising(self) -> bool | None:
        """On a cluster, whether this process supervises its cameras (the camera backend
        leads: ``vigil.cluster.backend.RayBackend.leading``); None on a single host."""
        if not self.clustered:
            return None
        return bool(getattr(self.backend, "leading", False))

    def _recorder(self, camera: ResolvedCamera, stall_timeout: float) -> Recorder | None:
        return build_recorder(camera, self.root, on_segment=self._segment_added,
                              on_state=self._recording_state, backoff=self._backoff,
                              stall_timeout=stall_timeout)  # fmt: skip

    # -- life cycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start every camera, recorder and the retention job; returns at once."""
        if self.started:
            return
        self.started = True
        self.started_at = time.time()
        self._register_cameras()
        if not self.clustered:  # a node cleans its own data dir, camera by camera
            self._recover()
        self.backend.start()
        for recorder in self.recorders.values():
            self._threads.append(recorder.start())
        if self.previews.start() is not None:
            log.info(
                "previews: %s",
                ", ".join(f"{c} every {s:g} s" for c, s in self.previews.interval.items()),
            )
        if self.db is not None:
            # On a cluster the nodes age their own recordings (NodeRetention); the head
            # still ages the exports and cached clips it made itself.
            self._spawn("retention", self._retention_loop)

    def _recover(self) -> None:
        """Before any recorder writes: recover or delete the partial segments and delete the
        temporary files an unclean stop left (``vigil.record.recovery``)."""
        try:
            recover(self.root, self._segment_added if self.db is not None else None)
        except Exception:  # a clean-up must never keep the cameras from starting
            log.exception("start-up clean-up of %s failed", self.root)
        self.reindex_unindexed()

    def reindex_unindexed(self) -> int:
        """Index the segments the recorders gave up on (``vigil.record.unindexed``: their
        journals, not the archive), at start and at every retention pass, also those of camera
        folders that no recorder here owns (``orphan_journals``); returns how many were
        indexed. One camera's failure leaves the others' to run."""
        if self.db is None:
            return 0
        journals = [r.segmenter.journal for r in self.recorders.values()]
        # And those of camera folders no recorder here owns (removed from the configuration,
        # or no longer recorded): nothing else would ever index them.
        journals += orphan_journals(self.root / "recordings", self.recorders)
        done = 0
        for journal in journals:
            if journal.count == 0:
                journal.drop_if_empty()
                continue  # the usual case: nothing read, nothing written
            try:
                done += len(reindex(journal, self.root, self._reindex_segment,
                                    self._segment_stored).indexed)  # fmt: skip
            except Exception:
                log.exception("%s: unindexed segments were not indexed", journal.folder.name)
        return done

    def _reindex_segment(self, info: SegmentInfo) -> None:
        assert self.db is not None
        # No previews: they are taken while a segment records, and this one is long done.
        index_segment(self.db, self.root, info, self.recorders.get(info.camera))

    def _segment_stored(self, info: SegmentInfo) -> bool:
        assert self.db is not None
        return segment_stored(self.db, self.root, info)

    def _spawn(self, name: str, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _register_cameras(self) -> None:
        if self.db is not None:
            from vigil.store.repo import CameraRepo, EventRepo

            now = time.time()
            switches: dict[str, dict[str, bool]] = {}
            with self.db.session(immediate=True) as session:
                for name in self.workers:
                    CameraRepo(session).ensure(name)
                    switches[name] = CameraRepo(session).switches(name)
                    if self.clustered:
                        # The camera's actor closes its own at each (re)start; one that a
                        # head before this one left running has them open still.
                        continue
                    # A crash (kill -9, power loss) left these open; nobody will end them.
                    closed = EventRepo(session).close_dangling(name, now)
                    if closed:
                        log.warning("%s: closed %d event(s) left open by an unclean stop",
                                    name, closed)  # fmt: skip
            self._restore_switches(switches)
        self._announce()

    def _restore_switches(self, switches: Mapping[str, Mapping[str, bool]]) -> None:
        """Before the cameras start: the switches as they were last set (a camera switched
        off in Home Assistant stays off across a restart); ``_announce`` then publishes
        them."""
        for name, states in switches.items():
            for switch, on in states.items():
                if on:
                    continue  # on is how every camera starts
                if switch == "detection":
                    self.workers[name].set_detection(False)
                elif switch == "recording" and name in self.recorders:
                    self.recorders[name].enabled = False
                log.info("%s: %s is off, as it was switched before the restart", name, switch)

    def _announce(self) -> None:
        if self.mqtt is None:
            return
        self._announce_lines()
        for name, worker in self.workers.items():
            self.mqtt.camera_online(name, False)
            self.mqtt.switch_state(name, "detection", worker.detection)
            recording = self._recording_switch(name)
            if recording is not None:
                self.mqtt.switch_state(name, "recording", recording)

    def _recording_switch(self, camera: str) -> bool | None:
        """The recording switch of ``camera`` (its recorder here, or its handle when it
        records on a cluster node); None when it records nothing."""
        recorder = self.recorders.get(camera)
        if recorder is not None:
            return recorder.enabled
        handle = self.workers.get(camera)
        if camera in self.recorded_remotely and isinstance(handle, RemoteRecording):
            return handle.recording
        return None

    def switches(self, camera: str) -> dict[str, bool]:
        """``detection`` and, for a camera recorded here, ``recording``, with their states;
        ``KeyError`` for an unknown camera."""
        states = {"detection": self.workers[camera].detection}
        recorder = self.recorders.get(camera)
        if recorder is not None:
            states["recording"] = recorder.enabled
        return states

    def set_switch(self, camera: str, switch: str, on: bool) -> None:
        """Switch ``detection`` or ``recording`` of ``camera`` on or off (Home Assistant's
        switches, through MQTT), keep the state in the database for the next start, and
        report the state now in force."""
        if switch == "detection":
            self.workers[camera].set_detection(on)
            state = self.workers[camera].detection
        elif switch == "recording" and camera in self.recorders:
            self.recorders[camera].enabled = on
            state = self.recorders[camera].enabled
        elif switch == "recording" and isinstance(remote := self.workers.get(camera),
                                                  RemoteRecording) \
                and camera in self.recorded_remotely:  # fmt: skip
            remote.set_recording(on)  # to its actor, wherever it runs
            state = remote.recording
        else:
            raise VigilError(f"camera {camera!r} has no {switch!r} switch")
        log.info("%s: %s switched %s", camera, switch, "on" if state else "off")
        self._keep_switch(camera, switch, state)
        if self.mqtt is not None:
            self.mqtt.switch_state(camera, switch, state)

    def _keep_switch(self, camera: str, switch: str, on: bool) -> None:
        """The new state into the database, for the next start; the switch is in force
        already, so a database that fails only costs the memory of it (logged)."""
        if self.db is None:
            return
        from vigil.store.repo import CameraRepo

        try:
            with self.db.session(immediate=True) as session:
                CameraRepo(session).set_switch(camera, switch, on)
        except VigilError:
            log.exception("%s: the %s switch was not stored; after a restart it is as "
                          "it was before", camera, switch)  # fmt: skip

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

    def stop(self, timeout: float = 15.0) -> None:
        """Graceful shutdown: close open events, finish segments, report cameras offline."""
        self._stop.set()
        self._retention_now.set()
        deadline = time.monotonic() + timeout
        # Cameras first: their last events and activity reach the sinks and recorders here.
        self.backend.stop()
        self.backend.close(timeout)
        self.previews.close()
        for recorder in self.recorders.values():
            recorder.close()
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        for batcher in self.batchers:
            batcher.close()
        if self.mqtt is not None:
            for name in self.workers:
                self._online(name, False)
        self.sink.close()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until ``stop()`` was called (True) or ``timeout`` passed (False)."""
        return self._stop.wait(timeout)

    # -- callbacks from the threads ---------------------------------------------------------

    def _count(self, hits: list[RuleEvent]) -> None:
        self.telemetry.count_hits(hits)
        mqtt = self.mqtt  # once: a step-down may take it away meanwhile
        if mqtt is not None:
            try:
                mqtt.publish_rule_hits(hits[0].camera_id, hits)
            except VigilError:
                log.exception("%s: rule hits not published to MQTT", hits[0].camera_id)
        if self.store is None:
            return
        try:
            self.store.count(hits)
        except VigilError:
            log.exception("counts of %s were not stored", hits[0].camera_id)

    def _publish_counts(self, camera: str, counts: Mapping[str, Any]) -> None:
        mqtt = self.mqtt  # once: a step-down may take it away meanwhile
        if mqtt is not None:
            try:
                mqtt.publish_counts(camera, counts)
            except VigilError:
                log.exception("%s: counts not published to MQTT", camera)

    def _online(self, camera: str, online: bool) -> None:
        self.telemetry.online(camera, online)
        mqtt = self.mqtt  # once: a step-down may take it away meanwhile
        if mqtt is not None:
            try:
                mqtt.camera_online(camera, online)
            except VigilError:
                log.debug("%s: MQTT sink closed", camera)

    def _recording_state(self, camera: str, state: RecorderState, error: str | None) -> None:
        """A recorder's state changed (recording thread): MQTT hears it; a storage failure
        runs retention at once, so the free-space rule makes room without waiting."""
        if state == "failed" and self.db is not None:
            self._retention_now.set()
        mqtt = self.mqtt  # once: a step-down may take it away meanwhile
        if mqtt is not None:
            try:
                mqtt.camera_recording(camera, state, error)
            except VigilError:
                log.debug("%s: MQTT sink closed", camera)

    def _segment_added(self, info: SegmentInfo) -> None:
        if self.db is not None:
            index_segment(self.db, self.root, info, self.recorders.get(info.camera),
                          previews=self.previews.save(info))  # fmt: skip

    # -- retention --------------------------------------------------------------------------

    def _retention_loop(self) -> None:
        interval = self.config.server.retention_interval
        while True:
            self._retention_now.wait(interval)
            self._retention_now.clear()
            if self._stop.is_set():
                return
            try:
                # Not time.time(): a forward jump of the host clock would age every
                # recording at once (vigil.clock absorbs it).
                if self.clustered:
                    self.run_derived_retention(clock.now())
                else:
                    self.run_retention(clock.now())
            except Exception:
                log.exception("retention run failed; retrying in %.0f s", interval)

    def run_retention(self, now: float) -> list[str]:
        """Apply the retention policy with the ``RetentionJob`` (never a locked segment);
        returns the paths (relative to ``data_dir``) of the segments removed.

        Rows are deleted first (``SegmentRepo.delete`` re-checks the lock in the same
        transaction), files after the commit, then the folders left empty: a crash in between
        leaves an orphan file, never a row that points at nothing.
        """
        assert self.db is not None
        # First the segments the recorders gave up on: indexed now, aged with the others.
        self.reindex_unindexed()
        self.expire_snapshots(now)
        recordings = self.root / "recordings"
        derived = DerivedFolders(self.root / "exports", self.root / "clips")
        job = RetentionJob(StoreCatalog(self.db, self.root), retention_policy(self.config),
                           recordings, derived=derived,
                           quarantine=self.root / QUARANTINE)  # fmt: skip
        result = job.run(now)
        self.retention_warnings = result.warnings
        gone = set(result.deleted) | set(result.missing)
        return [f.path.relative_to(self.root).as_posix() for f in result.removed
                if f.meta.id in gone]  # fmt: skip

    def run_derived_retention(self, now: float) -> list[Path]:
        """The head's retention on a cluster: the exports and cached clips under this
        ``data_dir`` (made here by the API), by the rules of ``vigil.record.derived``; the
        nodes delete the segments themselves. Returns the files deleted.

        The head does not see which segments a node's retention removed, so a clip whose
        footage no stored segment overlaps any more counts as cut from removed recordings;
        a file whose footage overlaps a locked segment is held. One query per file: the
        clip cache is bounded (``clip_cache_bytes``), exports are few.
        """
        from vigil.store.repo import SegmentRepo

        assert self.db is not None
        found = scan_derived(self.root / "exports", self.root / "clips")
        locked: list[Span] = []
        removed: list[Span] = []
        with self.db.session() as session:
            repo = SegmentRepo(session)
            for span in {f.footage for f in found if f.footage is not None}:
                rows = repo.list(*span)
                if not rows:
                    removed.append(span)
                elif any(row.evidence_lock for row in rows):
                    locked.append(span)
        policy = retention_policy(self.config)
        doomed = plan_derived(
            found, now, export_max_age=policy.export_max_age,
            clip_max_age=lambda camera: policy.for_camera(camera).max_age,
            locked=locked, removed=removed,  # (plan_derived: only clips go with recordings)
        )  # fmt: skip
        return delete_derived(doomed)

    def expire_snapshots(self, now: float) -> list[str]:
        """Delete the snapshots of events that ended longer than their camera's
        ``record.max_age`` ago, unless the event is locked; returns the relative paths.
        Cameras no longer configured expire by the default ``record`` limits. Rows first,
        files after the commit, as for segments."""
        from vigil.store.repo import EventRepo

        assert self.db is not None
        paths: list[str] = []
        with self.db.session(immediate=True) as session:
            repo = EventRepo(session)
            cameras = set(self.config.cameras) | set(repo.snapshot_cameras())
            ages = snapshot_ages(retention_policy(self.config), cameras)
            for name, max_age in sorted(ages.items()):
                paths.extend(repo.expire_snapshots(name, now - max_age))
        _unlink_all(self.root, paths)
        for rel in paths:
            prune_empty_dirs((self.root / rel).parent, self.root / "snapshots")
        return paths

    def _queue_depth(self, camera: str) -> int:
        batcher = self.detectors.get(camera)
        return batcher.stats.queue_depth if batcher is not None else 0

    # -- RuntimeView ------------------------------------------------------------------------

    def cameras(self) -> list[CameraStatus]:
        return [self._with_recording(self.workers[name].status()) for name in sorted(self.workers)]

    def _with_recording(self, status: CameraStatus) -> CameraStatus:
        """The worker's status plus its recorder's (the recorders live in this process)."""
        recorder = self.recorders.get(status.name)
        if recorder is None:
            return status
        state, error = recorder.status()
        return dataclasses.replace(
            status,
            recording=state,
            recording_error=error,
            segments_unindexed=recorder.segmenter.given_up,
        )

    def packet_tap(self, camera: str) -> PacketTap | None:
        """The recorded video packets of ``camera`` (``PacketTaps``): its recorder's tap. The
        recorders run in this process with every backend but Ray (there, on the nodes)."""
        recorder = self.recorders.get(camera)
        return None if recorder is None else recorder.tap

    def copy_feed(self, camera: str) -> CopyReader | None:
        """The copy feed of a camera recorded on a cluster node (``CopyFeeds``): its actor's,
        read through its handle (``RayCamera.copy_feed``). None with the other backends,
        whose recorders are here (``packet_tap``)."""
        make = getattr(self.workers.get(camera), "copy_feed", None)
        return None if make is None else cast("CopyReader | None", make())

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
        if (problem := rule_names_problem(camera, zones, lines)) is not None:
            raise ConfigError(problem)  # its counts could never be stored
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
            records = self._recording_switch(name) is not None
            switches = ("detection", "recording") if records else ("detection",)
            cameras[name] = CameraDiscovery(
                labels=worker.camera.detect.labels, lines=list(lines), zones=list(zones),
                activity=True, snapshot=True, switches=switches,
            )  # fmt: skip
        self.mqtt.announce(cameras)

    def subscribe(self) -> AsyncIterator[dict[str, Any]]:
        return self.hub.subscribe()

    def _moves(self) -> dict[tuple[str, str], int] | None:
        """On a Ray cluster, failovers and rebalancing moves by camera (the backend's
        records since this head started); None for the other backends."""
        failovers = getattr(self.backend, "failovers", None)
        rebalanced = getattr(self.backend, "rebalanced", None)
        if failovers is None or rebalanced is None:
            return None
        moves = {(name, kind): 0 for name in self.workers for kind in ("failover", "rebalanced")}
        for kind, records in (("failover", list(failovers)), ("rebalanced", list(rebalanced))):
            for record in records:
                moves[(record.camera, kind)] = moves.get((record.camera, kind), 0) + 1
        return moves

    def metrics(self) -> RuntimeMetrics:
        """Counters for ``/metrics`` (``vigil.api.metrics.MetricsView``); cheap, any thread."""
        mqtt = webhooks = None
        if self.mqtt is not None:
            m = self.mqtt.stats
            mqtt = DeliveryHealth(m.connected, m.delivered, m.dropped, m.queued)
        if self.webhooks is not None:
            w = self.webhooks.stats
            # Dropped deliveries are dead-lettered too: ``dead_letters`` counts them.
            webhooks = DeliveryHealth(None, w.delivered, w.dead_letters, w.queued)
        # A recorder's first connection is no reconnect.
        record = {name: max(0, r.connections - 1) for name, r in self.recorders.items()}
        snapshot = self.telemetry.snapshot(self.started_at, record_reconnects=record, mqtt=mqtt,
                                           webhooks=webhooks)  # fmt: skip
        moves = self._moves()
        if moves is not None:
            snapshot = dataclasses.replace(snapshot, moves=moves)
        snapshot = dataclasses.replace(snapshot, supervising=self.supervising)
        if self.store is None:
            return snapshot
        b = self.store.backlog.stats
        return dataclasses.replace(snapshot, store=DeliveryHealth(None, b.late, b.dropped,
                                                                  b.queued))  # fmt: skip


def cluster_database_error() -> str:
    return (
        "server.backend 'ray' needs PostgreSQL: every node writes its cameras' events, "
        "counts and segments to one database, and SQLite is a file on one machine; set "
        "database_url: postgresql://USER:PASSWORD@HOST/DB"
    )


def record_input(camera: ResolvedCamera) -> SourceConfig | None:
    """The input ``camera`` records, or None when it records nothing (mode ``off``, no
    ``record`` input, or a rendered ``synthetic:`` scene, which has no encoded stream)."""
    inputs = [s for s in camera.sources if "record" in s.roles]
    if camera.record.mode == "off" or not inputs:
        return None
    if inputs[0].url.lower().startswith("synthetic:"):
        return None
    return inputs[0]


def build_recorder(
    camera: ResolvedCamera, root: Path, *, on_segment: Callable[[SegmentInfo], None],
    on_state: Callable[[str, RecorderState, str | None], None] | None,
    backoff: Callable[[], Backoff], stall_timeout: float,
) -> Recorder | None:  # fmt: skip
    """The ``Recorder`` of ``camera`` under ``root`` (a data dir), or None when it records
    nothing; the Supervisor's and a cluster camera actor's (on its node's data dir)."""
    record = camera.record
    source = record_input(camera)
    if source is None or record.mode == "off":
        rendered = [s.url for s in camera.sources if "record" in s.roles]
        if record.mode != "off" and rendered:
            # A synthetic scene has no encoded stream: there is nothing to record.
            log.warning("%s: %s is rendered, not encoded; not recording it", camera.name,
                        rendered[0])  # fmt: skip
        return None
    # A file stands for a camera: recorded in real time as it plays, once or looping.
    file_loop = None if is_network_url(source.url) else source.loop
    return Recorder(
        source.url, camera.name, root, mode=record.mode, pre_roll=record.pre_roll,
        post_roll=record.post_roll, segment_seconds=record.segment_seconds,
        options=dict(source.options), on_segment=on_segment,
        open_timeout=stall_timeout, read_timeout=stall_timeout,
        backoff=backoff() if file_loop is None else loop_backoff(),
        file_loop=file_loop, on_state=on_state,
    )  # fmt: skip


def index_segment(
    db: Database, root: Path, info: SegmentInfo, recorder: Recorder | None, *,
    node: str | None = None, previews: PreviewSet | None = None,
) -> None:  # fmt: skip
    """Give a finished segment of ``root`` (the data dir holding it; of ``node`` in a
    cluster) its row, with the motion its recorder was told of and its ``previews``."""
    from vigil.store.repo import SegmentRepo

    path = info.path.resolve().relative_to(root.resolve()).as_posix()
    motion = recorder.motion if recorder is not None else None
    moved = motion is not None and motion.any(info.start, info.end)
    with db.session(immediate=True) as session:
        segments = SegmentRepo(session)
        segments.add(camera=info.camera, path=path, start=info.start, end=info.end,
                     size=info.size, sha256=info.sha256, has_motion=moved, node=node,
                     previews=previews.column() if previews else None,
                     preview_bytes=previews.size if previews else 0)  # fmt: skip
        if motion is not None:
            # Analysis runs behind the recording: motion reported since the previous
            # segment was indexed may belong to it.
            for start, end in motion.overlapping(info.start - 60.0, info.start):
                segments.mark_motion(info.camera, start, min(end, info.start))


def segment_stored(db: Database, root: Path, info: SegmentInfo, node: str | None = None) -> bool:
    """Whether ``info``'s file (under ``root``, of ``node`` in a cluster) has its row."""
    from vigil.store.repo import SegmentRepo

    path = info.path.resolve().relative_to(root.resolve()).as_posix()
    with db.session() as session:
        return SegmentRepo(session).stored_at(path, node)


def reindex_with(
    db: Database, root: Path, journal: UnindexedJournal, recorder: Recorder | None, *,
    node: str | None = None,
) -> int:  # fmt: skip
    """``reindex`` of ``journal``'s given-up segments straight into ``db`` (a cluster camera
    at its start: the node's writer answers later, the journal needs to know now); how many
    were indexed."""
    return len(reindex(
        journal, root, lambda info: index_segment(db, root, info, recorder, node=node),
        lambda info: segment_stored(db, root, info, node),
    ).indexed)  # fmt: skip


def _unlink_all(root: Path, paths: Sequence[str]) -> None:
    """Delete ``root / rel`` for each path; a file already gone is fine, others are logged."""
    for rel in paths:
        try:
            (root / rel).unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("retention: cannot delete %s: %s", rel, exc)
