"""Camera groups: several cameras in one Ray actor process, as a worker process hosts several.

::

    head (RayBackend)                                node N (slots: vigil_camera_slots)
    RayCamera "cam0" ─ actor: _Member(group, cam0) ─►  CameraGroup "vigil-camera:cam0,cam1"
    RayCamera "cam1" ─ actor: _Member(group, cam1) ─►    asks len(group) slots, one process:
                                                          CameraActor(cam0), CameraActor(cam1)

Why: one actor per camera is one Python process per camera with Vigil and Ray's core worker
loaded (about 170 MB and a share of CPU each, ``bench/cluster.py``), where the process backend
hosts a group of cameras in each worker process. A ``CameraGroup`` holds up to
``cluster.cameras_per_actor`` cameras, each a plain ``CameraActor`` object (the same code as a
camera alone: its outbox, boot thread, store and recorder), and asks for as many
``CAMERA_SLOTS`` units as it holds cameras, so a node never runs more cameras than it has
slots.

The head keeps one ``RayCamera`` handle per camera, as before: its ``actor`` is a
``_Member``, which turns ``handle.actor.drain.remote(after)`` into
``group.call.remote(camera, "drain", after)``, so the handle's protocol (drains, incarnations,
orphaned events, rules sync) is unchanged. When the group's node or process dies, Ray restarts
the whole group on a node with enough free slots: each of its cameras starts a new
incarnation there (closing its events left open, then recording and analysing again), and
each handle sees that as a failover of its own.

Grouping (``plan_groups``): the cameras are cut into as few groups as ``cameras_per_actor`` and
the largest node's camera slots allow, as even as possible; a group that no node alive at
start has room for is split until each fits a node's free slots (best fit, biggest group
first), so the groups need no more slots than the nodes have, and nodes left whole stay free
for failover. The plan only sizes the groups; Ray places them. The cost of bigger groups: a
group fails over only to a node with that many free slots at once, and a process crash takes
all of its cameras down together (they come back together).

A head that dies (``kill -9``, a crash) leaves its cameras recording: the groups are detached
actors, named ``vigil-camera:<key>:<camera>,<camera>…``, the key a digest of what they were
made with (``group_key``: database, data dir, each camera's settings but its rules, its
detector). The next head adopts every group whose key is that of its own cameras' settings
(``adopt_groups``), so those cameras neither stop nor close an event, and ends the others
(settings changed, or cameras no longer configured) before it starts groups for the rest. A
clean stop of the head ends its groups.

Rebalancing (``vigil.cluster.rebalance``, ``RayBackend.move_group``) replaces a group by a new
one of the same cameras on another node, started *standing by* (``CameraGroup(standby=True)``)
and named with its move count (``<key>+<moves>``): adoption and API replicas prefer, of two
groups of the same cameras, the one moved more often.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vigil.cluster import (
    CAMERA_SLOTS,
    actor_key,
    actor_names,
    camera_actor_name,
    current_namespace,
)

if TYPE_CHECKING:  # the camera's imports are the runtime's: only actors and the head need them
    from vigil.cluster.camera import CameraSpec

log = logging.getLogger(__name__)

#: Separates the cameras in a group actor's name (camera names hold only letters, digits,
#: '-' and '_', so it cannot occur in one).
GROUP_SEPARATOR = ","

#: The ``CameraActor`` methods the head may call through a group.
CALLS = frozenset({
    "drain", "peek", "status", "boot_error", "latest_frame", "latest_tracks", "counts",
    "update_rules", "set_detection", "set_recording", "stop", "copy_problem", "copy_read",
    "copy_release",
})  # fmt: skip


#: Between a group's key and its move count in its name (``<key>+<moves>``).
MOVES_SEPARATOR = "+"


def group_actor_name(cameras: Sequence[str], key: str = "", moves: int = 0) -> str:
    """``vigil-camera:<key>:cam0,cam1``: the camera actors' prefix, so tools that list camera
    actors (``vigil cluster status``) find groups too and can tell their cameras from the
    name; ``key`` (``group_key``) says what the group was made with, so that a head that
    starts adopts only a group made with its own settings. ``moves``: how often the group was
    moved by rebalancing (``vigil.cluster.rebalance``), ``<key>+<moves>``: the group that
    replaces a moved one needs a name of its own while the old one still runs, and the count
    is what ``vigil cluster status`` shows."""
    tail = GROUP_SEPARATOR.join(cameras)
    if moves:
        key = f"{key}{MOVES_SEPARATOR}{moves}"
    return camera_actor_name(f"{key}:{tail}" if key else tail)


def group_name_parts(actor_name_tail: str) -> tuple[str, list[str]]:
    """``(key, cameras)`` of a camera actor named ``vigil-camera:<tail>`` (key "" for a name
    without one, as heads before keyed groups named them); the move count is not the key's."""
    key, _sep, cameras = actor_name_tail.rpartition(":")
    key = key.partition(MOVES_SEPARATOR)[0]
    return key, [name for name in cameras.split(GROUP_SEPARATOR) if name]


