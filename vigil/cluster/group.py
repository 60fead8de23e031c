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
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from vigil.cluster import CAMERA_SLOTS, NAMESPACE, camera_actor_name

if TYPE_CHECKING:  # the camera's imports are the runtime's: only actors and the head need them
    from vigil.cluster.camera import CameraSpec

log = logging.getLogger(__name__)

#: Separates the cameras in a group actor's name (camera names hold only letters, digits,
#: '-' and '_', so it cannot occur in one).
GROUP_SEPARATOR = ","

#: The ``CameraActor`` methods the head may call through a group.
CALLS = frozenset({
    "drain", "status", "boot_error", "latest_frame", "latest_tracks", "counts",
    "update_rules", "set_detection", "set_recording", "stop", "copy_problem", "copy_read",
    "copy_release",
})  # fmt: skip


def group_actor_name(cameras: Sequence[str]) -> str:
    """``vigil-camera:cam0,cam1``: the camera actors' prefix, so tools that list camera actors
    (``vigil cluster status``) find groups too and can tell their cameras from the name."""
    return camera_actor_name(GROUP_SEPARATOR.join(cameras))


def cameras_of(actor_name_tail: str) -> list[str]:
    """The cameras of a camera actor named ``vigil-camera:<tail>`` (one, or a group's)."""
    return [name for name in actor_name_tail.split(GROUP_SEPARATOR) if name]


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
    """Several cameras in one actor process (a Ray actor; see the module docstring)."""

    def __init__(self, specs: Sequence[CameraSpec]) -> None:
        from vigil.cluster.camera import CameraActor

        self.cameras = {spec.camera.name: CameraActor(spec) for spec in specs}

    def call(self, camera: str, method: str, *args: Any) -> Any:
        """``method`` of ``camera``'s ``CameraActor`` (its errors reach the caller)."""
        if method not in CALLS:
            raise ValueError(f"{method!r} is not a camera call; one of {sorted(CALLS)}")
        return getattr(self.cameras[camera], method)(*args)

    def drain_many(self, acks: Mapping[str, int]) -> dict[str, Any]:
        """``drain(after)`` of each camera in ``acks`` (camera -> acknowledged sequence
        number): one call a poll round for the whole group, not one per camera."""
        return {camera: self.cameras[camera].drain(after) for camera, after in acks.items()}

    def names(self) -> list[str]:
        return list(self.cameras)


class _Call:
    """``member.<method>.remote(*args)``: one camera's call through its group."""

    def __init__(self, group: Any, camera: str, method: str) -> None:
        self.group, self.camera, self.method = group, camera, method

    def remote(self, *args: Any) -> Any:
        return self.group.call.remote(self.camera, self.method, *args)


class _Member:
    """What a ``RayCamera`` holds as its ``actor`` when its camera lives in a group: the
    camera actor's calls, addressed to the group with the camera's name."""

    def __init__(self, group: Any, camera: str) -> None:
        self.group, self.camera = group, camera

    def __getattr__(self, method: str) -> _Call:
        if method not in CALLS:
            raise AttributeError(method)
        return _Call(self.group, self.camera, method)


def start_drains(cameras: Iterable[Any], now: float) -> None:
    """Start a drain for each ``RayCamera`` of ``cameras`` without one in flight: one
    ``drain_many`` per group for its cameras (they share its answer, ``drained_for`` picks
    theirs), ``drain`` for a camera alone."""
    groups: dict[int, tuple[Any, list[Any]]] = {}
    for cam in cameras:
        if cam.pending is not None or cam.actor is None:
            continue
        if isinstance(cam.actor, _Member):
            groups.setdefault(id(cam.actor.group), (cam.actor.group, []))[1].append(cam)
        else:
            cam.pending, cam.pending_since = cam.actor.drain.remote(cam.acked), now
    for group, members in groups.values():
        ref = group.drain_many.remote({cam.name: cam.acked for cam in members})
        for cam in members:
            cam.pending, cam.pending_since = ref, now


def drained_for(answer: Any, camera: str) -> Any:
    """``camera``'s ``Drained`` in the answer to its drain (a group's: one per camera)."""
    return answer[camera] if isinstance(answer, dict) else answer


def start_groups(
    specs: Mapping[str, CameraSpec], per_actor: int, *, max_restarts: int
) -> dict[str, Any]:  # fmt: skip
    """Create the group actors of ``specs`` (camera -> spec) on the connected cluster; returns
    each camera's ``_Member``. Camera actors left by a head that died are killed first
    (``kill_overlapping``)."""
    import ray

    from vigil.cluster.camera import CAMERA_CONCURRENCY

    actor_class: Any = ray.remote(CameraGroup)
    members: dict[str, Any] = {}
    kill_overlapping(set(specs))
    for group in plan_groups(list(specs), per_actor, node_capacities()):
        name = group_actor_name(group)
        handle = actor_class.options(
            name=name, namespace=NAMESPACE, resources={CAMERA_SLOTS: len(group)},
            num_cpus=0, max_restarts=max_restarts, max_task_retries=0,
            max_concurrency=CAMERA_CONCURRENCY * len(group),
        ).remote([specs[camera] for camera in group])  # fmt: skip
        members.update({camera: _Member(handle, camera) for camera in group})
    log.info("%d camera(s) in %d actor(s)", len(members),
             len({id(m.group) for m in members.values()}))  # fmt: skip
    return members


def kill_group(actor: Any) -> None:
    """End the actor behind a ``RayCamera.actor`` (its group, once for all its cameras)."""
    import ray

    ray.kill(actor.group if isinstance(actor, _Member) else actor, no_restart=True)


def kill_overlapping(cameras: set[str]) -> list[str]:
    """Kill every camera actor of the namespace hosting one of ``cameras`` (left by a head
    that died, grouped as it was then): this head owns those cameras now. Returns the names
    of the actors killed."""
    import ray

    prefix = camera_actor_name("")
    killed: list[str] = []
    for entry in ray.util.list_named_actors(all_namespaces=True):
        name = str(entry.get("name", ""))
        if entry.get("namespace") != NAMESPACE or not name.startswith(prefix):
            continue
        if not cameras & set(cameras_of(name.removeprefix(prefix))):
            continue
        try:
            ray.kill(ray.get_actor(name, namespace=NAMESPACE), no_restart=True)
        except ValueError:  # it ended meanwhile
            continue
        killed.append(name)
    return killed
