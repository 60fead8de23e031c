"""``plan_moves`` (``vigil.cluster.rebalance``) without a cluster: which groups move where,
how many per step, and that nothing moves when the load is even or no node has room."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import pytest

from vigil.cluster.rebalance import Move, NodeSlots, Placed, plan_moves


def _nodes(slots: dict[str, int], groups: Sequence[Placed]) -> list[NodeSlots]:
    """The nodes with their free slots as the groups leave them."""
    used = Counter[str]()
    for group in groups:
        used[group.node_id] += group.size
    return [NodeSlots(node, total, total - used[node]) for node, total in slots.items()]


def _singles(placement: dict[str, int]) -> list[Placed]:
    """One-camera groups, ``placement[node]`` of them on each node."""
    return [Placed(f"{node}-g{i}", node, 1) for node, count in placement.items()
            for i in range(count)]  # fmt: skip


def _settle(slots: dict[str, int], groups: list[Placed], steps: int = 100) -> list[Placed]:
    """Apply one planned move per step until none is planned."""
    for _ in range(steps):
        moves = plan_moves(_nodes(slots, groups), groups)
        if not moves:
            return groups
        assert len(moves) == 1
        move = moves[0]
        groups = [Placed(g.group, move.target, g.size) if g.group == move.group else g
                  for g in groups]  # fmt: skip
    raise AssertionError(f"still moving after {steps} steps")


def _load(groups: Sequence[Placed]) -> Counter[str]:
    load = Counter[str]()
    for group in groups:
        load[group.node_id] += group.size
    return load


def test_a_node_that_came_back_gets_one_group_from_the_fullest_node_per_step() -> None:
    slots = {"a": 4, "b": 4}
    groups = _singles({"a": 4})  # b died, its cameras failed over to a; b is back, empty
    moves = plan_moves(_nodes(slots, groups), groups)
    assert len(moves) == 1
    assert (moves[0].source, moves[0].target, moves[0].size) == ("a", "b", 1)
    assert _load(_settle(slots, groups)) == {"a": 2, "b": 2}


def test_several_moves_per_step_are_planned_on_the_cluster_the_earlier_ones_leave() -> None:
    slots = {"a": 4, "b": 4, "c": 4}
    groups = _singles({"a": 4, "b": 4})
    moves = plan_moves(_nodes(slots, groups), groups, limit=3)
    assert [m.target for m in moves] == ["c", "c"]  # then a 3, b 3, c 2: even
    assert sorted(m.source for m in moves) == ["a", "b"]
    assert len({m.group for m in moves}) == 2


def test_nothing_moves_when_the_load_is_even() -> None:
    slots = {"a": 2, "b": 2, "c": 2}
    for placement in ({"a": 2, "b": 1, "c": 1}, {"a": 1, "b": 1, "c": 1}, {"a": 1, "b": 1},
                      {}, {"a": 2, "b": 2, "c": 2}):  # fmt: skip
        groups = _singles(placement)
        assert plan_moves(_nodes(slots, groups), groups) == [], placement


def test_a_move_that_would_only_swap_the_imbalance_is_not_made() -> None:
    # Two-camera groups on two-slot nodes: a to c would leave c as full as a was.
    slots = {"a": 2, "b": 2, "c": 2}
    groups = [Placed("g1", "a", 2), Placed("g2", "b", 2)]
    assert plan_moves(_nodes(slots, groups), groups) == []
    # A group of three on a 4-slot node next to an empty one: 3/1 after would be 0/3.
    slots = {"a": 4, "b": 4}
    assert plan_moves(_nodes(slots, [Placed("g", "a", 3)]), [Placed("g", "a", 3)]) == []


def test_never_onto_a_node_without_free_slots() -> None:
    groups = _singles({"a": 4})
    # b has slots but another user's actors (or a move under way) took them.
    nodes = [NodeSlots("a", 4, 0), NodeSlots("b", 4, 0), NodeSlots("head", 0, 0)]
    assert plan_moves(nodes, groups) == []
    # A group bigger than the free slots stays; a smaller one of the same node goes.
    groups = [Placed("big", "a", 3), Placed("small", "a", 1)]
    nodes = [NodeSlots("a", 4, 0), NodeSlots("b", 4, 2)]
    assert plan_moves(nodes, groups) == [Move("small", "a", "b", 1)]
    # The head (no slots) never takes one.
    assert plan_moves([NodeSlots("a", 4, 0), NodeSlots("head", 0, 0)], _singles({"a": 4})) == []


def test_the_biggest_group_that_keeps_the_order_moves_first() -> None:
    slots = {"a": 8, "b": 8}
    groups = [Placed("g4", "a", 4), Placed("g2", "a", 2), Placed("g1", "a", 1)]
    # a 7, b 0: moving 4 leaves 3/4 (reversed), 2 leaves 5/2: the group of two.
    assert plan_moves(_nodes(slots, groups), groups) == [Move("g2", "a", "b", 2)]


def test_nodes_of_different_sizes_are_filled_by_cameras_per_slot() -> None:
    slots = {"big": 8, "small": 2}
    settled = _settle(slots, _singles({"small": 2, "big": 0}))
    # Both on big would leave it fuller (2/8) than small (0/2) is: one each.
    assert _load(settled) == {"big": 1, "small": 1}
    load = _load(_settle(slots, _singles({"small": 2, "big": 6})))
    assert load["big"] / 8 >= (load["small"] - 1) / 2


def test_groups_of_lost_nodes_stay_and_the_moves_always_end() -> None:
    groups = _singles({"gone": 2, "a": 3})
    nodes = [NodeSlots("a", 4, 1), NodeSlots("b", 4, 4)]
    moves = plan_moves(nodes, groups, limit=10)
    assert all(m.source == "a" for m in moves)
    assert len(moves) == 1  # a 2, b 1: a second move would reverse them


@pytest.mark.parametrize("seed", range(20))
def test_settling_ends_with_no_node_two_groups_fuller_than_another(seed: int) -> None:
    import random

    rng = random.Random(seed)
    slots = {f"n{i}": rng.choice([2, 4, 4, 8]) for i in range(rng.randint(2, 6))}
    groups: list[Placed] = []
    free = dict(slots)
    for index in range(rng.randint(0, sum(slots.values()))):
        size = rng.choice([1, 1, 2])
        fits = [n for n, f in free.items() if f >= size]
        if not fits:
            break
        node = rng.choice(fits[:2])  # packed onto few nodes, as after failovers
        free[node] -= size
        groups.append(Placed(f"g{index}", node, size))
    settled = _settle(slots, groups)
    load = _load(settled)
    assert all(load[n] <= slots[n] for n in slots), "never over a node's slots"
    assert sorted(g.group for g in settled) == sorted(g.group for g in groups)
    # No move left: on every pair of nodes each group of the fuller one either does not fit
    # the other or would leave it fuller (per slot) than its source.
    assert plan_moves(_nodes(slots, settled), settled) == []