def group_moves(actor_name_tail: str) -> int:
    """How often the group named ``vigil-camera:<tail>`` was moved (``group_actor_name``)."""
    key = actor_name_tail.rpartition(":")[0]
    count = key.partition(MOVES_SEPARATOR)[2]
    return int(count) if count.isdigit() else 0


def cameras_of(actor_name_tail: str) -> list[str]:
    """The cameras of a camera actor named ``vigil-camera:<tail>`` (one, or a group's)."""
    return group_name_parts(actor_name_tail)[1]


def camera_key(spec: CameraSpec) -> tuple[str, ...]:
    """What a camera's actor runs with, for ``group_key``: the database and data dir, the
    camera's resolved settings and its detector's. Its zones and lines are left out: the
    head hands an actor the rules in force at its first drain (``RayCamera._sync_rules``),
    so a rule edited at run time must not make the next head restart the camera."""
    camera = spec.camera.model_dump_json(exclude={"zones", "lines"})
    detector = spec.detector.key if spec.detector is not None else "motion"
    return (spec.database_url, str(spec.config.data_dir), camera, detector,
            repr(spec.stall_timeout), repr(spec.outbox_size))  # fmt: skip


def group_key(specs: Sequence[CameraSpec]) -> str:
    """The digest (``actor_key``) in a group actor's name: its cameras' ``camera_key`` in
    order, and Vigil's version. The URL itself never shows in a name."""
    return actor_key("camera-group", *(part for spec in specs for part in camera_key(spec)))


