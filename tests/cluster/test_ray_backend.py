"""The Ray backend on a real cluster: four RTSP cameras on two worker nodes of two camera
slots each (the head takes none), PostgreSQL, one camera with YOLOX-Nano.

One Supervisor runs for the whole module (starting four camera actors is what costs); each
test checks one promise of issue 9 §2 against it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.conftest import SEGMENT_S, Mount, cluster_config, fast_backoff, wait_for
from tests.conftest import require_file
from tests.ray_cluster import LocalCluster, local_cluster
from tests.store.conftest import PgServer, new_pg_database
from vigil.cluster import DETECTOR_PREFIX, NAMESPACE, keyed_actor_parts
from vigil.cluster.backend import RayBackend, named_actors
from vigil.config.models import ZoneConfig
from vigil.paths import shared_models_dir
from vigil.runtime.serve import Supervisor
from vigil.store import Database, EventFilter, EventRepo, SegmentRepo
from vigil.store.models import CountRow
from vigil.types import Event

YOLOX_CAMERA = "cam0"  # streams the people clip


class Collector:
    """An extra sink of the head: what reaches MQTT, webhooks and the live WebSocket."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._lock = threading.Lock()

    def publish(self, event: Event) -> None:
        with self._lock:
            self.events.append(event)

    def close(self) -> None:
        pass


@dataclass
class Running:
    cluster: LocalCluster
    supervisor: Supervisor
    db: Database
    head: Collector


@pytest.fixture(scope="module")
def running(
    tmp_path_factory: pytest.TempPathFactory, pg_server: PgServer, relays: list[Mount]
) -> Iterator[Running]:
    import ray

    model = require_file(shared_models_dir() / "yolox_nano.onnx")
    root = tmp_path_factory.mktemp("ray")
    url = new_pg_database(pg_server)
    with local_cluster(root / "nodes", workers=2, slots=2) as cluster:
        ray.init(address=cluster.address, namespace=NAMESPACE)
        cameras = {f"cam{i}": relay.url for i, relay in enumerate(relays)}
        config = cluster_config(root / "data", url, cluster.address, cameras,
                                models={YOLOX_CAMERA: str(model)})  # fmt: skip
        db = Database(url)
        head = Collector()
        supervisor = Supervisor(config, db=db, sinks=(head,), backoff=fast_backoff,
                                stall_timeout=5.0, cluster_backend=RayBackend)  # fmt: skip
        for node in cluster.nodes.values():  # UNINDEXED_CAMERA may land on either node
            _given_up_segment(root / "clip.mp4", node.data_dir)
        supervisor.start()
        try:
            wait_for(lambda: all(s.online for s in supervisor.cameras()), 240,
                     "not every camera came online")  # fmt: skip
            yield Running(cluster, supervisor, db, head)
        finally:
            supervisor.stop()
            db.close()
            ray.shutdown()


UNINDEXED_CAMERA = "cam1"


def _given_up_segment(clip: Path, data_dir: Path) -> None:
    """A segment of ``UNINDEXED_CAMERA`` left in ``data_dir`` by a run whose database was
    down: its file and its journal entry, no row."""
    from vigil.errors import StorageError
    from vigil.record.segmenter import Segmenter

    if not clip.exists():
        subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i",
                        "testsrc=size=160x120:rate=10", "-t", "3", "-c:v", "libx264",
                        "-g", "10", str(clip)], check=True)  # fmt: skip

    def down(_info: Any) -> None:
        raise StorageError("cannot reach the database server")

    import av

    segmenter = Segmenter(UNINDEXED_CAMERA, data_dir, on_segment=down,
                          clock=lambda: 1_700_000_000.0)  # fmt: skip
    with av.open(str(clip)) as inp:
        video = inp.streams.video[0]
        segmenter.set_streams(video, None)
        for packet in inp.demux(video):
            segmenter.write(packet)
    segmenter.finish_segment()  # reported once, journaled; then the run stops
    assert segmenter.journal.path.is_file()


