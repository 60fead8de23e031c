"""``RayBackend``: the cameras as actors on a Ray cluster (``server.backend: ray``).

::

    head (Supervisor, API)                          cluster nodes (a camera slot each)
    RayBackend ── creates ──────────────────────►  CameraActor "vigil-camera:<name>"
      poll thread: drain(after) every 0.25 s ◄───    outbox: events, hits, counts, online
        └► hooks: sink (MQTT, webhooks, live), counts (metrics, MQTT), on_online
      RayCamera (handle): status from the last     writes PostgreSQL itself (events,
        drain; frame, tracks, counts, rules:          counts, segments with the node)
        calls with cluster.call_timeout

The third implementation of ``CameraBackend`` (``vigil.runtime.backend``). The actor does the
store writes on its node, so the head's sink must not write them again (the ``Supervisor``
leaves its store out in this mode); the head's hooks get every event all the same.

Failover: Ray restarts a camera actor whose node (or process) died on a node with a free
``CAMERA_SLOTS`` unit, up to ``cluster.max_restarts`` times. The handle sees it as drains
failing (``restarting``, offline), then answers from a new *incarnation*: it ends, for the
head's sinks, the events it had seen open (the new actor closed their rows at their last
update before starting), hands the actor the rules and the detection and recording switches
in force, and counts a restart. ``failovers`` records (camera, node before, node after,
seconds offline).

The actors are camera groups (``vigil.cluster.group``): several cameras per actor process,
each handle's ``actor`` a member of its group; a group fails over whole, each of its cameras
as above.

Rebalancing (``cluster.rebalance``): a thread of the supervising backend moves a group at a
time onto a node with room (``vigil.cluster.rebalance.plan_moves``, ``move_group``); the
handle counts a move (``rebalanced``), not a restart.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vigil.cluster import (
    CAMERA_SLOTS,
    DETECTOR_PREFIX,
    WRITER_PREFIX,
    actor_names,
    camera_actor_name,
    current_namespace,
    keyed_actor_parts,
)
from vigil.cluster.camera import (
    CameraSpec,
    CountsOut,
    Drained,
    EventOut,
    HitsOut,
    OnlineOut,
)
from vigil.cluster.detector import DetectorSpec
from vigil.cluster.group import (
    CameraGroup,
    _Member,
    adopt_groups,
    drain_args,
    drained_for,
    find_groups,
    group_actor_name,
    group_moves,
    group_name_parts,
    kill_group,
    start_drains,
    start_groups,
)
from vigil.cluster.rebalance import Move, Placed, node_slots, plan_moves
from vigil.cluster.writer import writer_key
from vigil.config.models import (
    ClusterConfig,
    DetectConfig,
    LineConfig,
    ResolvedCamera,
    VigilConfig,
    ZoneConfig,
)
from vigil.errors import ConfigError, VigilError
from vigil.ingest import Backoff
from vigil.record.copyfeed import CopyBatch
from vigil.runtime.backend import BackendHooks, BackendKind
from vigil.runtime.messages import CameraReport
from vigil.runtime.view import CameraStatus, TrackSnapshot
from vigil.runtime.worker import SourceFactory
from vigil.types import Event, EventState, ImageArray

log = logging.getLogger(__name__)

Zones = dict[str, ZoneConfig]
Lines = dict[str, LineConfig]

POLL_INTERVAL = 0.25  # s between drains: events reach MQTT/live within about this


@dataclass(frozen=True, slots=True)
class Failover:
    """A camera that came back after its actor was lost: ``seconds`` from its last good
    drain to the first drain of the new incarnation."""

    camera: str
    before: str
    after: str
    seconds: float


@dataclass(frozen=True, slots=True)
class Rebalanced:
    """A camera moved by rebalancing (``RayBackend.move_group``): ``seconds`` from its old
    group's stop to the first drain of its new incarnation (the camera then connects to its
    source: its recording gap is this plus a reconnection)."""

    camera: str
    before: str
    after: str
    seconds: float


#: Seconds a move waits for its new group's process to be up on the target (else the move
#: is given up, and the old group records on).
MOVE_READY_S = 120.0
#: Seconds a move waits for the old group's cameras to stop (close their events, finish
#: their segment and hand it to the node's writer).
MOVE_STOP_S = 15.0


def connect(cluster: ClusterConfig, cameras: int) -> bool:
    """Connect this process to the cluster (``ray.init``); True when this call did it
    (then ``RayBackend.close`` disconnects). ``local`` starts a one-machine cluster with a
    camera slot per camera. Already connected (a test, a notebook): to the configured
    namespace only, or the actors found by name would be another deployment's."""
    import ray

    if ray.is_initialized():
        joined = current_namespace()
        if joined != cluster.namespace:
            raise ConfigError(
                f"cluster.namespace is {cluster.namespace!r} but this process is already "
                f"connected to Ray in namespace {joined!r}; connect with "
                f"ray.init(namespace={cluster.namespace!r}) or set cluster.namespace: {joined}"
            )
        return False
    if cluster.address == "local":
        from vigil.cluster.lean import LEAN_SYSTEM_CONFIG

        # address="local": a new cluster even where one runs already (ray.init() alone would
        # join that one, and refuse the camera slots).
        ray.init(address="local", namespace=cluster.namespace,
                 resources={CAMERA_SLOTS: max(1, cameras)}, include_dashboard=False,
                 _system_config=LEAN_SYSTEM_CONFIG)  # fmt: skip
    else:
        ray.init(address=cluster.address, namespace=cluster.namespace)
    return True


