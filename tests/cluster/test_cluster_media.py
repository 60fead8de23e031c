"""Recordings across nodes, on a real Ray cluster with a real PostgreSQL.

Segments really recorded on node-1 (a ``Recorder`` in a Ray task there) and a snapshot stored
on node-2 are served by the API of the test process (the head, which records nothing)
through the nodes' media actors: bytes equal, ranges, audit, a clip cut from them; retention on
node-1 deletes only node-1's rows and files; a node removed answers 503 naming it while
the rest goes on. The tests share one cluster and run in file order (the last one kills a
node).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from tests.api.conftest import face_detector  # noqa: F401 (fixture)
from tests.api.test_clips import fetch_clip
from tests.cluster.media_fixtures import (
    MAX_AGE_S,
    ClusterEnv,
    cluster_env,  # noqa: F401 (fixture)
    login_admin,
    record_on,
    snapshot_on,
    wait_for,
)
from tests.ray_cluster import require_ray
from tests.store.conftest import pg_server  # noqa: F401 (fixture)
from vigil.cluster import CAMERA_SLOTS, NAMESPACE, camera_actor_name, detector_actor_name
from vigil.errors import MediaNotFoundError
from vigil.store import AuditRepo, EventRepo, Role, SegmentRepo, SegmentRow
from vigil.types import Event, EventState

pytestmark = pytest.mark.slow
require_ray()


@pytest.fixture(scope="module")
def node1_segments(cluster_env: ClusterEnv) -> list[SegmentRow]:  # noqa: F811
    """Segments of ``cam1`` really recorded on node-1 (about 5 s of the shared clip)."""
    ids = record_on(cluster_env, "node-1", "cam1", seconds=5.0)
    assert len(ids) >= 2, ids
    with cluster_env.db.session() as session:
        rows = [SegmentRepo(session).get(i) for i in ids]
    return [r for r in rows if r is not None]


def _file_of(env: ClusterEnv, node: str, row: SegmentRow) -> Path:
    return env.root / node / row.path


def test_segment_recorded_on_node_plays_through_the_head(
    cluster_env: ClusterEnv, node1_segments: list[SegmentRow],  # noqa: F811
) -> None:  # fmt: skip
    env, row = cluster_env, node1_segments[0]
    assert row.node == "node-1"
    original = _file_of(env, "node-1", row).read_bytes()
    assert hashlib.sha256(original).hexdigest() == row.sha256
    assert not (env.root / "head" / row.path).exists(), "the head holds no recording"
    admin = login_admin(env.api)
    reply = admin.get(f"/api/recordings/{row.id}/media")
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "video/mp4"
    assert reply.content == original
    part = admin.get(f"/api/recordings/{row.id}/media", headers={"Range": "bytes=100-1099"})
    assert part.status_code == 206
    assert part.content == original[100:1100]
    assert part.headers["content-range"] == f"bytes 100-1099/{len(original)}"
    # The verified copy is in the API node's cache, named by the row's digest.
    assert (env.root / "api-cache" / row.sha256[:2] / row.sha256).read_bytes() == original
    with env.db.session() as session:
        reads = AuditRepo(session).records(action="segment.read")
    assert [(r.actor, r.target, r.details["range"]) for r in reads] == [
        ("root", row.path, None),
        ("root", row.path, "bytes=100-1099"),
    ]


def test_clip_spanning_node_segments_renders(
    cluster_env: ClusterEnv, node1_segments: list[SegmentRow],  # noqa: F811
) -> None:  # fmt: skip
    env = cluster_env
    first, last = node1_segments[0], node1_segments[-1]
    event = Event(id="ev-span", camera_id="cam1", label="car", class_id=2, track_id=7,
                  start=first.end - 0.5, end=last.start + 0.5, state=EventState.END,
                  live=True)  # fmt: skip
    with env.db.session() as session:
        EventRepo(session).upsert(event)
    admin = login_admin(env.api)
    reply = fetch_clip(admin, "/api/events/ev-span/clip")
    assert reply.status_code == 200, reply.text
    clip = env.root / "clip.mp4"
    clip.write_bytes(reply.content)
    capture = cv2.VideoCapture(str(clip))
    frames = 0
    while capture.read()[0]:
        frames += 1
    capture.release()
    assert frames >= 10, "the clip holds the event's span plus its rolls, from both segments"


def test_snapshot_on_another_node_is_served(cluster_env: ClusterEnv) -> None:  # noqa: F811
    env = cluster_env
    snapshot_on(env, "node-2", "ev-n2", "cam2", time.time() - 30)
    with env.db.session() as session:
        row = EventRepo(session).get("ev-n2")
    assert row is not None
    assert row.node == "node-2"
    assert row.snapshot_path is not None
    assert (env.root / "node-2" / row.snapshot_path).is_file()
    admin = login_admin(env.api)
    reply = admin.get("/api/events/ev-n2/snapshot")
    assert reply.status_code == 200, reply.text
    image = cv2.imdecode(np.frombuffer(reply.content, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (120, 160, 3)


def test_media_actor_keeps_to_its_data_dir(
    cluster_env: ClusterEnv, node1_segments: list[SegmentRow],  # noqa: F811
) -> None:  # fmt: skip
    import ray

    env = cluster_env
    outside = env.root / "secret.txt"
    outside.write_text("not media")
    link = env.root / "node-1" / "recordings" / "cam1" / "escape.mp4"
    link.symlink_to(outside)
    digest = hashlib.sha256(b"not media").hexdigest()
    with env.db.session() as session:
        row = SegmentRepo(session).add(camera="cam1", path="recordings/cam1/escape.mp4",
                                       start=1.0, end=2.0, size=9, sha256=digest,
                                       node="node-1")  # fmt: skip
    admin = login_admin(env.api)
    reply = admin.get(f"/api/recordings/{row.id}/media")
    assert reply.status_code == 404, reply.text
    actor = env.actors["node-1"]
    with pytest.raises(MediaNotFoundError):
        ray.get(actor.stat.remote("recordings/cam1/escape.mp4", "recordings"))
    with pytest.raises(MediaNotFoundError):  # a row naming another folder of the data dir
        ray.get(actor.read.remote("recordings/../keys/x", "recordings", 0, 10))
    with env.db.session() as session:
        SegmentRepo(session).delete([row.id])
    link.unlink()


def test_one_path_on_two_nodes_plays_each_nodes_own_file(
    cluster_env: ClusterEnv,  # noqa: F811
) -> None:
    """A camera that failed over within the second its last segment started names its first
    segment on the new node as the last one was named on the old: both rows are kept (unique
    per node), and each plays its own node's file."""
    env = cluster_env
    rel = "recordings/cam2/2026/12/01/14/00.05.mp4"
    start = time.time() - 120
    rows: dict[str, SegmentRow] = {}
    for node in ("node-1", "node-2", "head"):
        data = f"{node}'s segment ".encode() * 300
        (env.root / node / rel).parent.mkdir(parents=True, exist_ok=True)
        (env.root / node / rel).write_bytes(data)
        with env.db.session() as session:
            rows[node] = SegmentRepo(session).add(
                camera="cam2",
                path=rel,
                start=start,
                end=start + 2.0,
                size=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                node=None if node == "head" else node,
            )
    admin = login_admin(env.api)
    for node, row in rows.items():
        reply = admin.get(f"/api/recordings/{row.id}/media")
        assert reply.status_code == 200, reply.text
        assert reply.content == (env.root / node / rel).read_bytes(), f"{node}'s own file"


