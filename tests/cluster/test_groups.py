"""Camera groups (``vigil.cluster.group``) without a cluster: how cameras are cut into groups
by node capacity, how a handle's calls reach its camera through the group, and how the
cluster status reads a group's name. On a real cluster, ``test_ray_backend`` and
``test_failover`` run the cameras in groups (the default ``cameras_per_actor``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.test_outbox import FakeActor
from vigil.cluster.group import (
    _Member,
    adopt_groups,
    cameras_of,
    drained_for,
    find_groups,
    group_actor_name,
    group_key,
    group_moves,
    group_name_parts,
    plan_groups,
    start_drains,
)
from vigil.cluster.status import _cameras
from vigil.config.models import ClusterConfig, VigilConfig

CAMS = [f"cam{i}" for i in range(10)]


def _fits(groups: Sequence[Sequence[str]], capacities: Sequence[int]) -> bool:
    """Whether the groups can all be placed, each on one node, within its slots."""
    free = sorted(capacities, reverse=True)
    for group in sorted(groups, key=len, reverse=True):
        fits = [i for i, slots in enumerate(free) if slots >= len(group)]
        if not fits:
            return False
        free[min(fits, key=lambda i: free[i])] -= len(group)
    return True


def _flat(groups: Sequence[Sequence[str]]) -> list[str]:
    return sorted(c for group in groups for c in group)


def test_groups_are_no_bigger_than_a_node_and_leave_a_whole_node_for_failover() -> None:
    # The bench's and the failover test's cluster: three nodes of two slots, four cameras.
    groups = plan_groups(CAMS[:4], 4, [2, 2, 2])
    assert sorted(map(len, groups)) == [2, 2]
    assert _flat(groups) == CAMS[:4]
    # The head's node (no slots) counts for nothing.
    assert sorted(map(len, plan_groups(CAMS[:4], 4, [0, 2, 2]))) == [2, 2]


def test_groups_follow_cameras_per_actor_on_big_nodes_as_evenly_as_possible() -> None:
    assert sorted(map(len, plan_groups(CAMS, 4, [16, 16]))) == [3, 3, 4]
    assert plan_groups(CAMS[:3], 1, [16]) == [["cam0"], ["cam1"], ["cam2"]]
    assert plan_groups(CAMS[:6], 8, [16]) == [CAMS[:6]]


@pytest.mark.parametrize("capacities", [[3, 1], [5, 2, 2], [1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
                                        [7, 3], [4, 4, 2]])  # fmt: skip
def test_a_group_no_node_has_room_for_is_split_until_every_camera_fits(
    capacities: list[int],
) -> None:
    cameras = CAMS[: sum(capacities)]  # as many as there are slots
    groups = plan_groups(cameras, 4, capacities)
    assert _flat(groups) == cameras, "every camera in exactly one group"
    assert all(1 <= len(g) <= 4 for g in groups)
    assert _fits(groups, capacities), f"{groups} do not fit {capacities}"


def test_without_nodes_or_slots_the_cameras_wait_in_groups_of_cameras_per_actor() -> None:
    assert sorted(map(len, plan_groups(CAMS[:5], 4, []))) == [2, 3]
    # More cameras than slots: those beyond wait, grouped, for a node with room.
    groups = plan_groups(CAMS, 4, [4, 4])
    assert _flat(groups) == CAMS
    assert all(len(g) <= 4 for g in groups)


def test_cameras_per_actor_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        plan_groups(CAMS, 0, [2])
    with pytest.raises(ValueError, match="cameras_per_actor"):
        ClusterConfig.model_validate({"cameras_per_actor": 0})
    assert ClusterConfig().cameras_per_actor == 4


class FakeGroup:
    """A group actor's handle: records ``call.remote(camera, method, *args)``."""

    def __init__(self) -> None:
        self.actor = FakeActor()

    @property
    def call(self) -> Any:
        return self.actor.call


def test_a_member_addresses_its_camera_s_calls_to_the_group() -> None:
    group = FakeGroup()
    member = _Member(group, "cam1")
    member.drain.remote(7)
    member.update_rules.remote({"z": 1}, {})
    member.stop.remote()
    assert group.actor.calls == [("call", ("cam1", "drain", 7)),
                                 ("call", ("cam1", "update_rules", {"z": 1}, {})),
                                 ("call", ("cam1", "stop"))]  # fmt: skip
    with pytest.raises(AttributeError):
        member.shutdown_the_node  # noqa: B018  # not a camera call