def _unwrap(exc: BaseException) -> BaseException:
    """The error raised in the actor (Ray wraps it in a ``RayTaskError``)."""
    from ray.exceptions import RayTaskError

    if isinstance(exc, RayTaskError) and isinstance(exc.cause, BaseException):
        return exc.cause
    return exc


@dataclass(frozen=True, slots=True)
class _Counts:
    """A camera's counters (``CameraReport`` and its status' counters) summed over its
    actor's earlier incarnations."""

    frames: int = 0
    analysed: int = 0
    sessions: int = 0
    restarts: int = 0
    skipped_frames: int = 0
    decode_errors: int = 0

    def plus(self, report: CameraReport) -> _Counts:
        status = report.status
        return _Counts(self.frames + report.frames, self.analysed + report.analysed,
                       self.sessions + report.sessions, self.restarts + report.restarts,
                       self.skipped_frames + status.skipped_frames,
                       self.decode_errors + status.decode_errors)  # fmt: skip


class RayCamera:
    """The head's ``CameraHandle`` of one camera actor (see the module docstring)."""

    def __init__(self, spec: CameraSpec, backend: RayBackend) -> None:
        self.spec = spec
        self.camera = spec.camera
        self.name = spec.camera.name
        self._backend = backend
        self.actor: Any = None
        self._zones: Zones = dict(spec.camera.zones)
        self._lines: Lines = dict(spec.camera.lines)
        self.detection = True
        #: The recording switch in force (Home Assistant's), handed to a restarted actor.
        self.recording = True
        self.incarnation: str | None = None
        self.incarnations = 0
        self.node: str | None = None
        self.node_id: str | None = None
        #: The outbox's sequence numbers: ``seen``, the last item delivered to the sinks;
        #: ``acked``, the last one they have all settled (MQTT's broker confirmed it), which
        #: the actor may drop. A head that dies leaves the items after ``acked`` to the next.
        self.acked = 0
        self.seen = 0
        #: ``(seq, mark)`` of the items delivered and not yet settled, in order.
        self.unsettled: deque[tuple[int, Any]] = deque()
        self.pending: Any = None  # the drain in flight (an ObjectRef)
        self.pending_since = 0.0
        #: When this handle's own last edit of the rules or switches returned (monotonic): a
        #: drain asked before it may carry the actor's settings from before the edit.
        self.edited_at = 0.0
        #: Between an edit here (API thread) and following the actor's settings (poll thread).
        self._settings = threading.Lock()
        self.report_: CameraReport | None = None
        self.down = False
        self.last_ok = time.monotonic()
        self.last_frame_time: float | None = None
        self.open_events: dict[str, Event] = {}
        self.latencies: deque[tuple[float, float, bool]] = deque(maxlen=4096)
        self.dropped = 0
        self.is_online = False
        #: The incarnation whose rules and switches are those of this handle: handed to it,
        #: or taken from it. From then on the actor's are followed (an API replica may
        #: change them: ``_sync_settings``).
        self.synced: str | None = None
        #: Take the actor's rules at its first drain instead of handing it this handle's:
        #: an actor an earlier head left running has the rules in force (edited at run time).
        self.adopt_rules = False
        #: An API replica's handle: it follows the actor's settings, never hands its own.
        self.follow = False
        #: The name of the actor this handle reaches (a replica rebinds when it changes).
        self.actor_name: str | None = None
        #: Set while rebalancing moves the camera's group: the poll leaves it to the move.
        self.moving = False
        #: The node (name) a move took the camera from, until its new incarnation answers.
        self.moved_from: str | None = None
        self.move_started = 0.0
        #: Times rebalancing moved the camera (not restarts: nothing failed).
        self.moves = 0
        #: The counts of the camera's earlier incarnations (a new actor counts from zero):
        #: added to the current one's, so that the camera's counters never go back.
        self.earlier = _Counts()

    # -- what the drains say ----------------------------------------------------------------

    def take(self, drained: Drained) -> None:
        """Act on one drain (poll thread)."""
        hooks = self._backend.hooks
        if drained.incarnation != self.incarnation:
            self._new_incarnation(drained)
        self.down = False
        self.last_ok = time.monotonic()
        self.node, self.node_id = drained.node, drained.node_id
        self.dropped = drained.dropped
        if drained.report is not None:
            self.report_ = drained.report
            self.latencies.extend(drained.report.latencies)
            if drained.report.status.last_frame_time is not None:
                self.last_frame_time = drained.report.status.last_frame_time
        delivery = hooks.delivery
        for seq, item in drained.items:
            if seq <= self.seen:
                continue  # delivered already; the actor drops it once it is settled
            self.seen = seq
            try:
                self._deliver(item, hooks)
            except Exception:  # one failing sink must not stop the others' delivery
                log.exception("%s: %s from the camera actor not delivered", self.name,
                              type(item).__name__)  # fmt: skip
            if delivery is not None and not self.follow:
                self.unsettled.append((seq, delivery.mark()))
        # Beyond the outbox's size, the oldest are gone from the actor anyway (it keeps the
        # newest): held back no more, so that a sink down for good bounds this list.
        while len(self.unsettled) > self.spec.outbox_size:
            self.acked = self.unsettled.popleft()[0]
        self.settle()
        self._sync_settings(drained)

    def settle(self) -> None:
        """Move ``acked`` up to the last item the sinks have settled (in order: one that
        is not stops the count, so a later drainer gets it and all after it again)."""
        delivery = self._backend.hooks.delivery
        while self.unsettled and (delivery is None or delivery.is_settled(self.unsettled[0][1])):
            self.acked = self.unsettled.popleft()[0]
        if not self.unsettled and not self.follow:
            self.acked = self.seen

    def _deliver(self, item: object, hooks: BackendHooks) -> None:
        match item:
            case EventOut(event=event):
                if event.state is EventState.END:
                    self.open_events.pop(event.id, None)
                else:
                    self.open_events[event.id] = event
                hooks.sink.publish(event)
            case HitsOut(hits=hits):
                hooks.counts(list(hits))
            case CountsOut(counts=counts):
                hooks.on_counts(self.name, counts)
            case OnlineOut(online=online):
                self._set_online(online)
            case _:
                log.warning("%s: unknown outbox item %s; ignored", self.name,
                            type(item).__name__)  # fmt: skip

    def _set_online(self, online: bool) -> None:
        if online != self.is_online:
            self.is_online = online
            self._backend.hooks.on_online(self.name, online)

    def _new_incarnation(self, drained: Drained) -> None:
        """The actor (re)started: a fresh outbox, and the events of the old one ended."""
        before = self.node
        if self.report_ is not None:
            self.earlier = self.earlier.plus(self.report_)
        self.incarnations += 1
        self.incarnation = drained.incarnation
        self.acked = self.seen = 0
        self.unsettled.clear()
        if self.incarnations > 1 and self.moved_from is not None:
            gone = time.monotonic() - self.move_started
            self.moves += 1
            self._backend.rebalanced.append(Rebalanced(self.name, self.moved_from,
                                                       drained.node, gone))  # fmt: skip
            log.warning("%s: camera moved to node %s from %s (rebalancing, %.1f s away)",
                        self.name, drained.node, self.moved_from, gone)  # fmt: skip
            self.moved_from = None
            self.close_orphans()  # none: the old group's stop ended them, the move delivered
        elif self.incarnations > 1:
            gone = time.monotonic() - self.last_ok
            self._backend.failovers.append(Failover(self.name, before or "?", drained.node, gone))
            log.warning("%s: camera actor restarted on node %s (was on %s, %.1f s away)",
                        self.name, drained.node, before, gone)  # fmt: skip
            self.close_orphans()

    def close_orphans(self) -> None:
        """End, for the head's sinks, the events a lost actor left open (their rows were
        closed by the actor's next incarnation, or are by ``close_dangling`` at start)."""
        when = self.last_frame_time if self.last_frame_time is not None else time.time()
        for event in list(self.open_events.values()):
            closed = dataclasses.replace(event, end=max(when, event.start), state=EventState.END)
            self.open_events.pop(event.id, None)
            try:
                self._backend.hooks.sink.publish(closed)
            except Exception:
                log.exception("%s: event %s could not be closed", self.name, event.id)

    def _sync_settings(self, drained: Drained) -> None:
        """A (re)started actor has the rules of its spec and its switches on: hand it those
        in force here until it has them. After that the actor's are the truth, and this
        handle follows them: an API replica may have changed them (as a replica's handle
        always follows)."""
        if drained.rules is None:
            return  # its worker has not started: nothing to compare yet
        if self.follow or self.synced == drained.incarnation:
            self._follow(drained)
            return
        if self.adopt_rules:
            self.adopt_rules = False
            self._zones, self._lines = dict(drained.rules[0]), dict(drained.rules[1])
        in_force = True
        if drained.rules != (self._zones, self._lines):
            in_force = False
            self._fire(lambda actor: actor.update_rules.remote(self._zones, self._lines))
        if drained.detection != self.detection:
            in_force = False
            self._fire(lambda actor: actor.set_detection.remote(self.detection))
        if drained.recording is not None and drained.recording != self.recording:
            in_force = False
            self._fire(lambda actor: actor.set_recording.remote(self.recording))
        if in_force:
            self.synced = drained.incarnation

    def _follow(self, drained: Drained) -> None:
        assert drained.rules is not None
        with self._settings:
            if self.pending_since < self.edited_at:
                return  # asked before this handle's own edit reached the actor: older ones
            zones, lines = drained.rules
            if (zones, lines) != (self._zones, self._lines):
                if not self.follow:
                    log.info("%s: rules changed through another API server; following them",
                             self.name)  # fmt: skip
                self._zones, self._lines = dict(zones), dict(lines)
            self.detection = drained.detection
            if drained.recording is not None:
                self.recording = drained.recording

    def _fire(self, call: Any) -> None:
        try:
            call(self.actor)
        except Exception:
            log.exception("%s: could not hand the camera actor its settings", self.name)

    def in_force(self) -> CameraSpec:
        """The spec with the rules and recording switch in force here (a moved camera
        starts with them; the detection switch follows at its first drain)."""
        camera = self.spec.camera.model_copy(update={"zones": dict(self._zones),
                                                     "lines": dict(self._lines)})  # fmt: skip
        return dataclasses.replace(self.spec, camera=camera, recording=self.recording)

    def lost(self, why: str) -> None:
        """A drain failed (poll thread): the actor is down or restarting."""
        if not self.down:
            log.warning("%s: camera actor unreachable (%s)", self.name, why)
        self.down = True
        self._set_online(False)

    # -- CameraHandle -----------------------------------------------------------------------

    @property
    def frames(self) -> int:
        return self._totals().frames

    @property
    def analysed(self) -> int:
        return self._totals().analysed

    @property
    def sessions(self) -> int:
        return self._totals().sessions

    @property
    def restarts(self) -> int:
        return max(0, self.incarnations - 1 - self.moves) + self._totals().restarts

    @property
    def last_error(self) -> str | None:
        return self.report_.last_error if self.report_ else None

    @property
    def skipped_frames(self) -> int:
        return self._totals().skipped_frames

    @property
    def state(self) -> str:
        if self.down:
            return "restarting"
        return self.report_.status.state if self.report_ else "starting"

    @property
    def online(self) -> bool:
        return not self.down and self.report_ is not None and self.report_.status.online

    def status(self) -> CameraStatus:
        """The last drain's status (cheap: no call), with the node it came from."""
        report, totals = self.report_, self._totals()
        if report is None or self.down:
            return CameraStatus(name=self.name, online=False, state=self.state, node=self.node,
                                last_frame_time=self.last_frame_time,
                                skipped_frames=totals.skipped_frames,
                                decode_errors=totals.decode_errors)  # fmt: skip
        return dataclasses.replace(report.status, node=self.node,
                                   skipped_frames=totals.skipped_frames,
                                   decode_errors=totals.decode_errors)  # fmt: skip

    def _totals(self) -> _Counts:
        """The counters of every incarnation so far, the current one's included."""
        return self.earlier if self.report_ is None else self.earlier.plus(self.report_)

    def _call(self, call: Any, wait: float = 0.0) -> Any:
        """``call(actor)``'s answer, waited for ``cluster.call_timeout`` (plus ``wait``: the
        time the call itself may wait)."""
        import ray

        actor = self.actor
        if actor is None:
            raise VigilError(f"camera {self.name!r}: its actor is not running")
        try:
            return ray.get(call(actor), timeout=self._backend.cluster.call_timeout + wait)
        except Exception as exc:
            cause = _unwrap(exc)
            if isinstance(cause, VigilError | KeyError):
                raise cause from None
            raise VigilError(f"camera {self.name!r}: no answer from its actor "
                             f"({type(exc).__name__})") from None  # fmt: skip

    def latest_frame(self) -> ImageArray | None:
        try:
            frame: ImageArray | None = self._call(lambda a: a.latest_frame.remote())
        except VigilError:
            return None
        return frame

    def latest_tracks(self) -> TrackSnapshot:
        try:
            tracks: TrackSnapshot = self._call(lambda a: a.latest_tracks.remote())
        except VigilError:
            return TrackSnapshot()
        return tracks

    def counts(self) -> dict[str, Any]:
        try:
            counts: dict[str, Any] = self._call(lambda a: a.counts.remote())
        except VigilError:
            return {}
        return counts

    def copy_feed(self) -> RemoteCopy:
        """A reader of the camera's copy feed on its node (``Supervisor.copy_feed``)."""
        return RemoteCopy(self)

    def rules(self) -> tuple[Zones, Lines]:
        return dict(self._zones), dict(self._lines)

    def update_rules(
        self, zones: Mapping[str, ZoneConfig], lines: Mapping[str, LineConfig]
    ) -> None:
        """Apply in the actor, wherever it runs (its ``ConfigError`` reaches the caller);
        an actor that is down gets them when it is back."""
        zones, lines = dict(zones), dict(lines)
        try:
            self._call(lambda a: a.update_rules.remote(zones, lines))
        except VigilError as exc:
            if type(exc) is not VigilError:  # ConfigError & co: the rules are wrong
                raise
            log.warning("%s: rules kept for when its actor answers: %s", self.name, exc)
            self.synced = None  # hand them at its next drain
        with self._settings:
            self._zones, self._lines = zones, lines
            self.edited_at = time.monotonic()

    def set_detection(self, on: bool) -> None:
        on = bool(on)
        try:
            self._call(lambda a: a.set_detection.remote(on))
        except VigilError as exc:
            log.warning("%s: detection switch kept for when its actor answers: %s",
                        self.name, exc)  # fmt: skip
            self.synced = None
        with self._settings:
            self.detection, self.edited_at = on, time.monotonic()

    def set_recording(self, on: bool) -> None:
        """Home Assistant's recording switch, in the actor's recorder wherever it runs (an
        actor that is down gets it when it is back)."""
        on = bool(on)
        try:
            self._call(lambda a: a.set_recording.remote(on))
        except VigilError as exc:
            log.warning("%s: recording switch kept for when its actor answers: %s",
                        self.name, exc)  # fmt: skip
            self.synced = None
        with self._settings:
            self.recording, self.edited_at = on, time.monotonic()


