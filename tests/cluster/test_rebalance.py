"""Rebalancing (``vigil.cluster.rebalance``, ``RayBackend.move_group``) on a real cluster: two
worker nodes of two camera slots, two RTSP cameras in groups of one, PostgreSQL.

A node is killed: its camera fails over to the other node, which then runs both. A new node
joins (as a machine that came back: a new Ray node): within the deadline the head moves one
camera onto it, one node a camera each again. The move's new group stands by on the target
before the old one stops, so the moved camera's segments do not overlap (no two actors
recording it) and its gap is no longer than the failover's bound; every event is closed, no
camera runs in two actors, and a head that starts now adopts the moved group.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.conftest import (
    SEGMENT_S,
    Mount,
    cluster_config,
    fast_backoff,
    relayed,
    wait_for,
)
from tests.ray_cluster import FAST_FAILURE_DETECTION, LocalCluster, local_cluster
from tests.store.conftest import PgServer, new_pg_database
from vigil.cluster import NAMESPACE
from vigil.cluster.backend import RayBackend
from vigil.cluster.group import adopt_groups, group_moves
from vigil.cluster.status import gather_status
from vigil.runtime.serve import Supervisor
from vigil.store import Database, EventFilter, EventRepo, SegmentRepo

#: The people clip has a keyframe every second: a fresh recorder's first segment starts at
#: the first keyframe it reads.
KEYFRAME_S = 1.0
#: Seconds between rebalancing steps here (and a new node's wait before it is moved onto).
INTERVAL_S = 3.0


@pytest.fixture(scope="module")
def people() -> Iterator[list[Mount]]:
    """Two cameras of the people clip (keyframes every second: tight recording gaps)."""
    with relayed(2, ("one-by-one-person-detection.mp4",)) as mounts:
        yield mounts


def _segments(db: Database, camera: str) -> list[Any]:
    with db.session() as session:
        return sorted((s for s in SegmentRepo(session).list() if s.camera == camera),
                      key=lambda s: s.start)  # fmt: skip


def _events(db: Database) -> list[Any]:
    with db.session() as session:
        return list(EventRepo(session).list(EventFilter(), limit=100_000).items)


def _camera_actors() -> list[str]:
    import ray

    return sorted(str(a["name"]) for a in ray.util.list_named_actors(all_namespaces=True)
                  if a.get("namespace") == NAMESPACE
                  and str(a["name"]).startswith("vigil-camera:"))  # fmt: skip


class _Watch(threading.Thread):
    """Where each camera runs and whether it is online, every 0.1 s (the head's view)."""

    def __init__(self, supervisor: Supervisor) -> None:
        super().__init__(daemon=True)
        self.supervisor = supervisor
        self.seen: list[tuple[float, str, str | None, bool]] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.1):
            now = time.monotonic()
            self.seen += [(now, s.name, s.node, s.online) for s in self.supervisor.cameras()]

    def offline(self, camera: str, before: str | None, after: str) -> float:
        """Seconds from the camera's last online look on ``before`` to its first on
        ``after`` (the move's offline time, as the API showed it)."""
        seen = [(t, node) for t, name, node, online in list(self.seen)
                if name == camera and online]  # fmt: skip
        first_after = min(t for t, node in seen if node == after)
        last_before = max(t for t, node in seen if node == before and t < first_after)
        return first_after - last_before


def _moves(camera: str) -> int:
    """How often the group of ``camera`` was moved, from its actor's name."""
    (name,) = [a for a in _camera_actors() if a.endswith(":" + camera)]
    return group_moves(name.removeprefix("vigil-camera:"))


@pytest.mark.slow
def test_a_node_that_comes_back_gets_cameras_again(
    tmp_path: Path, pg_server: PgServer, people: list[Mount]
) -> None:
    import ray

    url = new_pg_database(pg_server)
    with local_cluster(tmp_path / "nodes", workers=2, slots=2,
                       system_config=FAST_FAILURE_DETECTION) as cluster:  # fmt: skip
        ray.init(address=cluster.address, namespace=NAMESPACE)
        config = cluster_config(tmp_path / "data", url, cluster.address,
                                {m.path: m.url for m in people}, cameras_per_actor=1,
                                rebalance_interval=INTERVAL_S)  # fmt: skip
        db = Database(url)
        supervisor = Supervisor(config, db=db, backoff=fast_backoff, stall_timeout=5.0,
                                cluster_backend=RayBackend)  # fmt: skip
        supervisor.start()
        try:
            _lose_and_rebalance(cluster, supervisor, db, tmp_path)
        finally:
            supervisor.stop()
            assert [e.id for e in _events(db) if e.end is None] == [], "an event left open"
            assert _camera_actors() == [], "a camera actor outlived the head's stop"
            db.close()
            ray.shutdown()


def _lose_and_rebalance(
    cluster: LocalCluster, supervisor: Supervisor, db: Database, tmp_path: Path
) -> None:  # fmt: skip
    watch = _Watch(supervisor)
    watch.start()
    try:
        _check(cluster, supervisor, db, tmp_path, watch)
    finally:
        watch.done.set()