def test_the_cluster_status_lists_each_camera_of_a_group_where_the_group_runs() -> None:
    actors = [
        {"Name": group_actor_name(["cam0", "cam1"]), "State": "ALIVE",
         "Address": {"NodeID": "n1"}, "NumRestarts": 1},
        {"Name": "vigil-camera:cam2", "State": "RESTARTING", "NumRestarts": 2},
        {"Name": group_actor_name(["cam3", "cam4"], "0123456789ab"), "State": "ALIVE",
         "Address": {"NodeID": "n1"}, "NumRestarts": 0},
    ]  # fmt: skip
    placed = _cameras(actors, {"n1": "node-1"})
    assert [(c.camera, c.state, c.node, c.restarts) for c in placed] == [
        ("cam0", "ALIVE", "node-1", 1), ("cam1", "ALIVE", "node-1", 1),
        ("cam2", "RESTARTING", None, 2), ("cam3", "ALIVE", "node-1", 0),
        ("cam4", "ALIVE", "node-1", 0),
    ]  # fmt: skip


class _Recorder:
    """An actor handle whose ``<method>.remote(*args)`` records the call and returns a token
    (what a Ray ObjectRef is to the poll loop)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def __getattr__(self, method: str) -> Any:
        recorder = self

        class _M:
            @staticmethod
            def remote(*args: Any) -> str:
                recorder.calls.append((method, args))
                return f"{recorder.name}.{method}#{len(recorder.calls)}"

        return _M


@dataclass
class _Cam:
    name: str
    actor: Any
    acked: int = 0
    pending: Any = None
    pending_since: float = 0.0
    seen: int = -1

    def __post_init__(self) -> None:
        if self.seen < 0:
            self.seen = self.acked


def test_one_drain_a_poll_round_per_group_shared_by_its_cameras() -> None:
    group, alone = _Recorder("g"), _Recorder("a")
    cams = [_Cam("cam0", _Member(group, "cam0"), acked=3),
            _Cam("cam1", _Member(group, "cam1"), acked=5, seen=8),
            _Cam("cam2", alone, acked=1),
            _Cam("cam3", _Member(group, "cam3"), pending="in flight")]  # fmt: skip
    start_drains(cams, now=7.0)
    # cam3's drain is still in flight: not asked again; the others of its group are.
    # cam1's sinks have not taken all it has seen: acknowledged 5, sent from 8 on.
    assert group.calls == [("drain_many", ({"cam0": 3, "cam1": (5, 8)},))]
    assert alone.calls == [("drain", (1,))]
    assert cams[0].pending == cams[1].pending == "g.drain_many#1"
    assert (cams[2].pending, cams[3].pending) == ("a.drain#1", "in flight")
    assert cams[0].pending_since == 7.0
    # Each camera takes its own part of the group's answer.
    assert drained_for({"cam0": "d0", "cam1": "d1"}, "cam1") == "d1"
    assert drained_for("alone", "cam2") == "alone"


def _specs(**changes: Any) -> dict[str, Any]:
    """Two cameras' ``CameraSpec`` (as the head makes them), ``changes`` to cam1's entry."""
    from tests.cluster.conftest import cluster_config
    from vigil.cluster.camera import CameraSpec

    config = cluster_config(Path("/srv/vigil"), "postgresql://db/vigil", "auto",
                            {"cam0": "rtsp://a/0", "cam1": "rtsp://a/1"})  # fmt: skip
    if changes:
        entry = {**config.cameras["cam1"].model_dump(exclude_unset=True), **changes}
        config = VigilConfig.model_validate({
            **config.model_dump(exclude_unset=True),
            "cameras": {**config.model_dump(exclude_unset=True)["cameras"], "cam1": entry},
        })  # fmt: skip
    return {name: CameraSpec(config, config.camera(name), str(config.database_url), None)
            for name in ("cam0", "cam1")}  # fmt: skip


def test_a_group_s_name_carries_its_cameras_and_the_key_of_their_settings() -> None:
    specs = _specs()
    key = group_key(list(specs.values()))
    name = group_actor_name(["cam0", "cam1"], key)
    assert name == f"vigil-camera:{key}:cam0,cam1"
    assert group_name_parts(name.removeprefix("vigil-camera:")) == (key, ["cam0", "cam1"])
    assert cameras_of(name.removeprefix("vigil-camera:")) == ["cam0", "cam1"]
    # A name without a key (as heads before keyed groups named them) has the key "".
    assert group_name_parts("cam0,cam1") == ("", ["cam0", "cam1"])
    assert "db/vigil" not in name


def test_a_group_s_key_follows_its_cameras_settings_but_not_their_rules() -> None:
    """A head adopts a group only when its key is that of its cameras now: the same
    configuration gives the same key; another source or fps another key; rules edited (the
    head hands the actor those in force anyway) leave it."""
    key = group_key(list(_specs().values()))
    assert group_key(list(_specs().values())) == key
    assert group_key(list(_specs(sources=[{"url": "rtsp://b/1"}]).values())) != key
    assert group_key(list(_specs(detect={"model": "motion", "fps": 2}).values())) != key
    assert group_key(list(_specs(lines={}).values())) == key
    only_cam0 = group_key([_specs()["cam0"]])
    assert only_cam0 != key, "the key is of the group's cameras, in order"


def test_a_moved_group_s_name_counts_its_moves_and_keeps_its_key() -> None:
    key = group_key(list(_specs().values()))
    name = group_actor_name(["cam0", "cam1"], key, moves=2)
    assert name == f"vigil-camera:{key}+2:cam0,cam1"
    tail = name.removeprefix("vigil-camera:")
    assert group_name_parts(tail) == (key, ["cam0", "cam1"])
    assert (group_moves(tail), group_moves(f"{key}:cam0,cam1"), group_moves("cam0")) == (2, 0, 0)
    placed = _cameras([{"Name": name, "State": "ALIVE", "NumRestarts": 1,
                        "Address": {"NodeID": "n1"}}], {"n1": "node-1"})  # fmt: skip
    assert [(c.camera, c.node, c.restarts, c.moves) for c in placed] == [
        ("cam0", "node-1", 1, 2), ("cam1", "node-1", 1, 2)]  # fmt: skip


class _Registry:
    """Ray's named actors as ``adopt_groups``/``find_groups`` see them (no cluster)."""

    def __init__(self, names: list[str]) -> None:
        self.alive = list(names)
        self.killed: list[str] = []

    def list_named_actors(self, all_namespaces: bool = False) -> list[dict[str, str]]:
        return [{"name": name, "namespace": "vigil"} for name in self.alive]

    def get_actor(self, name: str, namespace: str = "") -> str:
        return name  # the handle: its name

    def kill(self, handle: str, no_restart: bool = True) -> None:
        self.alive.remove(handle)
        self.killed.append(handle)


@pytest.mark.parametrize("order", [1, -1])
def test_a_head_that_died_in_a_move_leaves_the_new_group_to_be_adopted(
    monkeypatch: pytest.MonkeyPatch, order: int
) -> None:
    """Killed between starting a move's group and ending the old one: the next head adopts
    the group moved more often (its first drain starts it if it still stands by) and ends the
    old one; an API replica reaches the new one too."""
    ray = pytest.importorskip("ray")
    specs = _specs()
    key = group_key(list(specs.values()))
    old, new = group_actor_name(["cam0", "cam1"], key), group_actor_name(["cam0", "cam1"], key, 1)
    registry = _Registry([old, new][::order])
    monkeypatch.setattr(ray.util, "list_named_actors", registry.list_named_actors)
    monkeypatch.setattr(ray, "get_actor", registry.get_actor)
    monkeypatch.setattr(ray, "kill", registry.kill)
    found = find_groups(["cam0", "cam1"])
    assert {camera: name for camera, (name, _m) in found.items()} == {"cam0": new, "cam1": new}
    adoption = adopt_groups(specs)
    assert {c: m.name for c, m in adoption.members.items()} == {"cam0": new, "cam1": new}
    assert registry.killed == [old]
    assert adoption.unconfigured == []