class RemoteCopy:
    """The copy feed (``vigil.record.copyfeed``) of a camera recorded on a cluster node, read
    from the head: each ``read`` is one call to the camera's actor, which waits there for
    the next chunk (a long poll), so a copied view costs the head one call per frame or
    fewer and the bytes of the camera's own stream, no decoding or muxing."""

    def __init__(self, camera: RayCamera) -> None:
        self._camera = camera

    def problem(self) -> str | None:
        try:
            problem: str | None = self._camera._call(lambda a: a.copy_problem.remote())
        except VigilError as exc:
            return f"{exc}: re-encoded"
        return problem

    def read(self, after: int, timeout: float, reader: str = "") -> CopyBatch:
        """The chunks after ``after``; ``VigilError`` when the actor does not answer."""
        batch: CopyBatch = self._camera._call(
            lambda a: a.copy_read.remote(after, timeout, reader), wait=timeout
        )
        return batch

    def release(self, reader: str) -> None:
        """Tell the actor, without waiting for its answer (a lost one: the feed idles out)."""
        actor = self._camera.actor
        if actor is not None:
            actor.copy_release.remote(reader)


class RayBackend:
    """Every camera an actor on the Ray cluster (see the module docstring).

    ``config``: the whole configuration (the actors need its data dir and record settings);
    ``database_url``: PostgreSQL, which every node writes to; ``detect``: by camera, the
    settings of the model it shares (``cluster_detect_configs``; a motion camera has none):
    each distinct one is its own detector actor on every node running such a camera.
    """

    def __init__(
        self, cameras: Sequence[ResolvedCamera], hooks: BackendHooks, config: VigilConfig, *,
        database_url: str, detect: Mapping[str, DetectConfig] | None = None,
        stall_timeout: float = 10.0,
        source_factory: SourceFactory | None = None, backoff: Any = Backoff,
    ) -> None:  # fmt: skip
        import ray  # noqa: F401  # fails here, naming the extra, when Ray is missing

        self.hooks = hooks
        self.config = config
        self.database_url = database_url
        self.cluster = config.cluster
        models = detect or {}
        self.cameras: dict[str, RayCamera] = {}
        for camera in cameras:
            model = models.get(camera.name)
            detector = None if model is None or camera.detect.is_motion else DetectorSpec(
                model, config.detector.max_batch, config.detector.max_wait_ms,
                self.cluster.detector_num_gpus, self.cluster.call_timeout,
            )  # fmt: skip
            spec = CameraSpec(config, camera, database_url, detector,
                              stall_timeout=stall_timeout, source_factory=source_factory,
                              backoff=backoff)  # fmt: skip
            self.cameras[camera.name] = RayCamera(spec, self)
        self.failovers: list[Failover] = []
        self.rebalanced: list[Rebalanced] = []
        #: Held by a poll round, a promotion or a step-down, and by a move while it changes
        #: its cameras' handles (re-entrant: a move's last drain is taken inside it).
        self._round = threading.RLock()
        #: A move's new group before its cameras' handles reach it (``close`` ends it).
        self._standby: Any = None
        self._rebalancer: threading.Thread | None = None
        self._connected = False
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._stops: list[Any] = []
        #: The cameras whose actors an earlier head left running and this one took over.
        self.adopted: frozenset[str] = frozenset()

    #: Look at the outboxes without acknowledging (an API replica's backend).
    PEEK: bool = False
    #: This process supervises (drains, acknowledges, hands settings, stops the cameras);
    #: False on an API replica, and on a head that lost the supervision lock (``demote``).
    leading: bool = True
    #: Seconds between looks for the cameras' actors by name while not leading.
    REBIND_S = 2.0
    _bound_at = 0.0

    @property
    def kind(self) -> BackendKind:
        return "ray"

    @property
    def handles(self) -> Mapping[str, RayCamera]:
        return self.cameras

    def _adopt_or_start(self) -> dict[str, Any]:
        """Each camera's group actor: the groups running with these settings adopted (an
        earlier head left them recording: no gap), stale camera actors ended, the others
        started, several cameras per actor process (vigil.cluster.group) placed by node
        capacity; the open events of cameras no longer configured closed."""
        self._end_stale()
        specs = {n: c.spec for n, c in self.cameras.items()}
        adoption = adopt_groups(specs)
        self.adopted = frozenset(adoption.members)
        self._close_left_open(adoption.unconfigured)
        return start_groups(specs, self.cluster.cameras_per_actor,
                            max_restarts=self.cluster.max_restarts,
                            adopted=adoption.members)  # fmt: skip

    def start(self) -> None:
        self._connected = connect(self.cluster, len(self.cameras))
        members = self._adopt_or_start()
        for cam in self.cameras.values():
            cam.actor = members[cam.name]
            cam.adopt_rules = cam.name in self.adopted
        self._poller = threading.Thread(target=self._poll_loop, name="vigil-ray-poll",
                                        daemon=True)  # fmt: skip
        self._poller.start()
        self._start_rebalancing()

    def _start_rebalancing(self) -> None:
        """The rebalancing thread, once (a step-down leaves it idle; ``promote`` after a
        step-down finds it running)."""
        running = self._rebalancer is not None and self._rebalancer.is_alive()
        if self.cluster.rebalance and not running:
            self._rebalancer = threading.Thread(target=self._rebalance_loop,
                                                name="vigil-rebalance", daemon=True)  # fmt: skip
            self._rebalancer.start()

    def _end_stale(self) -> None:
        """End the detectors and writers a head that died left (detached, they run on) when
        they were made for another database, data dir or model: this head's cameras would
        not find them by name, and they would hold their node's resources (a GPU share)."""
        import ray

        writers = {writer_key(self.database_url, str(self.config.data_dir))}
        detectors = {spec.detector.key for cam in self.cameras.values()
                     if (spec := cam.spec).detector is not None}  # fmt: skip
        for prefix, keep in ((WRITER_PREFIX, writers), (DETECTOR_PREFIX, detectors)):
            for name, actor in named_actors(prefix):
                key, _node = keyed_actor_parts(name)
                if key in keep:
                    continue  # the same database (model): reused, its backlog with it
                log.warning("ending %s, left by an earlier head with other settings", name)
                with contextlib.suppress(Exception):  # Ray's boundary: ended meanwhile
                    ray.kill(actor, no_restart=True)

    # -- the poll thread ----------------------------------------------------------------------

    def _poll_loop(self) -> None:
        while not self._stop.wait(POLL_INTERVAL):
            self.poll()

    def poll(self, wait: float = 0.0) -> None:
        """One round: start a drain (a peek while not leading) for every camera without one
        in flight, take the answers that are there (waiting up to ``wait`` s)."""
        with self._round:
            if not self.leading and time.monotonic() - self._bound_at >= self.REBIND_S:
                self._bind()
            self._poll(wait)

    def _poll(self, wait: float) -> None:
        import ray

        now = time.monotonic()
        start_drains(self.cameras.values(), now, peek=self.PEEK)  # one call per camera group
        # A group's cameras share one answer: each ref once.
        pending = (c.pending for c in self.cameras.values() if c.pending is not None)
        refs = list(dict.fromkeys(pending))
        if not refs:
            return
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=wait)
        done = set(ready)
        for cam in self.cameras.values():
            if cam.pending is None:
                continue
            if cam.pending not in done:
                if now - cam.pending_since > self.cluster.call_timeout:
                    cam.lost(f"no answer within {self.cluster.call_timeout:g} s")
                continue
            ref, cam.pending = cam.pending, None
            try:
                drained = drained_for(ray.get(ref), cam.name)
            except Exception as exc:
                cam.lost(type(_unwrap(exc)).__name__)
                continue
            cam.take(drained)

    # -- rebalancing (vigil.cluster.rebalance) --------------------------------------------------

    def _rebalance_loop(self) -> None:
        seen: dict[str, float] = {}
        while not self._stop.wait(self.cluster.rebalance_interval):
            if not self.leading:
                continue  # stepped down (the supervision lock lost): moves are the supervisor's
            try:
                self.rebalance_step(seen)
            except Exception:  # a node lost meanwhile, the GCS slow: try at the next step
                log.exception("rebalancing step failed; trying again in %g s",
                              self.cluster.rebalance_interval)  # fmt: skip

    def rebalance_step(self, seen: dict[str, float]) -> list[Move]:
        """Plan and make this step's moves (``plan_moves``). ``seen``: when each node was
        first seen alive (kept between steps): a node moves onto only once it has been alive
        a whole interval."""
        now = time.monotonic()
        nodes = node_slots()
        for node in nodes:
            seen.setdefault(node.node_id, now)
        settled = [
            n if now - seen[n.node_id] >= self.cluster.rebalance_interval else
            dataclasses.replace(n, free=0)
            for n in nodes
        ]  # fmt: skip
        moves = plan_moves(settled, self._placed())
        for move in moves:
            if self._stop.is_set():
                break
            self.move_group(move.group, move.target)
        return moves

    def _placed(self) -> list[Placed]:
        """Each camera group whose cameras all answer, with the node it runs on."""
        groups: dict[str, list[RayCamera]] = {}
        for cam in self.cameras.values():
            if isinstance(cam.actor, _Member) and cam.actor.name:
                groups.setdefault(cam.actor.name, []).append(cam)
        placed = []
        for name, cams in groups.items():
            nodes = {cam.node_id for cam in cams}
            steady = all(not c.down and not c.moving and c.incarnation for c in cams)
            if steady and len(nodes) == 1 and None not in nodes:
                placed.append(Placed(name, str(cams[0].node_id), len(cams)))
        return placed

    def move_group(self, name: str, target: str) -> bool:
        """Move the camera group ``name`` to node ``target`` (a Ray node id), at the cost of
        a reconnection per camera, never two groups recording a camera at once:

        1. a new group of the same cameras (their rules and switches in force) starts on the
           target *standing by*: its process up and Vigil imported, nothing started;
        2. the old group's cameras stop: each closes its open events (stored, and in its
           outbox) and finishes its segment, handed to its node's writer;
        3. the head drains the old group one last time (the ended events reach its sinks)
           and ends it; the handles switch to the new group and activate it: each camera
           starts there (no event left to close), connects and records.

        The new group is named as the old one with its move count one higher
        (``group_actor_name``), so that a head that starts adopts it. False when the move was
        given up (the new group did not come up on a node other than the old one's); the old
        group records on."""
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        from vigil.cluster.camera import CAMERA_CONCURRENCY

        cams = [c for c in self.cameras.values()
                if isinstance(c.actor, _Member) and c.actor.name == name]  # fmt: skip
        if not cams:
            return False
        old = cams[0].actor.group
        source = cams[0].node_id
        prefix = camera_actor_name("")
        key, _cameras = group_name_parts(name.removeprefix(prefix))
        new_name = group_actor_name([c.name for c in cams], key,
                                    group_moves(name.removeprefix(prefix)) + 1)  # fmt: skip
        # Soft: a node that dies later lets Ray restart the group elsewhere (failover); not
        # spilled: on a live target without room it waits, and the move is given up below.
        actor_class: Any = ray.remote(CameraGroup)
        new = actor_class.options(
            name=new_name, namespace=current_namespace(), lifetime="detached",
            resources={CAMERA_SLOTS: len(cams)}, num_cpus=0,
            max_restarts=self.cluster.max_restarts, max_task_retries=0,
            max_concurrency=CAMERA_CONCURRENCY * len(cams),
            scheduling_strategy=NodeAffinitySchedulingStrategy(target, soft=True),
        ).remote([c.in_force() for c in cams], True, name)  # fmt: skip
        self._standby = new
        try:
            landed = str(ray.get(new.ready.remote(), timeout=MOVE_READY_S))
        except Exception as exc:
            landed = f"not up ({type(_unwrap(exc)).__name__})"
        if self._stop.is_set():
            landed = "not needed: the head is stopping"
        if landed == source or not landed or landed.startswith("not "):
            log.warning("rebalancing: %s not moved to node %s: its new group %s", name,
                        target, landed)  # fmt: skip
            with contextlib.suppress(Exception):  # Ray's boundary: ended meanwhile
                ray.kill(new, no_restart=True)
            self._standby = None
            return False
        self._switch(cams, old, new, new_name)
        return True

    def _switch(self, cams: list[RayCamera], old: Any, new: Any, new_name: str) -> None:
        """Steps 2 and 3 of ``move_group``."""
        import ray

        with self._round:
            for cam in cams:
                cam.moving, cam.pending = True, None
        started = time.monotonic()
        stops = [old.call.remote(c.name, "stop") for c in cams]
        ray.wait(stops, num_returns=len(stops), timeout=MOVE_STOP_S)
        try:
            last = ray.get(old.drain_many.remote({c.name: drain_args(c) for c in cams}),
                           timeout=self.cluster.call_timeout)  # fmt: skip
        except Exception as exc:  # its events are ended for the sinks by close_orphans
            log.warning("rebalancing: the last drain of %s failed (%s)",
                        [c.name for c in cams], type(_unwrap(exc)).__name__)  # fmt: skip
            last = {}
        with contextlib.suppress(Exception):  # Ray's boundary: ended meanwhile
            ray.kill(old, no_restart=True)
        with self._round:
            for cam in cams:
                if cam.name in last:
                    cam.take(drained_for(last, cam.name))
                cam.moved_from, cam.move_started = cam.node or "?", started
                cam.actor = _Member(new, cam.name, new_name)
                cam.pending, cam.moving, cam.synced = None, False, None
            self._standby = None
        new.activate.remote()

    # -- stop ---------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask every actor to close its events and end its session; returns at once. Not
        leading: nothing (the cameras are the supervisor's)."""
        self._stop.set()
        if not self.leading:
            return
        for cam in self.cameras.values():
            if cam.actor is not None:
                self._stops.append(cam.actor.stop.remote())

    def close(self, timeout: float) -> None:
        """Wait for the actors' stops, deliver their last outbox items (the events they
        closed), then kill the actors and the nodes' detectors."""
        import ray

        if not self.leading:
            self._disconnect(timeout)
            return
        if not self._stop.is_set():
            self.stop()
        deadline = time.monotonic() + timeout
        if self._poller is not None:
            self._poller.join(max(0.5, deadline - time.monotonic()))
        if self._rebalancer is not None:  # a move under way finishes (or gives up) first
            self._rebalancer.join(max(0.5, deadline - time.monotonic()))
        if self._standby is not None:
            with contextlib.suppress(Exception):  # Ray's boundary: ended meanwhile
                ray.kill(self._standby, no_restart=True)
        if self._stops:
            ray.wait(self._stops, num_returns=len(self._stops),
                     timeout=max(0.5, deadline - time.monotonic()))  # fmt: skip
        for cam in self.cameras.values():
            cam.pending = None  # a drain still in flight would answer with stale items
        self.poll(wait=max(1.0, min(5.0, deadline - time.monotonic())))
        # The events the stops closed are gathered in the nodes' writers: write them first.
        self._close_writers(max(1.0, deadline - time.monotonic()))
        self._close_left_open([n for n, c in self.cameras.items() if c.open_events])
        for cam in self.cameras.values():
            cam.close_orphans()  # killed before its last events came back
            if cam.actor is not None:
                with contextlib.suppress(Exception):  # its group ended with a neighbour's
                    kill_group(cam.actor)
                cam.actor = None
        self._kill_detectors()
        if self._connected:
            ray.shutdown()
            self._connected = False

    # -- who supervises ------------------------------------------------------------------------

    def promote(self) -> None:
        """Supervise from now on (this process took the supervision lock,
        ``vigil.cluster.leader``): what ``RayBackend.start`` does after connecting. The
        camera groups running are adopted (a head that died left them recording), the
        others ended or started; each handle drains its actor from its last acknowledged
        item, so what the previous supervisor had not settled reaches this one's sinks
        (again, for the live feed of a replica that peeked it), and hands a restarted actor
        the settings it followed."""
        with self._round:
            if self.leading:
                return
            members = self._adopt_or_start()
            for cam in self.cameras.values():
                cam.actor, cam.actor_name, cam.pending = members[cam.name], None, None
                cam.follow, cam.synced = False, None
                cam.adopt_rules = cam.name in self.adopted
                cam.seen = cam.acked
                cam.unsettled.clear()
            self.PEEK = False
            self.leading = True
        self._start_rebalancing()
        log.warning("supervising the cluster's %d camera(s), %d adopted", len(self.cameras),
                    len(self.adopted))  # fmt: skip

    def demote(self) -> None:
        """Stop supervising at once (the supervision lock was lost: another process may
        supervise now) and go on as an API replica: peek instead of drain (acknowledge
        nothing more), follow the actors' settings, look the actors up by name. Ends and
        starts nothing: the camera actors are detached and run on."""
        with self._round:
            if not self.leading:
                return
            self.leading, self.PEEK, self._bound_at = False, True, 0.0
            for cam in self.cameras.values():
                cam.follow, cam.pending, cam.actor_name = True, None, None
                cam.unsettled.clear()
        log.warning("no longer supervising the cluster's cameras: serving as an API replica")

    def _bind(self) -> None:
        """Each camera's handle to the actor hosting it now (none yet: the head has not
        started it, and it shows as starting)."""
        self._bound_at = time.monotonic()
        try:
            found = find_groups(self.cameras)
        except Exception:  # the cluster's GCS unreachable for a moment: try again later
            log.exception("the camera actors could not be listed")
            return
        for name, cam in self.cameras.items():
            actor_name, member = found.get(name, (None, None))
            if actor_name != cam.actor_name:
                if actor_name is not None:
                    log.info("%s: reached through %s", name, actor_name)
                cam.actor, cam.actor_name, cam.pending = member, actor_name, None

    def _disconnect(self, timeout: float) -> None:
        """A replica's close: the poll thread ends, the cluster connection too."""
        import ray

        self._stop.set()
        if self._poller is not None:
            self._poller.join(max(0.5, timeout))
        if self._connected:
            ray.shutdown()
            self._connected = False

    def _close_left_open(self, cameras: list[str]) -> None:
        """Close the rows of events whose actor did not stop in time (it cannot any more)."""
        if not cameras:
            return
        from vigil.store import Database
        from vigil.store.repo import EventRepo

        db = Database(self.database_url)
        try:
            with db.session(immediate=True) as session:
                for name in cameras:
                    EventRepo(session).close_dangling(name, time.time())
        except Exception:
            log.exception("events of %s left open; the next start closes them", cameras)
        finally:
            db.close()

    @staticmethod
    def _close_writers(timeout: float) -> None:
        """Every node's store writer writes what it gathered, then ends."""
        import ray

        writers = _named_actors(WRITER_PREFIX)
        closing = [actor.close.remote() for actor in writers]
        if closing:
            ray.wait(closing, num_returns=len(closing), timeout=timeout)
        for actor in writers:
            with contextlib.suppress(Exception):  # Ray's boundary: ended meanwhile
                ray.kill(actor)

    @staticmethod
    def _kill_detectors() -> None:
        import ray

        for actor in _named_actors(DETECTOR_PREFIX):
            with contextlib.suppress(Exception):  # Ray's boundary: ended meanwhile
                ray.kill(actor)

    def pids(self) -> list[int]:
        return []


class ReplicaBackend(RayBackend):
    """An API replica's cameras (``vigil serve --replica``): the head's camera actors,
    reached by name, placed, supervised and stopped by nobody here.

    Its handles are ``RayCamera``\\ s that peek instead of drain (``CameraActor.peek``: the
    supervisor alone acknowledges the outboxes) and follow the actors' rules and switches;
    their calls (live frames, tracks, counts, rule and switch changes) go to the actors as
    the head's do. Every ``REBIND_S`` it looks the actors up again by camera name: a head
    that started since may have replaced a group (new settings). ``close`` ends nothing on
    the cluster, it disconnects. ``promote`` makes it supervise (``RayBackend.promote``).
    """

    PEEK = True
    leading = False

    def start(self) -> None:
        self._connected = connect(self.cluster, len(self.cameras))
        for cam in self.cameras.values():
            cam.follow = True
        self._poller = threading.Thread(target=self._poll_loop, name="vigil-ray-peek",
                                        daemon=True)  # fmt: skip
        self._poller.start()


def _named_actors(prefix: str) -> list[Any]:
    """Handles of this namespace's named actors whose name starts with ``prefix``."""
    return [actor for _name, actor in named_actors(prefix)]


def named_actors(prefix: str) -> list[tuple[str, Any]]:
    """``(name, handle)`` of this namespace's named actors whose name starts with ``prefix``."""
    import ray

    namespace = current_namespace()
    found: list[tuple[str, Any]] = []
    for name in actor_names(prefix):
        with contextlib.suppress(ValueError):  # it ended meanwhile
            found.append((name, ray.get_actor(name, namespace=namespace)))
    return found