def _check(
    cluster: LocalCluster, supervisor: Supervisor, db: Database, tmp_path: Path, watch: _Watch
) -> None:  # fmt: skip
    backend = supervisor.backend
    assert isinstance(backend, RayBackend)

    def where() -> dict[str, str | None]:
        return {s.name: s.node for s in supervisor.cameras()}

    def spread() -> bool:
        nodes = where()
        return all(supervisor.workers[c].online for c in nodes) and None not in nodes.values() \
            and max(Counter(nodes.values()).values()) == 1  # fmt: skip

    wait_for(lambda: all(s.online for s in supervisor.cameras()), 240,
             "not every camera came online")  # fmt: skip
    cameras = sorted(where())
    # Ray may have put both on one node: then the head moves one (a step of its own).
    wait_for(spread, 180, "the cameras were not spread over the two nodes")
    wait_for(lambda: all(_segments(db, c) for c in cameras), 120, "a camera has no segment")

    # A node lost: its camera fails over to the other one, which runs both.
    victim = where()[cameras[0]]
    assert victim is not None
    failed = cameras[0]
    started = time.monotonic()
    cluster.remove(victim)
    wait_for(lambda: supervisor.workers[failed].online and where()[failed] not in (None, victim),
             120, "the lost node's camera did not come back")  # fmt: skip
    failover_s = time.monotonic() - started
    survivor = where()[failed]
    assert set(where().values()) == {survivor}
    rebalanced_before = len(backend.rebalanced)
    moved_before = {c: _moves(c) for c in cameras}

    # A node joins (a machine back: a new Ray node): one camera moves onto it.
    cluster.add("node-3", tmp_path / "nodes" / "node-3", slots=2)
    joined = time.monotonic()
    wait_for(spread, 180, "the cameras were not spread onto the node that joined")
    print(f"failover {failover_s:.1f} s; spread again {time.monotonic() - joined:.1f} s "
          "after the node joined")  # fmt: skip
    now = where()
    moved = [c for c in cameras if now[c] == "node-3"]
    assert len(moved) == 1
    camera = moved[0]
    moves = backend.rebalanced[rebalanced_before:]
    assert [(m.camera, m.before, m.after) for m in moves] == [(camera, survivor, "node-3")]
    # A move is no restart: the failover counted once, the move apart.
    assert [f.camera for f in backend.failovers] == [failed]
    assert supervisor.workers[camera].restarts == (1 if camera == failed else 0)

    # One actor per camera, the moved one named with its move count (what status shows).
    actors = _camera_actors()
    assert len(actors) == 2, actors
    assert sorted(c for a in actors for c in a.rpartition(":")[2].split(",")) == cameras
    assert _moves(camera) == moved_before[camera] + 1
    # What `vigil cluster status`, /api/cluster and /metrics show.
    status = {c.camera: c for c in gather_status().cameras}
    assert status[camera].node_id == cluster.nodes["node-3"].node_id
    assert status[camera].moves == moved_before[camera] + 1
    counted = supervisor.metrics().moves
    assert counted is not None
    assert counted[(camera, "rebalanced")] == sum(m.camera == camera for m in backend.rebalanced)
    assert counted[(failed, "failover")] == 1

    # Recording resumes on the new node; the segments of old and new group do not overlap,
    # and the gap is within what a failover may cost.
    def resumed() -> list[Any]:
        return [s for s in _segments(db, camera) if s.node == "node-3"]

    wait_for(lambda: bool(resumed()), 120, "recording did not resume on the new node")
    first = resumed()[0]
    last_old = max((s for s in _segments(db, camera) if s.node == survivor),
                   key=lambda s: s.end)  # fmt: skip
    gap = first.start - last_old.end
    offline = watch.offline(camera, survivor, "node-3")
    print(
        f"move of {camera} from {survivor}: segment gap {gap:.2f} s, offline {offline:.1f} s "
        f"(old group's stop to the new one's first answer {moves[0].seconds:.1f} s)"
    )
    # A segment's times are its session's wall clock at the first packet plus stream time,
    # so they run late by what the relay had buffered when the session connected: a gap
    # measured from them may come out a little below 0 though the old group was ended
    # before the new one started. Two actors recording at once would overlap by seconds.
    assert gap > -KEYFRAME_S, f"two actors recorded {camera} at once for {-gap:.2f} s"
    assert gap <= failover_s + SEGMENT_S + KEYFRAME_S, f"{camera}: {gap:.1f} s gap"
    assert offline <= failover_s, "a move costs no more than a failover"
    assert (cluster.nodes["node-3"].data_dir / first.path).is_file()

    # No event of the moved camera left open by the old group: each closed before the new
    # group's first segment (the old group's stop ended them), none duplicated across it.
    switch = first.start
    for event in _events(db):
        if event.camera == camera and event.start < last_old.end:
            assert event.end is not None, event.id
            assert event.end <= switch + 0.5, event.id

    # A head that started now would adopt both groups, the moved one too, ending nothing.
    adoption = adopt_groups({n: c.spec for n, c in backend.cameras.items()})
    assert sorted(adoption.members) == cameras
    assert adoption.unconfigured == []
    assert _camera_actors() == actors
