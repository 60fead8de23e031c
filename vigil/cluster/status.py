"""``ClusterStatus``: what runs where on a Vigil Ray cluster, gathered from Ray itself.

``vigil cluster status``, ``GET /api/cluster`` and the web UI's cluster panel all show this
one shape: the nodes (name, Ray node id, alive, camera slots used of total, CPUs, GPUs), the
camera actors (``vigil-camera:*``: the node each runs on, how often Ray restarted it and how
often rebalancing moved it), the load of each node's batched detector (its ``stats()``), the
failovers (camera actors Ray restarted, on whichever node they came back) and the cameras
rebalancing moved (the count is in the group's name, ``vigil.cluster.group.group_moves``).

Nothing here imports Ray at module level, so the API can name the types on a single host.
``gather_status`` runs in a process connected to the cluster (``ray.init`` done). It reads
actors and resources from the GCS (``ray._private.state``), not from ``ray.util.state``:
that one needs the dashboard's API server, which a minimal head (``--include-dashboard
false``) does not run; the GCS answers on every cluster. A node's *name* (``VIGIL_NODE_NAME``)
is known to Ray only through the media actor named by it and pinned to that node.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vigil.cluster import (
    CAMERA_SLOTS,
    DETECTOR_PREFIX,
    actor_names,
    current_namespace,
    keyed_actor_parts,
)
from vigil.cluster.group import cameras_of, group_moves
from vigil.errors import StorageError

log = logging.getLogger(__name__)

_CAMERA_PREFIX = "vigil-camera:"
_MEDIA_PREFIX = "vigil-media:"


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """One Ray node. ``name``: its Vigil node name (None until its media actor runs)."""

    name: str | None
    node_id: str
    alive: bool
    address: str
    camera_slots_used: float
    camera_slots_total: float
    cpus: float
    gpus: float


@dataclass(frozen=True, slots=True)
class CameraPlacement:
    """A camera actor: where it runs (None while Ray restarts it), how often Ray restarted
    it and how often rebalancing moved its group (``moves``)."""

    camera: str
    state: str
    node: str | None
    node_id: str | None
    restarts: int
    moves: int = 0


@dataclass(frozen=True, slots=True)
class DetectorLoad:
    """A node's batched detector, as its actor's ``stats()`` reports it; ``error`` when the
    actor did not answer (then the figures are zero)."""

    node: str | None
    node_id: str
    images: int = 0
    batches: int = 0
    mean_batch: float = 0.0
    queue: int = 0
    max_batch: int = 0
    max_wait_ms: float = 0.0
    #: The model (path or name) and input size: a node runs one detector per model.
    model: str = ""
    input_size: tuple[int, int] = (0, 0)
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Failover:
    """A camera actor Ray restarted ``restarts`` times; ``node``: where it runs now."""

    camera: str
    restarts: int
    node: str | None


@dataclass(frozen=True, slots=True)
class Rebalanced:
    """A camera whose group rebalancing moved ``moves`` times; ``node``: where it runs now."""

    camera: str
    moves: int
    node: str | None


@dataclass(frozen=True, slots=True)
class ClusterStatus:
    gathered_at: float
    nodes: tuple[NodeStatus, ...]
    cameras: tuple[CameraPlacement, ...]
    detectors: tuple[DetectorLoad, ...]
    failovers: tuple[Failover, ...]
    rebalanced: tuple[Rebalanced, ...] = ()
    #: Whether the API server that answers supervises the cluster (holds the supervision
    #: lock, ``vigil.cluster.leader``) or serves as a replica; None: not said.
    supervising: bool | None = None


def gather_status(*, timeout_s: float = 5.0) -> ClusterStatus:
    """The cluster's status now, from the Ray cluster this process is connected to.

    A detector actor that is missing is left out; one that does not answer within
    ``timeout_s`` is listed with its error. ``StorageError`` when Ray cannot be asked.
    """
    import ray
    from ray._private import state

    try:
        nodes: list[dict[str, Any]] = ray.nodes()  # type: ignore[no-untyped-call]
        actors: Mapping[str, Any] = state.actors()
        available: Mapping[str, Any] = state.available_resources_per_node()  # type: ignore[no-untyped-call]
        # The GCS's actor table names no namespace: the named-actor list does.
        ours = set(actor_names())
    except Exception as exc:  # Ray's boundary: connection errors come in many types
        raise StorageError(f"the Ray cluster cannot be asked for its status: {exc}") from exc
    alive = [a for a in actors.values() if a.get("Name") in ours and a.get("State") != "DEAD"]
    names = _node_names(alive)
    cameras = _cameras(alive, names)
    node_rows = tuple(_node(n, names, available, cameras) for n in nodes)
    detectors = _detectors([n.node_id for n in node_rows if n.alive], names, timeout_s)
    failovers = tuple(Failover(c.camera, c.restarts, c.node) for c in cameras if c.restarts > 0)
    moved = tuple(Rebalanced(c.camera, c.moves, c.node) for c in cameras if c.moves > 0)
    return ClusterStatus(time.time(), node_rows, tuple(cameras), detectors, failovers, moved)


def _node_id(actor: Mapping[str, Any]) -> str | None:
    address = actor.get("Address") or {}
    node = address.get("NodeID") if isinstance(address, Mapping) else None
    return str(node) if node else None


def _node_names(actors: list[Mapping[str, Any]]) -> dict[str, str]:
    """Ray node id → Vigil node name, from the media actors (one per node, named by it)."""
    names: dict[str, str] = {}
    for actor in actors:
        name = str(actor.get("Name") or "")
        node = _node_id(actor)
        if name.startswith(_MEDIA_PREFIX) and node and actor.get("State") == "ALIVE":
            names[node] = name.removeprefix(_MEDIA_PREFIX)
    return names


def _cameras(actors: list[Mapping[str, Any]], names: Mapping[str, str]) -> list[CameraPlacement]:
    out = []
    for actor in actors:
        name = str(actor.get("Name") or "")
        if not name.startswith(_CAMERA_PREFIX):
            continue
        state = str(actor.get("State") or "UNKNOWN")
        node = _node_id(actor) if state == "ALIVE" else None
        # A group actor (vigil.cluster.group) is named after all of its cameras, and after
        # how often it was moved.
        tail = name.removeprefix(_CAMERA_PREFIX)
        for camera in cameras_of(tail):
            out.append(CameraPlacement(camera, state, names.get(node) if node else None, node,
                                       int(actor.get("NumRestarts") or 0),
                                       group_moves(tail)))  # fmt: skip
    return sorted(out, key=lambda c: c.camera)


def _node(
    node: Mapping[str, Any], names: Mapping[str, str], available: Mapping[str, Any],
    cameras: list[CameraPlacement],
) -> NodeStatus:  # fmt: skip
    node_id = str(node.get("NodeID"))
    total: Mapping[str, float] = node.get("Resources") or {}
    slots = float(total.get(CAMERA_SLOTS, 0.0))
    free = (available.get(node_id) or {}).get(CAMERA_SLOTS)
    # Free slots from the scheduler when it reports them; else one per camera actor there.
    used = (
        slots - float(free)
        if free is not None
        else float(sum(1 for c in cameras if c.node_id == node_id))
    )
    return NodeStatus(names.get(node_id), node_id, bool(node.get("Alive")),
                      str(node.get("NodeManagerAddress") or ""), max(0.0, used), slots,
                      float(total.get("CPU", 0.0)), float(total.get("GPU", 0.0)))  # fmt: skip


def _detectors(node_ids: list[str], names: Mapping[str, str],
               timeout_s: float) -> tuple[DetectorLoad, ...]:  # fmt: skip
    import ray

    calls: list[tuple[str, Any]] = []
    wanted = set(node_ids)
    for name in _detector_names():  # a node without one has no camera there (or not yet)
        _key, node_id = keyed_actor_parts(name)
        if node_id not in wanted:
            continue
        try:
            actor = ray.get_actor(name, namespace=current_namespace())
        except ValueError:  # it ended meanwhile
            continue
        calls.append((node_id, actor.stats.remote()))
    out = []
    for node_id, ref in calls:
        try:
            stats = ray.get(ref, timeout=timeout_s)
        except Exception as exc:  # Ray's boundary: the actor died, timed out, or failed
            out.append(DetectorLoad(names.get(node_id), node_id, error=f"{type(exc).__name__}: "
                                    f"{str(exc)[:200]}"))  # fmt: skip
            continue
        out.append(_load(stats, names.get(node_id), node_id))
    return tuple(out)


def _detector_names() -> list[str]:
    """The names of the namespace's detector actors (one per node and model; named with
    the model's key)."""
    return actor_names(DETECTOR_PREFIX)


def _load(stats: Mapping[str, Any], name: str | None, node_id: str) -> DetectorLoad:
    return DetectorLoad(
        node=str(stats.get("node") or name or "") or None, node_id=node_id,
        images=int(stats.get("images", 0)), batches=int(stats.get("batches", 0)),
        mean_batch=float(stats.get("mean_batch", 0.0)), queue=int(stats.get("queue", 0)),
        max_batch=int(stats.get("max_batch", 0)),
        max_wait_ms=float(stats.get("max_wait_ms", 0.0)), model=str(stats.get("model", "")),
        input_size=_size(stats.get("input_size")),
    )  # fmt: skip


def _size(value: Any) -> tuple[int, int]:
    """A ``stats()`` input size (a two-item list), (0, 0) when missing or malformed."""
    if isinstance(value, list | tuple) and len(value) == 2:
        return int(value[0]), int(value[1])
    return (0, 0)
