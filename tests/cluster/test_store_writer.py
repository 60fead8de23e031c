"""The node's store writer: the changes of all the node's cameras, in order, in batches.

Real Ray (head + two worker nodes), real PostgreSQL. Two "cameras" on node-1 (tasks pinned
there, each with its own ``NodeStore``, as camera actors have) publish the full life of many
events and their counts; the rows must end as one-by-one writes would leave them, carry the
node's name with their snapshots, and take far fewer transactions than changes. Their
segments too: the rows ``index_segment`` would write one by one (motion, events), in a few
batches, and a row the store refuses comes back to the camera's recording status.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.cluster.conftest import wait_for
from tests.cluster.writer_tasks import (
    EVENTS,
    SEGMENTS,
    SHA,
    camera_task,
    ended,
    note_motion,
    outage_task,
    refused_task,
    segment_infos,
    segment_task,
    stale_detector,
    writer_of,
)
from tests.ray_cluster import LocalCluster, local_cluster
from tests.store.conftest import PgServer, new_pg_database
from vigil.cluster import NAMESPACE, detector_actor_name, media_actor_name, writer_actor_name
from vigil.cluster.backend import RayBackend
from vigil.cluster.head import ClusterHead, node_retention
from vigil.cluster.media import ensure_media_actors
from vigil.cluster.writer import writer_key
from vigil.config.models import VigilConfig
from vigil.record.motion import MotionSpans
from vigil.runtime.serve import index_segment
from vigil.store import CountRepo, Database, EventFilter, EventRepo, SegmentRepo
from vigil.store.sink import StoreEventSink


@pytest.fixture(scope="module")
def cluster(pg_server: PgServer) -> Iterator[tuple[LocalCluster, str, PgServer]]:
    import ray

    root = Path(tempfile.mkdtemp(prefix="vigil-writer-"))
    with local_cluster(root, workers=2, slots=1) as local:
        ray.init(address=local.address, namespace=NAMESPACE, log_to_driver=False)
        try:
            yield local, new_pg_database(pg_server), pg_server
        finally:
            ray.shutdown()


def test_a_nodes_cameras_write_through_one_batching_writer(
    cluster: tuple[LocalCluster, str, PgServer],
) -> None:
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    local, db_url = cluster[0], cluster[1]
    node = local.nodes["node-1"]
    pinned = NodeAffinitySchedulingStrategy(node.node_id, soft=False)
    task: Any = ray.remote(num_cpus=0)(camera_task).options(scheduling_strategy=pinned)
    start = 1_767_000_000.0
    done = ray.get([task.remote(db_url, "/unused", cam, start) for cam in ("cam1", "cam2")],
                   timeout=180)  # fmt: skip
    assert done == [EVENTS, EVENTS]
    writer = _writer(node.node_id, db_url)
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
    _end_writer(node.node_id, db_url)


def _writer(node_id: str, db_url: str) -> Any:
    """The node's writer for ``db_url`` (the tasks' data dir is ``/unused``)."""
    import ray

    name = writer_actor_name(node_id, writer_key(db_url, "/unused"))
    return ray.get_actor(name, namespace=NAMESPACE)


def _gone(name: str) -> bool:
    import ray

    try:
        ray.get_actor(name, namespace=NAMESPACE)
    except ValueError:
        return True
    return False


def _end_writer(node_id: str, db_url: str) -> None:
    """Kill the node's writer and wait for its name to be free (the next test's cameras
    would otherwise find the dying one)."""
    import ray

    ray.kill(_writer(node_id, db_url))
    name = writer_actor_name(node_id, writer_key(db_url, "/unused"))
    wait_for(lambda: _gone(name), 60, "the killed writer's name was not freed")


def _pinned_task(local: LocalCluster, node: str, function: Any) -> Any:
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    pinned = NodeAffinitySchedulingStrategy(local.nodes[node].node_id, soft=False)
    return ray.remote(num_cpus=0)(function).options(scheduling_strategy=pinned)


_COLUMNS = ("camera", "path", "start", "end", "size", "sha256", "evidence_lock", "has_motion",
            "has_events", "node")  # fmt: skip


def _rows(url: str) -> list[tuple[Any, ...]]:
    db = Database(url)
    try:
        with db.session() as session:
            return sorted(tuple(getattr(r, c) for c in _COLUMNS)
                          for r in SegmentRepo(session).list())  # fmt: skip
    finally:
        db.close()


def test_a_nodes_segments_go_through_its_writer_in_batches_as_index_segment_writes_them(
    cluster: tuple[LocalCluster, str, PgServer],
) -> None:
    import ray

    local, _, pg = cluster
    node = local.nodes["node-1"]
    url, reference = new_pg_database(pg), new_pg_database(pg)
    start = 1_767_100_000.0
    cameras = ("cam1", "cam2")
    task = _pinned_task(local, "node-1", segment_task)
    errors = ray.get([task.remote(url, "/unused", cam, start) for cam in cameras], timeout=180)
    assert errors == [[None], [None]], "every row was stored"
    writer = _writer(node.node_id, url)
    ray.get(writer.flush.remote(), timeout=60)
    stats = ray.get(writer.stats.remote(), timeout=60)
    assert stats["segments"] == 2 * SEGMENTS
    # Batched: many segments of both cameras per transaction (one each before).
    assert 1 <= stats["segment_batches"] < 2 * SEGMENTS / 4, stats

    # The single host's path, one segment and one transaction at a time, for comparison.
    db = Database(reference)
    sink = StoreEventSink(db, None, node="node-1")
    try:
        for cam in cameras:
            recorder: Any = SimpleNamespace(motion=MotionSpans())
            for index, info in enumerate(segment_infos(node.data_dir, cam, start)):
                note_motion(recorder.motion, info, index)
                index_segment(db, node.data_dir, info, recorder, node="node-1")
            sink.publish(ended(cam, start))
    finally:
        sink.close()
        db.close()
    rows, expected = _rows(url), _rows(reference)
    assert len(rows) == 2 * SEGMENTS
    assert rows == expected
    assert any(r[7] for r in rows), "motion flagged"
    assert any(r[8] for r in rows), "events flagged"
    _end_writer(node.node_id, url)


def test_a_segment_row_refused_by_the_store_fails_the_recording_until_one_is_stored(
    cluster: tuple[LocalCluster, str, PgServer],
) -> None:
    import ray

    local, _, pg = cluster
    node = local.nodes["node-1"]
    url = new_pg_database(pg)
    start = 1_767_200_000.0
    first = segment_infos(node.data_dir, "cam3", start)[0]
    path = first.path.relative_to(node.data_dir).as_posix()
    db = Database(url)
    try:
        with db.session() as session:  # another segment holds the first one's place
            SegmentRepo(session).add(
                camera="cam3",
                path=path,
                start=first.start,
                end=first.end,
                size=1,
                sha256=SHA,
                node="node-1",
            )
        task = _pinned_task(local, "node-1", refused_task)
        refused, after = ray.get(task.remote(url, "/unused", "cam3", start), timeout=180)
        assert refused is not None
        assert "not indexed" in refused, refused
        assert "already recorded" in refused
        assert after is None, "a stored segment ends the failure"
        with db.session() as session:
            rows = SegmentRepo(session).list("cam3")
        assert [r.sha256 for r in rows] == [SHA, SHA], "the refused row was not written"
    finally:
        db.close()
    _end_writer(node.node_id, url)


def test_a_writer_left_for_another_database_is_not_reused_and_the_next_head_ends_it(
    cluster: tuple[LocalCluster, str, PgServer],
) -> None:
    """A head killed with -9 leaves its (detached) writers and detectors running: the next
    head, of another database, must neither write through them nor leave them."""
    import ray

    local, _, pg = cluster
    node = local.nodes["node-1"]
    old_url, new_url = new_pg_database(pg), new_pg_database(pg)
    task = _pinned_task(local, "node-1", writer_of)
    old = ray.get(task.remote(old_url, "/unused", "before"), timeout=180)
    detector = ray.get(_pinned_task(local, "node-1", stale_detector).remote(), timeout=180)
    new = ray.get(task.remote(new_url, "/unused", "after"), timeout=180)
    assert old != new, "another database, another writer"
    for url, wanted in ((old_url, ["before"]), (new_url, ["after"])):
        ray.get(_writer(node.node_id, url).flush.remote(), timeout=60)
        db = Database(url)
        try:
            with db.session() as session:
                ids = [r.id for r in EventRepo(session).list(EventFilter(), limit=10).items]
        finally:
            db.close()
        assert ids == wanted, f"{url}: {ids}"

    # The next head (of the new database, no camera with a model) ends the stale ones.
    config = VigilConfig.model_validate({"data_dir": "/unused", "database_url": new_url,
                                         "server": {"backend": "ray"}})  # fmt: skip
    hooks: Any = None
    backend = RayBackend([], hooks, config, database_url=new_url)
    backend.start()
    try:
        wait_for(lambda: _gone(old) and _gone(detector), 60, "the stale actors were not ended")
        assert not _gone(new), "the writer of this head's database is kept"
    finally:
        backend.close(10)
    assert detector == detector_actor_name(node.node_id, "stale")


def test_segments_written_while_the_database_is_down_are_stored_when_it_is_back(
    cluster: tuple[LocalCluster, str, PgServer],
) -> None:
    import ray

    local, _, pg = cluster
    node = local.nodes["node-1"]
    url = new_pg_database(pg)
    name = url.rsplit("/", 1)[1]
    pg.admin_sql(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")  # down for the nodes
    try:
        task = _pinned_task(local, "node-1", outage_task)
        error = ray.get(task.remote(url, "/unused", "cam4", 1_767_300_000.0), timeout=180)
        assert error is None, "queued, not refused"
        stats = ray.get(_writer(node.node_id, url).stats.remote(), timeout=60)
        assert stats["queued"] >= 1, stats
    finally:
        pg.admin_sql(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")

    def stored() -> int:
        db = Database(url)
        try:
            with db.session() as session:
                return len(SegmentRepo(session).list("cam4"))
        finally:
            db.close()

    wait_for(lambda: stored() == 5, 120, "the queued segments were not stored")
    stats = ray.get(_writer(node.node_id, url).stats.remote(), timeout=60)
    assert stats["queued"] == 0
    assert stats["dropped"] == 0
    _end_writer(node.node_id, url)


def test_media_actors_left_by_a_head_that_died_are_made_again_by_the_next(
    cluster: tuple[LocalCluster, str, PgServer],
) -> None:
    """A media actor holds its head's retention (database URL, policy): the next head, of
    another database, makes its own instead of finding the old one by name."""
    import ray

    local, _, pg = cluster
    old_url, new_url = new_pg_database(pg), new_pg_database(pg)
    config = VigilConfig.model_validate({"data_dir": str(local.nodes["head"].data_dir),
                                         "database_url": new_url,
                                         "server": {"backend": "ray"}})  # fmt: skip
    left = ensure_media_actors(config.data_dir, node_retention(config, old_url))
    assert "node-1" in left
    head = ClusterHead(config, new_url)
    head.start()
    try:
        now = ray.get_actor(media_actor_name("node-1"), namespace=NAMESPACE)
        assert now._actor_id != left["node-1"]._actor_id, "the old head's actor was reused"
        assert ray.get(now.identity.remote(), timeout=60)["node"] == "node-1"
    finally:
        head.stop()
