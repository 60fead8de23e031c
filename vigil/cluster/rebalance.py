"""Rebalancing: camera groups moved onto a node that came back, or joined, one at a time.

Ray places a camera group once (``vigil.cluster.group``) and restarts it on a survivor when
its node dies; nothing of Ray's moves it back when the node returns. The supervising head
does that here: every ``cluster.rebalance_interval`` it reads each alive node's camera slots
(``CAMERA_SLOTS``: total, and free as Ray's scheduler counts them) and where its groups run,
asks ``plan_moves`` for at most ``MOVES_PER_STEP`` moves, and carries each out as
``RayBackend.move_group`` does (the new group started on the target, standing by, before
the old one stops).

The rule (``plan_moves``): a group of ``s`` cameras moves from node A to node B only when B
has ``s`` free slots now, B has been alive for a whole interval (a flapping node gets
nothing), and after the move A is still at least as full as B, in cameras per slot:
``(load_A - s) / slots_A >= (load_B + s) / slots_B``. On equal nodes that is "A runs at
least two groups' worth more than B". Each such move takes load from a fuller node to an
emptier one without reversing them, so ``sum(load² / slots)`` falls with every move: the
moves end, and a cluster where no such move exists stays as it is (nothing moves back and
forth). The fullest node gives first, to the emptiest node, its biggest group that passes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vigil.cluster import CAMERA_SLOTS

#: Moves per rebalancing step: one group at a time, never a storm of restarts.
MOVES_PER_STEP = 1


@dataclass(frozen=True, slots=True)
class NodeSlots:
    """An alive node: its camera slots in all, and free now (Ray's count)."""

    node_id: str
    slots: int
    free: int


@dataclass(frozen=True, slots=True)
class Placed:
    """A camera group running on ``node_id`` with ``size`` cameras (slots)."""

    group: str
    node_id: str
    size: int


@dataclass(frozen=True, slots=True)
class Move:
    group: str
    source: str
    target: str
    size: int


def _fullness(load: int, slots: int) -> float:
    """Cameras per slot; a node without slots that still runs cameras is over-full."""
    if slots <= 0:
        return math.inf if load > 0 else 0.0
    return load / slots


def plan_moves(
    nodes: Sequence[NodeSlots], groups: Iterable[Placed], limit: int = MOVES_PER_STEP
) -> list[Move]:  # fmt: skip
    """At most ``limit`` moves that even out the load (see the module docstring), each
    planned on the cluster as the moves before it leave it. Groups on a node not in
    ``nodes`` (lost: Ray restarts them) stay where they are."""
    slots = {n.node_id: n.slots for n in nodes}
    free = {n.node_id: max(0, n.free) for n in nodes}
    on: dict[str, list[Placed]] = {n.node_id: [] for n in nodes}
    for group in groups:
        if group.node_id in on:
            on[group.node_id].append(group)
    load = {node: sum(g.size for g in placed) for node, placed in on.items()}
    moves: list[Move] = []
    while len(moves) < limit:
        move = _best_move(slots, free, load, on)
        if move is None:
            break
        moves.append(move)
        group = next(g for g in on[move.source] if g.group == move.group)
        on[move.source].remove(group)
        on[move.target].append(Placed(group.group, move.target, group.size))
        load[move.source] -= move.size
        load[move.target] += move.size
        free[move.target] -= move.size
        free[move.source] += move.size
    return moves


def _best_move(
    slots: Mapping[str, int], free: Mapping[str, int], load: Mapping[str, int],
    on: Mapping[str, list[Placed]],
) -> Move | None:  # fmt: skip
    def fullness(node: str) -> float:
        return _fullness(load[node], slots[node])

    sources = sorted((n for n in on if load[n] > 0), key=lambda n: (-fullness(n), n))
    targets = sorted((n for n in on if slots[n] > 0), key=lambda n: (fullness(n), n))
    for source in sources:
        biggest_first = sorted(on[source], key=lambda g: (-g.size, g.group))
        for target in targets:
            if target == source:
                continue
            for group in biggest_first:
                s = group.size
                after_source = _fullness(load[source] - s, slots[source])
                after_target = _fullness(load[target] + s, slots[target])
                if free[target] >= s and after_source >= after_target:
                    return Move(group.group, source, target, s)
    return None


def node_slots() -> list[NodeSlots]:
    """The alive nodes of the connected cluster with their camera slots (total, free)."""
    import ray
    from ray._private import state

    nodes: list[dict[str, Any]] = ray.nodes()  # type: ignore[no-untyped-call]
    available: Mapping[str, Any] = state.available_resources_per_node()  # type: ignore[no-untyped-call]
    out = []
    for node in nodes:
        if not node.get("Alive"):
            continue
        node_id = str(node.get("NodeID"))
        total = int(float((node.get("Resources") or {}).get(CAMERA_SLOTS, 0.0)))
        free = int(float((available.get(node_id) or {}).get(CAMERA_SLOTS, 0.0)))
        out.append(NodeSlots(node_id, total, free))
    return out
