"""Failover (issue 9 §3) on a real cluster: three worker nodes of two camera slots, four RTSP
cameras, PostgreSQL. The node running the most cameras is killed (its raylet and every
worker on it, as a lost machine); Ray restarts those camera actors on the surviving nodes.

The head's health checks are made quicker (``FAST_FAILURE_DETECTION``: a node is declared
dead after about 4 s instead of Ray's default 15 s), as ``docs/cluster.md`` suggests for
production; the 30 s bound is the issue's.
"""

from __future__ import annotations

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
from tests.ray_cluster import FAST_FAILURE_DETECTION, local_cluster
from tests.store.conftest import PgServer, new_pg_database
from vigil.cluster import NAMESPACE
from vigil.cluster.backend import RayBackend
from vigil.runtime.serve import Supervisor
from vigil.store import Database, EventFilter, EventRepo, SegmentRepo

#: Failover must bring the cameras back within this (issue 9 §3).
BOUND_S = 30.0
#: The people clip has a keyframe every second: a fresh recorder's first segment starts at
#: the first keyframe it reads.
KEYFRAME_S = 1.0


@pytest.fixture(scope="module")
def people() -> Iterator[list[Mount]]:
    """Four cameras of the people clip (keyframes every second: tight recording gaps)."""
    with relayed(4, ("one-by-one-person-detection.mp4",)) as mounts:
        yield mounts


def _segments(db: Database) -> list[Any]:
    with db.session() as session:
        return list(SegmentRepo(session).list())


def _events(db: Database) -> list[Any]:
    with db.session() as session:
        return list(EventRepo(session).list(EventFilter(), limit=100_000).items)


@pytest.mark.slow
def test_a_lost_node_s_cameras_come_back_on_the_others(
    tmp_path: Path, pg_server: PgServer, people: list[Mount]
) -> None:
    import ray

    url = new_pg_database(pg_server)
    with local_cluster(tmp_path / "nodes", workers=3, slots=2,
                       system_config=FAST_FAILURE_DETECTION) as cluster:  # fmt: skip
        ray.init(address=cluster.address, namespace=NAMESPACE)
        config = cluster_config(tmp_path / "data", url, cluster.address,
                                {m.path: m.url for m in people})  # fmt: skip
        db = Database(url)
        supervisor = Supervisor(config, db=db, backoff=fast_backoff, stall_timeout=5.0,
                                cluster_backend=RayBackend)  # fmt: skip
        supervisor.start()
        try:
            _fail_over(cluster, supervisor, db)
        finally:
            supervisor.stop()
            # Stopped: every event of every camera is closed, and the actors are gone.
            assert [e.id for e in _events(db) if e.end is None] == []
            db.close()
            ray.shutdown()


def _fail_over(cluster: Any, supervisor: Supervisor, db: Database) -> None:
    def where() -> dict[str, str | None]:
        return {s.name: s.node for s in supervisor.cameras()}

    wait_for(lambda: all(s.online for s in supervisor.cameras()), 240,
             "not every camera came online")  # fmt: skip
    cameras = sorted(where())
    wait_for(lambda: {s.camera for s in _segments(db)} >= set(cameras), 120,
             "a camera has no segment yet")  # fmt: skip
    placed = where()
    victim = Counter(placed.values()).most_common(1)[0][0]
    assert victim is not None
    moved = sorted(c for c, n in placed.items() if n == victim)
    segments_before = {s.id for s in _segments(db)}
    events_before = {e.id for e in _events(db)}

    killed_at = time.time()
    started = time.monotonic()
    cluster.remove(victim)
    wait_for(
        lambda: all(
            supervisor.workers[c].online and where()[c] not in (None, victim) for c in moved
        ),
        120,
        "the lost node's cameras did not come back",
    )
    failover_s = time.monotonic() - started
    print(f"failover of {moved} from {victim}: {failover_s:.1f} s")
    assert failover_s <= BOUND_S

    # The status and the API say where each camera runs now; the others did not move.
    now = where()
    assert all(now[c] == placed[c] for c in cameras if c not in moved)
    assert Counter(now.values()).most_common(1)[0][1] <= 2, "no node over its slots"
    # The lost node's cameras were one group (two slots a node): they moved together.
    assert len({now[c] for c in moved}) == 1
    assert {f.camera for f in supervisor.backend.failovers} >= set(moved)  # type: ignore[attr-defined]

    # The dead actors' open events were closed at their last update, before the restart.
    for event in _events(db):
        if event.camera in moved and event.start < killed_at:
            assert event.end is not None, f"event {event.id} of {event.camera} left open"
            assert event.end <= killed_at + 2.0, "closed at its last update, not later"

    # Recording resumes on the new node, in that node's data dir.
    def resumed(camera: str) -> list[Any]:
        return [s for s in _segments(db) if s.camera == camera and s.node == now[camera]
                and s.start > killed_at]  # fmt: skip

    wait_for(lambda: all(resumed(c) for c in moved), 120, "recording did not resume")
    for camera in moved:
        first = min(resumed(camera), key=lambda s: s.start)
        assert (cluster.nodes[now[camera]].data_dir / first.path).is_file()
        last_old = max((s.end for s in _segments(db) if s.camera == camera and s.node == victim),
                       default=None)  # fmt: skip
        assert last_old is not None
        gap = first.start - last_old
        # The segment being written when the node died is lost with it (at most one).
        assert gap <= failover_s + SEGMENT_S + KEYFRAME_S, f"{camera}: {gap:.1f} s gap"

    # Nothing committed before the loss is gone (the lost node's rows stay, with its name).
    assert segments_before <= {s.id for s in _segments(db)}
    assert events_before <= {e.id for e in _events(db)}