def _chunks(names: Sequence[str], size: int) -> list[list[str]]:
    """``names`` in consecutive groups of at most ``size``, as even as possible."""
    if not names:
        return []
    count = -(-len(names) // size)
    base, extra = divmod(len(names), count)
    out, start = [], 0
    for index in range(count):
        end = start + base + (1 if index < extra else 0)
        out.append(list(names[start:end]))
        start = end
    return out


def plan_groups(
    cameras: Sequence[str], per_actor: int, capacities: Sequence[float]
) -> list[list[str]]:  # fmt: skip
    """The camera groups, biggest first (see the module docstring). ``capacities``: the
    camera slots of each node alive now. With no node known yet (they join later) the groups
    are of ``per_actor``; cameras beyond the slots wait in groups for room, as a single
    camera actor would."""
    if per_actor < 1:
        raise ValueError(f"cameras_per_actor must be at least 1, not {per_actor}")
    free = sorted((int(c) for c in capacities if int(c) > 0), reverse=True)
    size = min(per_actor, free[0]) if free else per_actor
    todo = _chunks(cameras, size)
    placed: list[list[str]] = []
    while todo:
        todo.sort(key=len, reverse=True)
        group = todo.pop(0)
        # Best fit: the node with the fewest free slots that still takes the whole group.
        fits = [i for i, slots in enumerate(free) if slots >= len(group)]
        if fits:
            best = min(fits, key=lambda i: free[i])
            free[best] -= len(group)
            placed.append(group)
        elif free and max(free) > 0:
            # No node has room for all of it: split off what the roomiest node takes.
            room = max(free)
            todo += [group[:room], group[room:]]
        else:
            placed.append(group)  # waits for a node with room, as a camera alone would
    return placed


def node_capacities() -> list[float]:
    """The camera slots of every alive node of the connected cluster."""
    import ray

    nodes: list[dict[str, Any]] = ray.nodes()  # type: ignore[no-untyped-call]
    return [float(node.get("Resources", {}).get(CAMERA_SLOTS, 0.0))
            for node in nodes if node.get("Alive")]  # fmt: skip


class CameraGroup:
    """Several cameras in one actor process (a Ray actor; see the module docstring).

    ``standby``: the group of a move (``RayBackend.move_group``): its process starts and
    imports what its cameras need, but they start only at ``activate`` (the head calls it
    once the group it replaces stopped; a first ``drain_many`` does too, so a head that died
    between the two leaves nothing idle for the next). ``replaces``: the name of the group it
    replaces. A standby group that Ray restarts (its node died) stands by again while that
    group lives (the move goes on, or is given up, as before; started at once, it recorded
    the cameras beside the old group until the move ended), and starts its cameras at once
    when it is gone (it is failing over then, as any group does)."""

    def __init__(self, specs: Sequence[CameraSpec], standby: bool = False,
                 replaces: str | None = None) -> None:  # fmt: skip
        import ray

        self._specs = list(specs)
        self._lock = threading.Lock()
        self.cameras: dict[str, Any] = {}
        restarted = ray.get_runtime_context().was_current_actor_reconstructed
        if standby and (not restarted or _alive(replaces)):
            _prepare(self._specs)
            return
        self.activate()

    def activate(self) -> None:
        """Start the cameras (once; a group not standing by started them at construction)."""
        from vigil.cluster.camera import CameraActor

        with self._lock:
            if not self.cameras:
                self.cameras = {spec.camera.name: CameraActor(spec) for spec in self._specs}

    def ready(self) -> str:
        """The Ray node id this group runs on (an answer: its process is up)."""
        import ray

        return str(ray.get_runtime_context().get_node_id())

    def call(self, camera: str, method: str, *args: Any) -> Any:
        """``method`` of ``camera``'s ``CameraActor`` (its errors reach the caller)."""
        if method not in CALLS:
            raise ValueError(f"{method!r} is not a camera call; one of {sorted(CALLS)}")
        return getattr(self.cameras[camera], method)(*args)

    def drain_many(self, acks: Mapping[str, int | tuple[int, int]]) -> dict[str, Any]:
        """``drain(after, seen)`` of each camera in ``acks`` (camera -> acknowledged sequence
        number, or ``(acknowledged, seen)``): one call a poll round for the whole group, not
        one per camera."""
        self.activate()  # a move's group whose head died before activating it
        return {camera: self.cameras[camera].drain(*_pair(ack)) for camera, ack in acks.items()}

    def peek_many(self, seen: Mapping[str, int]) -> dict[str, Any]:
        """``peek(after)`` of each camera in ``seen``: ``drain_many`` for an API replica,
        acknowledging nothing (a standby group answers for none of them)."""
        cameras = self.cameras
        return {camera: cameras[camera].peek(after) for camera, after in seen.items()
                if camera in cameras}  # fmt: skip

    def names(self) -> list[str]:
        return [spec.camera.name for spec in self._specs]


def _alive(name: str | None) -> bool:
    """Whether this deployment's actor ``name`` exists (alive, or being restarted by Ray)."""
    import ray

    if name is None:
        return False
    try:
        ray.get_actor(name, namespace=current_namespace())
    except ValueError:  # ended for good (killed with no restart, or out of restarts)
        return False
    return True


#: Seconds a standby group waits for its node's detector to load its model.
PREPARE_LOAD_S = 90.0


def _prepare(specs: Sequence[CameraSpec]) -> None:
    """What a camera's start imports (its runtime, recorder and store) and the node's
    detector of each model, loaded: a standby group spends that time before the move, not in
    its cameras' recording gap. A detector that fails here is the cameras' to retry."""
    import vigil.cluster.camera
    import vigil.record.recovery
    import vigil.runtime.serve
    import vigil.store.repo  # noqa: F401
    from vigil.cluster.detector import NodeDetector

    detectors = {spec.detector.key: spec.detector for spec in specs if spec.detector}
    for detector in detectors.values():
        try:
            NodeDetector(detector, load_timeout=PREPARE_LOAD_S)
        except Exception:
            log.exception("the node's detector did not load; the cameras retry at start")


class _Call:
    """``member.<method>.remote(*args)``: one camera's call through its group."""

    def __init__(self, group: Any, camera: str, method: str) -> None:
        self.group, self.camera, self.method = group, camera, method

    def remote(self, *args: Any) -> Any:
        return self.group.call.remote(self.camera, self.method, *args)


class _Member:
    """What a ``RayCamera`` holds as its ``actor`` when its camera lives in a group: the
    camera actor's calls, addressed to the group with the camera's name."""

    def __init__(self, group: Any, camera: str, name: str = "") -> None:
        self.group, self.camera = group, camera
        #: The group actor's name (``group_actor_name``; "" where it is not known).
        self.name = name

    def __getattr__(self, method: str) -> _Call:
        if method not in CALLS:
            raise AttributeError(method)
        return _Call(self.group, self.camera, method)


def _pair(ack: int | tuple[int, int]) -> tuple[int, int]:
    return (ack, ack) if isinstance(ack, int) else ack


def drain_args(cam: Any) -> int | tuple[int, int]:
    """What a drain of ``cam`` (a ``RayCamera``) sends: its acknowledged sequence number,
    with the one it has seen when that is further (its sinks have not taken all yet)."""
    return cam.acked if cam.seen == cam.acked else (cam.acked, cam.seen)


def start_drains(cameras: Iterable[Any], now: float, *, peek: bool = False) -> None:
    """Start a drain for each ``RayCamera`` of ``cameras`` without one in flight: one
    ``drain_many`` per group for its cameras (they share its answer, ``drained_for`` picks
    theirs), ``drain`` for a camera alone; ``peek``: an API replica's look instead, which
    acknowledges nothing (``CameraActor.peek``)."""
    groups: dict[int, tuple[Any, list[Any]]] = {}
    for cam in cameras:
        if cam.pending is not None or cam.actor is None or getattr(cam, "moving", False):
            continue  # a moving camera is drained by its move
        if isinstance(cam.actor, _Member):
            groups.setdefault(id(cam.actor.group), (cam.actor.group, []))[1].append(cam)
        else:
            ack = drain_args(cam)
            args = (cam.seen,) if peek else (ack,) if isinstance(ack, int) else ack
            call = cam.actor.peek if peek else cam.actor.drain
            cam.pending, cam.pending_since = call.remote(*args), now
    for group, members in groups.values():
        if peek:
            ref = group.peek_many.remote({cam.name: cam.seen for cam in members})
        else:
            ref = group.drain_many.remote({cam.name: drain_args(cam) for cam in members})
        for cam in members:
            cam.pending, cam.pending_since = ref, now


def drained_for(answer: Any, camera: str) -> Any:
    """``camera``'s ``Drained`` in the answer to its drain (a group's: one per camera)."""
    return answer[camera] if isinstance(answer, dict) else answer


def start_groups(
    specs: Mapping[str, CameraSpec], per_actor: int, *, max_restarts: int,
    adopted: Mapping[str, _Member] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The group actors of ``specs`` (camera -> spec) on the connected cluster; returns each
    camera's ``_Member``. ``adopted``: the cameras whose groups an earlier head left running
    with this head's settings (``adopt_groups``: they record on without a gap); the other
    cameras get new groups, detached so that they, too, outlive a head that dies."""
    import ray

    from vigil.cluster.camera import CAMERA_CONCURRENCY

    actor_class: Any = ray.remote(CameraGroup)
    members: dict[str, Any] = dict(adopted or {})
    rest = [camera for camera in specs if camera not in members]
    for group in plan_groups(rest, per_actor, node_capacities()):
        name = group_actor_name(group, group_key([specs[c] for c in group]))
        handle = actor_class.options(
            name=name, namespace=current_namespace(), lifetime="detached",
            resources={CAMERA_SLOTS: len(group)},
            num_cpus=0, max_restarts=max_restarts, max_task_retries=0,
            max_concurrency=CAMERA_CONCURRENCY * len(group),
        ).remote([specs[camera] for camera in group])  # fmt: skip
        members.update({camera: _Member(handle, camera, name) for camera in group})
    log.info("%d camera(s) in %d actor(s), %d adopted", len(members),
             len({id(m.group) for m in members.values()}), len(specs) - len(rest))  # fmt: skip
    return members


@dataclass
class Adoption:
    """What ``adopt_groups`` found: the adopted cameras' ``_Member``, and the cameras not
    configured here whose actors it ended (their open events are nobody's now)."""

    members: dict[str, _Member] = field(default_factory=dict)
    unconfigured: list[str] = field(default_factory=list)


def adopt_groups(specs: Mapping[str, CameraSpec]) -> Adoption:
    """The camera group actors running in the namespace (detached: a head killed with
    ``-9`` leaves them recording) that this head takes over: those whose cameras are all
    configured here and whose key (``group_key``) is that of their cameras' specs now.
    Every other camera actor is ended: one made with other settings, or hosting a camera
    no longer configured (the namespace is this Vigil's), or the group a move was replacing
    when the head died (the group replacing it, moved more often, is adopted: its first drain
    starts it if it was still standing by)."""
    import ray

    prefix = camera_actor_name("")
    found = Adoption()
    for name in _camera_actor_names(newest_first=True):
        key, cameras = group_name_parts(name.removeprefix(prefix))
        try:
            handle = ray.get_actor(name, namespace=current_namespace())
        except ValueError:  # it ended meanwhile
            continue
        mine = bool(cameras) and all(c in specs for c in cameras)
        taken = any(c in found.members for c in cameras)
        if mine and not taken and key == group_key([specs[c] for c in cameras]):
            log.warning("adopting %s, left running by an earlier head", name)
            found.members.update({camera: _Member(handle, camera, name) for camera in cameras})
            continue
        why = ("the group a move replaced" if mine and taken else
               "other settings" if mine else "cameras not configured here")  # fmt: skip
        log.warning("ending %s, left by an earlier head (%s)", name, why)
        with contextlib.suppress(Exception):  # Ray's boundary: ended meanwhile
            ray.kill(handle, no_restart=True)
        found.unconfigured += [camera for camera in cameras if camera not in specs]
    return found


def find_groups(cameras: Iterable[str]) -> dict[str, tuple[str, _Member]]:
    """For an API replica: each camera's group actor running in the namespace (whatever its
    key: the head decides which run), as ``(actor name, member)``. Nothing is started or
    ended."""
    import ray

    wanted = set(cameras)
    prefix = camera_actor_name("")
    found: dict[str, tuple[str, _Member]] = {}
    # Oldest first: during a move, the group that replaces the old one wins (later updates).
    for name in _camera_actor_names(newest_first=False):
        hosted = [c for c in group_name_parts(name.removeprefix(prefix))[1] if c in wanted]
        if not hosted:
            continue
        try:
            handle = ray.get_actor(name, namespace=current_namespace())
        except ValueError:  # it ended meanwhile
            continue
        found.update({camera: (name, _Member(handle, camera, name)) for camera in hosted})
    return found


def _camera_actor_names(*, newest_first: bool) -> list[str]:
    """The names of the namespace's camera actors, ordered by how often their group was
    moved: during a move (and after a head died in one) two groups host the same cameras,
    and the one that replaces the other has the higher count (``group_actor_name``)."""
    prefix = camera_actor_name("")
    return sorted(actor_names(prefix), key=lambda n: group_moves(n.removeprefix(prefix)),
                  reverse=newest_first)  # fmt: skip


def kill_group(actor: Any) -> None:
    """End the actor behind a ``RayCamera.actor`` (its group, once for all its cameras)."""
    import ray

    ray.kill(actor.group if isinstance(actor, _Member) else actor, no_restart=True)
