"""The node's store writer: the changes of all the node's cameras, in order, in batches.

Real Ray (head + two worker nodes), real PostgreSQL. Two "cameras" on node-1 (tasks pinned
there, each with its own ``NodeStore``, as camera actors have) publish the full life of many
events and their counts; the rows must end as one-by-one writes would leave them, carry the
node's name with their snapshots, and take far fewer transactions than changes.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.writer_tasks import EVENTS, camera_task
from tests.ray_cluster import LocalCluster, local_cluster
from tests.store.conftest import PgServer, new_pg_database
from vigil.cluster import NAMESPACE, writer_actor_name
from vigil.store import CountRepo, Database, EventFilter, EventRepo


@pytest.fixture(scope="module")
def cluster(pg_server: PgServer) -> Iterator[tuple[LocalCluster, str]]:
    import ray

    root = Path(tempfile.mkdtemp(prefix="vigil-writer-"))
    with local_cluster(root, workers=2, slots=1) as local:
        ray.init(address=local.address, namespace=NAMESPACE, log_to_driver=False)
        try:
            yield local, new_pg_database(pg_server)
        finally:
            ray.shutdown()


def test_a_nodes_cameras_write_through_one_batching_writer(
    cluster: tuple[LocalCluster, str],
) -> None:
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    local, db_url = cluster
    node = local.nodes["node-1"]
    pinned = NodeAffinitySchedulingStrategy(node.node_id, soft=False)
    task: Any = ray.remote(num_cpus=0)(camera_task).options(scheduling_strategy=pinned)
    start = 1_767_000_000.0
    done = ray.get([task.remote(db_url, "/unused", cam, start) for cam in ("cam1", "cam2")],
                   timeout=180)  # fmt: skip
    assert done == [EVENTS, EVENTS]
    writer = ray.get_actor(writer_actor_name(node.node_id), namespace=NAMESPACE)
    ray.get(writer.flush.remote(), timeout=60)
    stats = ray.get(writer.stats.remote(), timeout=60)
    assert stats["node"] == "node-1"
    assert stats["events"] == 2 * EVENTS * 4
    # Batched: many changes per transaction (a per-change writer would need 320).
    assert 1 <= stats["batches"] < 2 * EVENTS * 4 / 4

    db = Database(db_url)
    try:
        with db.session() as session:
            for cam in ("cam1", "cam2"):
                rows = EventRepo(session).list(EventFilter(camera=cam), limit=1000).items
                assert len(rows) == EVENTS
                for row in rows:  # the END, written last, is what each row says
                    assert row.state == "end"
                    assert row.end == row.start + 2.0
                    assert row.top_score == pytest.approx(0.9)
                    assert row.node == "node-1"
                    assert row.snapshot_path is not None
                    assert (node.data_dir / row.snapshot_path).is_file()
            counts = CountRepo(session).series("cam1", since=start - 3600,
                                               until=start + EVENTS * 10 + 3600)  # fmt: skip
            assert sum(c.count for c in counts) == EVENTS
    finally:
        db.close()
    ray.kill(writer)
