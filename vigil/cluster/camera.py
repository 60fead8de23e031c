"""``CameraActor``: one camera on a cluster node, as a Ray actor.

::

    node (a camera slot)                                            head (Supervisor)
    CameraActor "vigil-camera:<name>"
      source ─► CameraWorker ─► CameraPipeline ─► events ─┬► the node's StoreWriter ─► PostgreSQL
                     │  (vigil.runtime.worker)             └► outbox ─── drain(after) ──► sinks:
                     └─► NodeDetector ─► the node's DetectorActor        MQTT, webhooks, live
      record input ─► Recorder ─► segments in the node's data dir ─► the node's StoreWriter

The actor owns everything the single-host runtime does for one camera: its analysis source and
``CameraWorker`` (the same pipeline, not a fork), its ``Recorder`` under the node's data dir
(``node_data_dir``), and the store writes to PostgreSQL: segments, events (with their
snapshots and the node's name) and counts through the node's ``StoreWriter``
(``vigil.cluster.writer``), which batches the writes of all the node's cameras. The actor
itself opens a database connection only at (re)start (to register its camera and close its
events left open, below) and closes it at once. What the head still needs (events for MQTT,
webhooks and the live WebSocket; rule hits for metrics and MQTT; availability and counts
changes) waits in a bounded *outbox* that the head drains: each item
has a sequence number, and ``drain(after, seen)`` drops what the head acknowledged and returns
what it has not had yet, so a drain whose answer got lost loses nothing. The head acknowledges
an item only once its sinks have taken it for good (``Delivery``: MQTT's broker confirmed it),
so a head that dies between a drain and the publish leaves the item for the next head. An
outbox the head does not drain keeps only the newest items (``outbox_size``): everything
that matters is in the database already.

On every (re)start, which on a node failure happens on another node, the actor first closes
the events its camera left open at their last update (``EventRepo.close_dangling``: the
previous incarnation cannot), then cleans its own camera's partial segments in this node's
data dir, then starts. The head hands it the rules in force when it sees a new incarnation.

Heavy start-up work (database, model, source) runs in a thread, so the actor answers
``drain`` at once and the head sees it as ``starting`` meanwhile.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vigil.cluster import node_data_dir, node_name
from vigil.cluster.detector import DetectorSpec, NodeDetector
from vigil.cluster.writer import NodeSegments, NodeStore
from vigil.config.models import LineConfig, ResolvedCamera, VigilConfig, ZoneConfig
from vigil.events.sinks import EventSink
from vigil.ingest import Backoff
from vigil.record import Recorder
from vigil.runtime.messages import CameraReport
from vigil.runtime.previews import PreviewTaker
from vigil.runtime.view import CameraStatus, TrackSnapshot
from vigil.runtime.worker import CameraWorker, SourceFactory, default_source, run_supervised
from vigil.types import Event, EventState, ImageArray, RuleEvent

if TYPE_CHECKING:  # loaded by the first copied view only
    from vigil.record.copyfeed import CopyBatch, CopyFeed

log = logging.getLogger(__name__)

#: Calls one camera actor serves at once (a drain, a live frame, a rule change, and the
#: long polls of its copied live views: two widths of it watched at once).
CAMERA_CONCURRENCY = 6


# -- what the outbox carries -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventOut:
    """An event for the head's sinks (already stored). Its snapshot's pixels travel only
    with a start or an end (what MQTT's snapshot entity shows), never with an update."""

    event: Event


@dataclass(frozen=True, slots=True)
class HitsOut:
    """One frame's rule hits (already counted in the database)."""

    hits: tuple[RuleEvent, ...]


@dataclass(frozen=True, slots=True)
class CountsOut:
    """``RuleEngine.counts()`` after a change."""

    counts: dict[str, Any]


@dataclass(frozen=True, slots=True)
class OnlineOut:
    online: bool


OutItem = EventOut | HitsOut | CountsOut | OnlineOut


@dataclass(frozen=True, slots=True)
class Drained:
    """One answer to ``drain``: who answers (``incarnation``: new at every (re)start of the
    actor; ``node``/``node_id``: where it runs now), its report, and the outbox items after
    the acknowledged sequence number, ``(seq, item)`` in order; ``dropped``: items lost to a
    full outbox since the start."""

    incarnation: str
    node: str
    node_id: str
    report: CameraReport | None
    items: tuple[tuple[int, OutItem], ...]
    dropped: int
    #: The rules in force in the actor (None before it has started its worker).
    rules: tuple[dict[str, ZoneConfig], dict[str, LineConfig]] | None = None
    detection: bool = True
    #: The recording switch in force (None: the camera records nothing).
    recording: bool | None = None


@dataclass(frozen=True, slots=True)
class CameraSpec:
    """Everything a camera actor needs; pickled once, and again for each restart (so the
    head re-sends what changed at run time: rules, the detection switch).

    ``database_url`` must be PostgreSQL (every node writes to it); ``detector`` None: the
    camera uses the motion detector; ``source_factory``/``backoff``: tests only.
    """

    config: VigilConfig
    camera: ResolvedCamera
    database_url: str
    detector: DetectorSpec | None
    stall_timeout: float = 10.0
    outbox_size: int = 2000
    source_factory: SourceFactory | None = None
    backoff: Callable[[], Backoff] | None = None
    recording: bool = True


class _Outbox:
    """Sequence-numbered items, bounded; see the module docstring."""

    def __init__(self, size: int) -> None:
        self._items: deque[tuple[int, OutItem]] = deque(maxlen=size)
        self._lock = threading.Lock()
        self._seq = 0
        self.dropped = 0

    def put(self, item: OutItem) -> None:
        with self._lock:
            if len(self._items) == self._items.maxlen:
                self.dropped += 1
            self._seq += 1
            self._items.append((self._seq, item))

    def after(self, seq: int, seen: int | None = None) -> tuple[tuple[int, OutItem], ...]:
        """Drop what is acknowledged (``<= seq``) and return the rest after ``seen`` (the
        drainer has had those up to it, but its sinks have not all taken them yet: kept, for
        a drainer that follows it, unsent to this one)."""
        start = seq if seen is None else max(seq, seen)
        with self._lock:
            while self._items and self._items[0][0] <= seq:
                self._items.popleft()
            return tuple(item for item in self._items if item[0] > start)

    def since(self, seq: int) -> tuple[tuple[int, OutItem], ...]:
        """The items after ``seq``, dropping nothing (an API replica's look: only the head
        acknowledges)."""
        with self._lock:
            return tuple(item for item in self._items if item[0] > seq)


class _ActorSink:
    """The camera's event sink in the actor: ``has_clip`` set as ``ClipFlags`` does on a
    single host, then the store (the row first), then the outbox."""

    def __init__(self, store: EventSink, outbox: _Outbox, records: bool) -> None:
        self.store, self.outbox, self.records = store, outbox, records

    def publish(self, event: Event) -> None:
        event.has_clip = self.records
        try:
            self.store.publish(event)
        except Exception:  # the head still hears of it; the next change writes the row
            log.exception("%s: event %s not stored", event.camera_id, event.id)
        snapshot = event.snapshot
        if event.state is EventState.UPDATE and snapshot is not None and snapshot.image is not None:
            event = dataclasses.replace(event, snapshot=dataclasses.replace(snapshot, image=None))
        self.outbox.put(EventOut(event))

    def close(self) -> None:
        pass


@dataclass
class _Running:
    """What the boot thread built."""

    worker: CameraWorker
    recorder: Recorder | None
    threads: list[threading.Thread] = field(default_factory=list)
    store: NodeStore | None = None
    segments: NodeSegments | None = None


class CameraActor:
    """One camera on a cluster node (a Ray actor; see the module docstring)."""

    def __init__(self, spec: CameraSpec) -> None:
        import ray

        logging.basicConfig(level=logging.WARNING)  # a Ray worker's root logger has none
        self.spec = spec
        self.name = spec.camera.name
        self.incarnation = uuid.uuid4().hex
        self.node = node_name()
        self.node_id = str(ray.get_runtime_context().get_node_id())
        self.root = node_data_dir(spec.config.data_dir)
        self.outbox = _Outbox(spec.outbox_size)
        self._stop = threading.Event()
        self._running: _Running | None = None
        self.recorder: Recorder | None = None
        self.previews: PreviewTaker | None = None
        self._feed: CopyFeed | None = None
        self._feed_lock = threading.Lock()
        self._boot_error: str | None = None
        self._boot = threading.Thread(target=self._start, name=f"boot-{self.name}", daemon=True)
        self._boot.start()

    # -- start-up (its own thread) --------------------------------------------------------------

    def _start(self) -> None:
        """Build the camera, retrying with backoff (the database or the node's detector may
        be unreachable for a while), then start its worker and recorder threads."""
        backoff = (self.spec.backoff or Backoff)()
        while self._running is None:
            try:
                self._running = self._build()
            except Exception as exc:
                self._boot_error = f"{type(exc).__name__}: {exc}"
                log.exception("%s: the camera actor could not start; retrying", self.name)
                if self._stop.wait(backoff.next()):
                    return
        self._boot_error = None
        running = self._running
        sessions = (self.spec.backoff or Backoff)()
        thread = threading.Thread(target=run_supervised, name=f"camera-{self.name}",
                                  args=(running.worker, self._stop, sessions),
                                  daemon=True)  # fmt: skip
        running.threads.append(thread)
        thread.start()
        if running.recorder is not None:
            running.threads.append(running.recorder.start())
        if self.previews is not None:
            self.previews.start()

    def _build(self) -> _Running:
        from vigil.record.recovery import recover
        from vigil.runtime.serve import build_recorder
        from vigil.store import Database
        from vigil.store.repo import CameraRepo, EventRepo

        spec, name = self.spec, self.name
        self.root.mkdir(parents=True, exist_ok=True)
        # The actor's only own connection, closed at once: every later write goes through
        # the node's writer.
        db = Database(spec.database_url)
        try:
            with db.session(immediate=True) as session:
                CameraRepo(session).ensure(name)
                # The incarnation before this one (on a node that died) cannot end these.
                closed = EventRepo(session).close_dangling(name, time.time())
        finally:
            db.close()
        if closed:
            log.warning("%s: closed %d event(s) left open by the camera's previous run",
                        name, closed)  # fmt: skip
        # Segments, events and counts go through the node's writer, batched with its other
        # cameras'.
        store = NodeStore(spec.database_url, str(spec.config.data_dir))
        segments = NodeSegments(store, self.root, self.node)
        recover(self.root, segments, camera=name)
        recorder = build_recorder(
            spec.camera, self.root, on_segment=segments, on_state=None,
            backoff=spec.backoff or Backoff, stall_timeout=spec.stall_timeout,
        ) if spec.recording else None  # fmt: skip
        self.recorder = recorder
        if recorder is not None and recorder.segmenter.journal.count:
            self._reindex(recorder)
        segments.motion = recorder.motion if recorder is not None else None
        detector = None if spec.detector is None else NodeDetector(spec.detector)

        def factory(source: Any, camera: str, on_status: Any) -> Any:
            return default_source(source, camera, on_status, stall_timeout=spec.stall_timeout)

        def hits(found: list[RuleEvent]) -> None:
            try:
                store.count(found)
            except Exception:
                log.exception("counts of %s were not stored", name)
            self.outbox.put(HitsOut(tuple(found)))

        def counts(_camera: str, values: Mapping[str, Any]) -> None:
            self.outbox.put(CountsOut(dict(values)))

        def online(_camera: str, on: bool) -> None:
            self.outbox.put(OnlineOut(on))

        worker = CameraWorker(
            spec.camera, detector, _ActorSink(store, self.outbox, recorder is not None),
            counts=hits, on_counts=counts, on_online=online, recorder=recorder,
            source_factory=spec.source_factory or factory,
        )  # fmt: skip
        if recorder is not None:
            # The previews are made on the node, beside its segments; the head serves them
            # through the node's media actor like the segments (``ClusterMedia``).
            self.previews = PreviewTaker(spec.config, {name: worker}, {name: recorder},
                                         self.root)  # fmt: skip
            segments.previews = self.previews.save
        return _Running(worker, recorder, store=store, segments=segments)

    def _reindex(self, recorder: Recorder) -> None:
        """The segments this camera's recorder gave up on in an earlier run (its journal),
        indexed with this node's name before it records again; a failure is logged, and the
        journal keeps them for the next start."""
        from vigil.runtime.serve import reindex_with
        from vigil.store import Database

        try:
            db = Database(self.spec.database_url)
            try:
                reindex_with(db, self.root, recorder.segmenter.journal, recorder, node=self.node)
            finally:
                db.close()
        except Exception:
            log.exception("%s: unindexed segments were not indexed", self.name)

    # -- what the head calls --------------------------------------------------------------------

    def drain(self, after: int, seen: int | None = None) -> Drained:
        """The report and the outbox items after sequence number ``seen`` (default
        ``after``), acknowledging those up to ``after``."""
        return self._drained(self.outbox.after(after, seen), latencies=True)

    def peek(self, after: int) -> Drained:
        """``drain`` for an API replica (``vigil serve --replica``): the outbox items after
        ``after`` with nothing acknowledged, and no latencies taken (the head's drains
        acknowledge and gather those)."""
        return self._drained(self.outbox.since(after), latencies=False)

    def _drained(self, items: tuple[tuple[int, OutItem], ...], *, latencies: bool) -> Drained:
        running = self._running
        report = (
            CameraReport(self.status(), 0, 0, 0, 0, self._boot_error) if running is None
            else self._report(running, latencies=latencies)
        )  # fmt: skip
        rules = None if running is None else running.worker.rules()
        detection = True if running is None else running.worker.detection
        recording = (
            None if running is None or running.recorder is None else running.recorder.enabled
        )  # fmt: skip
        return Drained(self.incarnation, self.node, self.node_id, report, items,
                       self.outbox.dropped, rules, detection, recording)  # fmt: skip

    def _report(self, running: _Running, *, latencies: bool = False) -> CameraReport:
        worker = running.worker
        status = dataclasses.replace(worker.status(), node=self.node)
        if running.recorder is not None:
            state, error = running.recorder.status()
            if running.segments is not None:  # a row the node's writer refused
                state, error = running.segments.status(state, error)
            status = dataclasses.replace(
                status,
                recording=state,
                recording_error=error,
                segments_unindexed=running.recorder.segmenter.given_up,
            )
        taken: list[tuple[float, float, bool]] = []
        while latencies and worker.latencies:
            taken.append(worker.latencies.popleft())
        return CameraReport(status, worker.frames, worker.analysed, worker.restarts,
                            worker.sessions, worker.last_error, tuple(taken))  # fmt: skip

    def status(self) -> CameraStatus:
        running = self._running
        if running is None:
            state = "offline" if self._boot_error else "starting"
            return CameraStatus(name=self.name, online=False, state=state, node=self.node)
        return self._report(running).status

    def boot_error(self) -> str | None:
        return self._boot_error

    def latest_frame(self) -> ImageArray | None:
        running = self._running
        return None if running is None else running.worker.latest_frame()

    def latest_tracks(self) -> TrackSnapshot:
        running = self._running
        return TrackSnapshot() if running is None else running.worker.latest_tracks()

    def counts(self) -> dict[str, Any]:
        running = self._running
        return {} if running is None else running.worker.counts()

    # -- stream-copied unredacted live video (the head's ``RemoteCopy`` reads these) ---------

    def _copy_feed(self) -> tuple[CopyFeed | None, str | None]:
        """The camera's copy feed (made at the first read), or None and why there is none."""
        from vigil.record.copyfeed import CopyFeed

        recorder = self.recorder
        if recorder is None:
            why = "still starting" if self._running is None else "recording off"
            return None, (f"the camera is not recorded on node {self.node} ({why}), so it "
                          "has no packets to copy: re-encoded")  # fmt: skip
        with self._feed_lock:
            if self._feed is None or self._feed.tap is not recorder.tap:
                self._feed = CopyFeed(recorder.tap)
            return self._feed, None

    def copy_problem(self) -> str | None:
        """Why the camera's granted unredacted view cannot be copied now (None: it can)."""
        feed, why = self._copy_feed()
        return why if feed is None else feed.problem()

    def copy_read(self, after: int, timeout: float, reader: str = "") -> CopyBatch:
        """The copy feed's chunks after ``after``, waiting up to ``timeout`` s for one (the
        feed bounds it): the head's long poll, one call per frame or fewer."""
        from vigil.record.copyfeed import CopyBatch

        feed, why = self._copy_feed()
        if feed is None:
            # Still starting (a failover's new actor), even after a failed try (its start is
            # retried with backoff): the head's copy waits for the feed, ``COPY_GIVE_UP_S``
            # at most.
            starting = self._running is None
            if starting and self._boot_error:
                why = f"{why}; its last start failed: {self._boot_error}"
            return CopyBatch("", (), after, why, waiting=starting)
        return feed.read(after, timeout, reader)

    def copy_release(self, reader: str) -> None:
        """The head's ``reader`` reads no more (the feed stops after its last reader)."""
        feed = self._feed
        if feed is not None:
            feed.release(reader)

    def update_rules(
        self, zones: Mapping[str, ZoneConfig], lines: Mapping[str, LineConfig]
    ) -> None:
        """Replace the rules from the next frame (a ``ConfigError`` changes nothing); before
        the worker exists, they are waited for (the boot thread is quick to get there)."""
        running = self._wait_running(30.0)
        running.worker.update_rules(zones, lines)

    def set_detection(self, on: bool) -> None:
        self._wait_running(30.0).worker.set_detection(on)

    def set_recording(self, on: bool) -> bool:
        """Switch recording; False when the camera records nothing."""
        recorder = self._wait_running(30.0).recorder
        if recorder is None:
            return False
        recorder.enabled = bool(on)
        return True

    def _wait_running(self, timeout: float) -> _Running:
        from vigil.errors import VigilError

        self._boot.join(timeout)
        if self._running is None:
            raise VigilError(f"camera {self.name!r} has not started on node {self.node}: "
                             f"{self._boot_error or 'still starting'}")  # fmt: skip
        return self._running

    def stop(self, timeout: float = 10.0) -> None:
        """End the session (its open events are closed, stored and put in the outbox), then
        let the recorder finish its segment. The actor stays up for the head's last drain."""
        deadline = time.monotonic() + timeout
        self._stop.set()
        self._boot.join(max(0.0, deadline - time.monotonic()))
        running = self._running
        if running is None:
            return
        running.worker.stop()
        if self.previews is not None:
            self.previews.close()
        for thread in running.threads[:1]:
            thread.join(max(0.0, deadline - time.monotonic()))
        if running.store is not None:
            running.store.close()  # the closed events are on their way to the node's writer
        if running.recorder is not None:
            running.recorder.close()
        for thread in running.threads[1:]:
            thread.join(max(0.0, deadline - time.monotonic()))
        if running.segments is not None:  # the last segment is on its way to the writer
            running.segments.close(max(0.5, deadline - time.monotonic()))