def test_a_segment_an_earlier_run_left_unindexed_is_indexed_with_its_node(
    running: Running,
) -> None:
    """The camera actor reads its camera's journal on its node at start: the row gets the
    node's name, and the file stays where it lies."""
    node = _node_of(running, UNINDEXED_CAMERA)
    data = running.cluster.nodes[node].data_dir
    (left,) = (data / "recordings" / UNINDEXED_CAMERA / "2023-11-14").rglob("*.mp4")
    path = left.relative_to(data).as_posix()

    def row() -> Any:
        with running.db.session() as session:
            return next((r for r in SegmentRepo(session).list(UNINDEXED_CAMERA)
                         if r.path == path), None)  # fmt: skip

    wait_for(lambda: row() is not None, 60, "the left segment was not indexed")
    assert row().node == node
    assert not (data / "recordings" / UNINDEXED_CAMERA / ".unindexed.jsonl").exists()


def test_cameras_are_spread_over_the_nodes_by_capacity(running: Running) -> None:
    statuses = running.supervisor.cameras()
    per_node = Counter(s.node for s in statuses)
    # Two slots per worker node, none on the head: four cameras can only sit two and two.
    assert per_node == {"node-1": 2, "node-2": 2}
    assert running.supervisor.backend.kind == "ray"
    assert running.supervisor.store is None, "the head does not write what the nodes write"
    assert running.supervisor.recorders == {}, "the head records nothing"


def _node_of(running: Running, camera: str) -> str:
    node = next(s.node for s in running.supervisor.cameras() if s.name == camera)
    assert node is not None
    return node


def test_segments_reach_postgresql_with_the_node_holding_them(running: Running) -> None:
    def segments() -> list[Any]:
        with running.db.session() as session:
            return list(SegmentRepo(session).list())

    cameras = sorted(running.supervisor.workers)
    wait_for(lambda: {r.camera for r in segments()} >= set(cameras), 120,
             "a camera has no segment in PostgreSQL")  # fmt: skip
    for row in segments():
        node = _node_of(running, row.camera)
        assert row.node == node
        # The file lies in that node's data dir, nowhere else.
        assert (running.cluster.nodes[node].data_dir / row.path).is_file()
        assert not (running.supervisor.root / row.path).exists()


def test_events_and_counts_reach_postgresql_and_the_head(running: Running) -> None:
    def stored() -> list[Any]:
        with running.db.session() as session:
            return list(EventRepo(session).list(EventFilter(), limit=1000).items)

    def counts() -> int:
        with running.db.session() as session:
            return session.query(CountRow).count()

    wait_for(lambda: any(r.snapshot_path for r in stored()), 180, "no event with a snapshot")
    wait_for(lambda: counts() > 0, 180, "no line crossing counted")
    for row in stored():
        if row.snapshot_path is not None:
            node = _node_of(running, row.camera)
            assert row.node == node
            assert (running.cluster.nodes[node].data_dir / row.snapshot_path).is_file()
    # The head's sinks got the events too, marked as recorded, each row written once.
    ids = {r.id for r in stored()}
    wait_for(lambda: ids <= {e.id for e in running.head.events}, 30,
             "stored events did not reach the head's sinks")  # fmt: skip
    assert all(e.has_clip for e in running.head.events)


def test_a_rule_edited_on_the_head_reaches_the_camera_on_its_node(running: Running) -> None:
    supervisor = running.supervisor
    camera = "cam1"
    zones, lines = supervisor.rules(camera)
    assert "everywhere" not in supervisor.counts(camera).get("zones", {})
    zones["everywhere"] = ZoneConfig.model_validate(
        {"polygon": [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]}
    )
    supervisor.update_rules(camera, zones, lines)
    # The camera's pipeline, in its actor on another node, reports the new zone.
    wait_for(lambda: "everywhere" in supervisor.counts(camera).get("zones", {}), 60,
             "the new zone is not in the remote camera's counts")  # fmt: skip
    assert "everywhere" in supervisor.rules(camera)[0]