def _old_segment(env: ClusterEnv, node: str, camera: str, start: float) -> SegmentRow:
    """A segment row of ``node`` with its file in that node's data dir, recorded long ago."""
    rel = f"recordings/{camera}/old/{node}-{int(start)}.mp4"
    path = env.root / node / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    data = f"{node} {start}".encode() * 100
    path.write_bytes(data)
    with env.db.session() as session:
        return SegmentRepo(session).add(camera=camera, path=rel, start=start, end=start + 2.0,
                                        size=len(data), sha256=hashlib.sha256(data).hexdigest(),
                                        node=None if node == "head" else node)  # fmt: skip


def test_retention_on_a_node_deletes_only_its_own(
    cluster_env: ClusterEnv, node1_segments: list[SegmentRow],  # noqa: F811
) -> None:  # fmt: skip
    import ray

    env = cluster_env
    now = time.time()
    old = now - MAX_AGE_S - 600
    mine = _old_segment(env, "node-1", "cam1", old)
    theirs = _old_segment(env, "node-2", "cam1", old)
    local = _old_segment(env, "head", "cam1", old)
    locked = _old_segment(env, "node-1", "cam1", old + 10)
    with env.db.session() as session:
        SegmentRepo(session).set_lock("cam1", old + 10, old + 11, True)
    snapshot_on(env, "node-1", "ev-n1-old", "cam1", old)
    snapshot_on(env, "node-2", "ev-n2-old", "cam1", old)
    result = ray.get(env.actors["node-1"].run_retention.remote(now), timeout=120)
    assert result.segments == [mine.path]
    assert len(result.snapshots) == 1
    assert "ev-n1-old" in result.snapshots[0]
    assert not (env.root / "node-1" / mine.path).exists()
    for node, row in (("node-2", theirs), ("head", local), ("node-1", locked)):
        assert (env.root / node / row.path).is_file(), f"{node}'s file {row.path} is kept"
    with env.db.session() as session:
        left = {r.id for r in SegmentRepo(session).list()}
        n1, n2 = EventRepo(session).get("ev-n1-old"), EventRepo(session).get("ev-n2-old")
    assert mine.id not in left
    assert {theirs.id, local.id, locked.id} <= left
    assert {r.id for r in node1_segments} <= left, "young recordings stay"
    assert n1 is not None
    assert n1.snapshot_path is None
    assert n2 is not None
    assert n2.snapshot_path is not None
    assert (env.root / "node-2" / n2.snapshot_path).is_file()