def test_the_yolox_camera_is_served_by_its_nodes_batched_detector(running: Running) -> None:
    import ray

    handle: Any = running.supervisor.workers[YOLOX_CAMERA]
    wait_for(lambda: handle.analysed > 5, 180, "the YOLOX camera analysed no frames")
    node_id = handle.node_id
    detector = next(actor for name, actor in named_actors(DETECTOR_PREFIX)
                    if keyed_actor_parts(name)[1] == node_id)  # fmt: skip
    stats = ray.get(detector.stats.remote(), timeout=30)
    assert stats["node"] == _node_of(running, YOLOX_CAMERA)
    assert stats["node_id"] == node_id
    assert stats["images"] > 0
    assert stats["batches"] > 0
    assert stats["mean_batch"] >= 1.0
    assert {"queue", "max_batch", "max_wait_ms"} <= set(stats)

    def people() -> int:
        with running.db.session() as session:
            return EventRepo(session).count(EventFilter(camera=YOLOX_CAMERA, label="person"))

    wait_for(lambda: people() > 0, 180, "YOLOX-Nano found no person in the people clip")


def test_live_frame_and_tracks_come_from_the_actor(running: Running) -> None:
    frame = running.supervisor.latest_frame("cam2")
    assert frame is not None
    assert frame.ndim == 3
    assert frame.shape[2] == 3
    tracks = running.supervisor.latest_tracks("cam2")
    assert tracks.time is not None


def test_the_recording_switch_reaches_the_camera_on_its_node(running: Running) -> None:
    """Home Assistant's recording switch (``Supervisor.set_switch``, as an MQTT command
    calls it) goes to the camera's actor: its recorder stops writing segments, then starts
    again."""
    import ray

    supervisor, camera = running.supervisor, "cam3"
    handle: Any = supervisor.workers[camera]
    assert camera in supervisor.recorded_remotely

    def segments() -> int:
        with running.db.session() as session:
            return len(SegmentRepo(session).list(camera))

    def actor_records() -> bool | None:
        drained = ray.get(handle.actor.drain.remote(handle.acked), timeout=30)
        return drained.recording  # type: ignore[no-any-return]

    wait_for(lambda: segments() > 0, 120, f"{camera} recorded nothing")
    supervisor.set_switch(camera, "recording", False)
    assert handle.recording is False
    assert actor_records() is False
    seen: dict[str, float] = {"count": -1, "since": 0.0}

    def quiet() -> bool:
        """No new segment for four segment lengths (the one open at the switch ends)."""
        now, count = time.monotonic(), segments()
        if count != seen["count"]:
            seen.update(count=count, since=now)
        return now - seen["since"] > 4 * SEGMENT_S

    wait_for(quiet, 120, f"{camera} kept recording with its switch off")
    stopped = segments()
    supervisor.set_switch(camera, "recording", True)
    assert actor_records() is True
    wait_for(lambda: segments() > stopped, 120, f"{camera} did not record again")


_LOCAL = """
import json, ray
from vigil.cluster.backend import connect
from vigil.cluster.group import node_capacities
from vigil.config.models import ClusterConfig
print(json.dumps([connect(ClusterConfig(address="local"), 3), node_capacities(),
                  ray.get_runtime_context().gcs_address]))
ray.shutdown()
"""