def _camera_like(node_env: ClusterEnv) -> Any:
    """An actor placed as a camera actor is (one camera slot, by name), and a detector
    actor with ``stats()`` on the node it landed on."""
    import ray

    @ray.remote(num_cpus=0)
    class Camera:
        def node(self) -> str:
            return str(ray.get_runtime_context().get_node_id())

    camera = Camera.options(name=camera_actor_name("cam1"), namespace=NAMESPACE,
                            lifetime="detached", resources={CAMERA_SLOTS: 1}).remote()  # fmt: skip
    node_id = ray.get(camera.node.remote(), timeout=120)

    @ray.remote(num_cpus=0)
    class Detector:
        def stats(self) -> dict[str, Any]:
            return {
                "node": "?",
                "node_id": node_id,
                "images": 40,
                "batches": 10,
                "mean_batch": 4.0,
                "queue": 1,
                "max_batch": 8,
                "max_wait_ms": 20.0,
            }

    from tests.cluster.media_fixtures import pinned

    detector = Detector.options(
        name=detector_actor_name(node_id, "test"),
        namespace=NAMESPACE,
        lifetime="detached",
        scheduling_strategy=pinned(node_id),
    ).remote()
    ray.get(detector.stats.remote(), timeout=120)
    return camera, detector, node_id