def test_cluster_address_local_starts_its_own_cluster_beside_a_running_one(
    running: Running,
) -> None:
    # RAY_ADDRESS names the module's cluster, as on a machine where one runs already.
    env = {**os.environ, "RAY_ADDRESS": running.cluster.address}
    done = subprocess.run([sys.executable, "-c", _LOCAL], env=env, capture_output=True,
                          text=True, timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    started, capacities, address = json.loads(done.stdout.strip().splitlines()[-1])
    assert started is True
    assert capacities == [3.0], "one node with a camera slot per camera"
    assert address != running.cluster.address


def _groups() -> list[list[str]]:
    """The cameras of each camera actor alive in the namespace (one per group)."""
    import ray

    from vigil.cluster.group import cameras_of

    return sorted(cameras_of(str(entry["name"]).removeprefix("vigil-camera:"))
                  for entry in ray.util.list_named_actors(all_namespaces=True)
                  if entry.get("namespace") == NAMESPACE
                  and str(entry["name"]).startswith("vigil-camera:"))  # fmt: skip


def test_the_cameras_share_actor_processes_in_groups_of_a_node(running: Running) -> None:
    # cameras_per_actor 4 by default, two slots a node: two actors of two cameras.
    groups = _groups()
    assert sorted(map(len, groups)) == [2, 2]
    assert sorted(c for g in groups for c in g) == sorted(running.supervisor.workers)
    for group in groups:
        assert len({_node_of(running, c) for c in group}) == 1, "a group lives on one node"


def test_a_head_that_starts_adopts_its_groups_and_ends_every_other_camera_actor(
    running: Running,
) -> None:
    """What a head that starts finds in the namespace (``adopt_groups``): the running groups
    made with its cameras' settings are taken over as they are (the same actors); a camera
    actor of cameras it does not configure (here one named as heads before keyed groups
    named them) is ended."""
    import ray

    from vigil.cluster.group import adopt_groups

    @ray.remote(num_cpus=0)
    class Leftover:
        def ping(self) -> bool:
            return True

    backend: Any = running.supervisor.backend
    old = Leftover.options(name="vigil-camera:camZ,cam9", namespace=NAMESPACE,
                           lifetime="detached").remote()  # fmt: skip
    assert ray.get(old.ping.remote(), timeout=120) is True
    specs = {name: cam.spec for name, cam in backend.cameras.items()}
    found = adopt_groups(specs)
    assert sorted(found.members) == sorted(specs), "every running group adopted"
    for name, member in found.members.items():
        assert member.group._actor_id == backend.cameras[name].actor.group._actor_id
    assert found.unconfigured == ["camZ", "cam9"]
    wait_for(lambda: "vigil-camera:camZ,cam9" not in
             {e["name"] for e in ray.util.list_named_actors(all_namespaces=True)}, 60,
             "the leftover actor was not ended")  # fmt: skip
    assert sorted(map(len, _groups())) == [2, 2], "this head's groups untouched"


def test_a_group_s_process_dying_restarts_all_of_its_cameras(running: Running) -> None:
    """Second to last: the process of one group actor is killed (as a crash); Ray restarts
    it, and each of its cameras comes back as a new incarnation with its events closed."""
    import ray

    backend: Any = running.supervisor.backend
    group = next(g for g in _groups() if YOLOX_CAMERA not in g)
    before = {c: backend.cameras[c].incarnation for c in group}
    killed_at = time.time()
    ray.kill(backend.cameras[group[0]].actor.group, no_restart=False)

    def back() -> bool:
        return all(backend.cameras[c].incarnation not in (None, before[c])
                   and backend.cameras[c].online for c in group)  # fmt: skip

    wait_for(back, 180, f"the cameras of {group} did not come back")
    assert {f.camera for f in backend.failovers} >= set(group)
    others = [c for c in running.supervisor.workers if c not in group]
    assert all(backend.cameras[c].incarnations == 1 for c in others), "neighbours untouched"
    with running.db.session() as session:
        rows = EventRepo(session).list(EventFilter(), limit=10_000).items
    left = [r.id for r in rows if r.camera in group and r.start < killed_at and r.end is None]
    assert left == [], "the restarted cameras closed the events the dead process left open"


def test_stop_leaves_no_event_open(running: Running, tmp_path: Path) -> None:
    """Last in the module: stop the Supervisor; every camera's events are closed."""
    running.supervisor.stop()
    with running.db.session() as session:
        repo = EventRepo(session)
        assert repo.count(EventFilter()) > 0
        rows = repo.list(EventFilter(), limit=10_000).items
    assert [r.id for r in rows if r.end is None] == []
    assert not any(s.online for s in running.supervisor.cameras())