def test_cluster_status_cli_and_api(cluster_env: ClusterEnv) -> None:  # noqa: F811
    import ray

    env = cluster_env
    camera, detector, node_id = _camera_like(env)
    try:
        where = next(n.name for n in env.cluster.nodes.values() if n.node_id == node_id)
        assert where in ("node-1", "node-2")
        done = subprocess.run(
            [sys.executable, "-m", "vigil.cli", "cluster", "status", "--address",
             env.cluster.address, "--json"],
            capture_output=True, text=True, timeout=180, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        status = json.loads(done.stdout)["cluster"]
        _check_status(status, where, node_id)
        admin = login_admin(env.api)
        reply = admin.get("/api/cluster")
        assert reply.status_code == 200, reply.text
        _check_status(reply.json()["cluster"], where, node_id)
        viewer_status = env.api.login("vic", Role.VIEWER).get("/api/cluster")
        assert viewer_status.status_code == 403
        table = subprocess.run(
            [
                sys.executable,
                "-m",
                "vigil.cli",
                "cluster",
                "status",
                "--address",
                env.cluster.address,
            ],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert table.returncode == 0, table.stderr
        assert "node-1" in table.stdout
        assert "cam1" in table.stdout
        assert "rebalanced: none" in table.stdout  # next to the failovers
    finally:
        ray.kill(camera)
        ray.kill(detector)


def _check_status(status: dict[str, Any], where: str, node_id: str) -> None:
    nodes = {n["name"]: n for n in status["nodes"]}
    assert set(nodes) == {"head", "node-1", "node-2"}, nodes
    assert status["rebalanced"] == []  # nothing moved; a moved camera: test_rebalance
    assert all(n["alive"] for n in nodes.values())
    assert nodes["head"]["camera_slots_total"] == 0
    assert nodes[where]["camera_slots_total"] == 2
    assert nodes[where]["camera_slots_used"] == 1
    other = "node-2" if where == "node-1" else "node-1"
    assert nodes[other]["camera_slots_used"] == 0
    assert nodes[where]["node_id"] == node_id
    assert nodes[where]["cpus"] == 1
    cams = {c["camera"]: c for c in status["cameras"]}
    assert cams["cam1"]["node"] == where
    assert cams["cam1"]["restarts"] == 0
    loads = {d["node_id"]: d for d in status["detectors"]}
    assert loads[node_id]["mean_batch"] == 4.0
    assert loads[node_id]["queue"] == 1
    assert status["failovers"] == []


def test_the_api_counts_every_nodes_quarantine(
    cluster_env: ClusterEnv, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
) -> None:  # fmt: skip
    """Files given up on a node sit in that node's quarantine: /api/health and /metrics on
    the head count them with its own (before, only the head's data dir was counted)."""
    from vigil.cluster import media

    monkeypatch.setattr(media, "QUARANTINE_KEEP_S", 0.0)
    env = cluster_env
    made = []
    for node, size in (("node-1", 1000), ("node-2", 2500), ("head", 300)):
        path = env.root / node / "quarantine" / "cam-q" / "2026-12-01" / "10" / "00.00.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\0" * size)
        made.append(path)
    try:
        assert env.media.quarantine()["cam-q"] == (3, 3800)
        health = env.api.client().get("/api/health").json()
        assert (health["quarantine_files"], health["quarantine_bytes"]) >= (3, 3800)
        body = login_admin(env.api).get("/metrics").text
        assert 'vigil_quarantine_files{camera="cam-q"} 3.0' in body
        assert 'vigil_quarantine_bytes{camera="cam-q"} 3800.0' in body
    finally:
        for path in made:
            path.unlink()


def test_node_down_answers_503_naming_it_and_the_rest_goes_on(
    cluster_env: ClusterEnv, node1_segments: list[SegmentRow],  # noqa: F811
) -> None:  # fmt: skip
    env = cluster_env
    fresh = _old_segment(env, "node-1", "cam1", time.time() - 100)  # never fetched: no copy
    other = _old_segment(env, "node-2", "cam2", time.time() - 100)
    admin = login_admin(env.api)
    actor = env.actors["node-1"]
    env.cluster.remove("node-1")

    def node1_gone() -> bool:
        # The raylet is killed at once; its worker processes notice within seconds.
        import ray

        try:
            ray.get(actor.identity.remote(), timeout=5)
        except Exception:
            return True
        return False

    wait_for(node1_gone, "node-1's processes to end")
    reply = admin.get(f"/api/recordings/{fresh.id}/media")
    assert reply.status_code == 503, reply.text
    error = reply.json()["error"]
    assert error["code"] == "node_unavailable"
    assert "'node-1'" in error["message"]
    assert reply.headers["retry-after"]
    # What node-1 recorded before and the head fetched is still served from the copy.
    cached = admin.get(f"/api/recordings/{node1_segments[0].id}/media")
    assert cached.status_code == 200
    # node-2 and its media actor go on.
    served = admin.get(f"/api/recordings/{other.id}/media")
    assert served.status_code == 200, served.text
    assert served.content == (env.root / "node-2" / other.path).read_bytes()
    assert admin.get("/api/events/ev-n2/snapshot").status_code == 200

    def node1_dead() -> bool:
        nodes = admin.get("/api/cluster").json()["cluster"]["nodes"]
        return not any(n["alive"] and n["name"] == "node-1" for n in nodes)

    wait_for(node1_dead, "the cluster status to show node-1 gone", deadline_s=180)
    again = admin.get(f"/api/recordings/{fresh.id}/media")
    assert again.status_code == 503
    assert "'node-1'" in again.json()["error"]["message"]


def test_media_actors_again_when_a_node_joins(cluster_env: ClusterEnv) -> None:  # noqa: F811
    """After node-1's loss: ``ensure_media_actors`` keeps the running actors and starts one on a
    node that joined, whose recordings are then served."""
    import ray

    from vigil.cluster.media import ensure_media_actors

    env = cluster_env
    before = env.actors["node-2"]
    joined = env.cluster.add("node-3", env.root / "node-3", slots=2)
    wait_for(lambda: any(n["NodeID"] == joined.node_id and n["Alive"] for n in ray.nodes()),
             "node-3 to join")  # fmt: skip
    handles = ensure_media_actors(env.root / "unused")
    assert set(handles) == {"head", "node-2", "node-3"}
    assert handles["node-2"]._actor_id == before._actor_id, "the running actor is kept"
    row = _old_segment(env, "node-3", "cam3", time.time() - 50)
    reply = login_admin(env.api).get(f"/api/recordings/{row.id}/media")
    assert reply.status_code == 200, reply.text
    assert reply.content == (env.root / "node-3" / row.path).read_bytes()
