"""``vigil serve --cluster ADDRESS`` as a user runs it: a real process on a real Ray cluster
(head + two worker nodes of one camera slot each), a real PostgreSQL and two RTSP cameras.

The serve process is the head's driver: it runs no camera itself and holds no recording, so
every segment it plays comes from the node that recorded it, through that node's media
actor; ``/api/cluster`` names the nodes (their names come from the media actors the head
starts on every node).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.alerts.alert_servers import free_port
from tests.cluster.conftest import SEGMENT_S, start_relay
from tests.conftest import require_file
from tests.ray_cluster import LocalCluster, local_cluster
from tests.rtsp_relay import require_tools
from tests.runtime.serve_process import ServeProcess
from tests.store.conftest import PgServer, new_pg_database
from vigil.cluster import NAMESPACE
from vigil.paths import shared_data_dir
from vigil.store import Database, EventFilter, EventRepo, SegmentRepo

CAMERAS = ("cam0", "cam1")


def _config(data: Path, port: int, database_url: str, urls: list[str]) -> str:
    lines = {"across": {"points": [[0.05, 0.5], [0.95, 0.5]]}}
    cameras = {
        name: {"sources": [{"url": url, "options": {"rtsp_transport": "udp"}}],
               "detect": {"model": "motion", "fps": 5}, "lines": lines}
        for name, url in zip(CAMERAS, urls, strict=True)
    }  # fmt: skip
    return yaml.safe_dump({
        "detect": {"model": "motion", "fps": 5},
        "record": {"mode": "continuous", "segment_seconds": SEGMENT_S},
        "data_dir": str(data),
        "database_url": database_url,
        "server": {"host": "127.0.0.1", "port": port, "secure_cookies": False},
        "cluster": {"call_timeout": 20.0},
        "cameras": cameras,
    })  # fmt: skip


@dataclass
class Served:
    serve: ServeProcess
    cluster: LocalCluster
    db: Database
    admin: httpx.Client


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, pg_server: PgServer) -> Iterator[Served]:
    require_tools("rtsp-server-perl", "ffmpeg")
    clips = require_file(shared_data_dir() / "clips")
    root = tmp_path_factory.mktemp("serve-cluster")
    url = new_pg_database(pg_server)
    relay, mounts = start_relay(clips, len(CAMERAS))
    try:
        with local_cluster(root / "nodes", workers=2, slots=1) as cluster:
            port = free_port()
            folder = root / "head"
            folder.mkdir()
            config = folder / "vigil.yaml"
            config.write_text(_config(folder / "data", port, url, [m.url for m in mounts]))
            serve = _serve(folder, config, port, cluster.address)
            db = Database(url)
            try:
                serve.wait_for(serve.api_up, 300, "the API did not come up")
                admin = serve.admin()
                try:
                    yield Served(serve, cluster, db, admin)
                finally:
                    admin.close()
            finally:
                serve.stop()
                db.close()
    finally:
        for mount in mounts:
            mount.unpublish()
        relay.stop()


def _serve(folder: Path, config: Path, port: int, address: str) -> ServeProcess:
    """``vigil serve --config FILE --cluster ADDRESS`` (the options after the action, as the
    README writes them), its output in ``serve.log``."""
    serve = ServeProcess.__new__(ServeProcess)
    serve.folder, serve.port, serve.data = folder, port, folder / "data"
    serve.log = folder / "serve.log"
    with serve.log.open("wb") as out:
        serve.process = subprocess.Popen(
            [sys.executable, "-m", "vigil.cli", "serve", "--config", str(config),
             "--cluster", address],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    return serve


def test_cameras_run_on_the_worker_nodes_and_say_where(served: Served) -> None:
    serve, admin = served.serve, served.admin

    def placed() -> bool:
        cams = {c["name"]: c for c in admin.get("/api/cameras").json()}
        return all(cams[n]["online"] and cams[n]["node"] for n in CAMERAS)

    serve.wait_for(placed, 300, "the cameras did not come online on the nodes")
    nodes = {c["name"]: c["node"] for c in admin.get("/api/cameras").json()}
    # One slot per worker node, none on the head: one camera on each.
    assert sorted(nodes.values()) == ["node-1", "node-2"], nodes


def test_a_segment_recorded_on_a_node_plays_through_the_head(served: Served) -> None:
    serve, cluster, db, admin = served.serve, served.cluster, served.db, served.admin

    def recorded() -> list[Any]:
        with db.session() as session:
            return [r for r in SegmentRepo(session).list("cam0") if r.node]

    serve.wait_for(lambda: bool(recorded()), 300, "no segment of cam0 was indexed")
    row = recorded()[0]
    assert row.node in ("node-1", "node-2")
    on_node = cluster.nodes[row.node].data_dir / row.path
    assert on_node.is_file(), f"the segment is not in {row.node}'s data dir"
    # The head's own data dir never holds it: the bytes came through the media actor.
    assert not (serve.data / row.path).exists()
    played = admin.get(f"/api/recordings/{row.id}/media")
    assert played.status_code == 200, played.text
    assert played.content == on_node.read_bytes()
    part = admin.get(f"/api/recordings/{row.id}/media", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.content == on_node.read_bytes()[100:200]


def test_a_preview_made_on_a_node_is_served_through_the_head(served: Served) -> None:
    """The camera actor makes its redacted timeline previews on its node, beside its
    segments; the head serves them through that node's media actor."""
    from vigil.record.previews import parse_offsets, preview_file

    serve, cluster, db, admin = served.serve, served.cluster, served.db, served.admin

    def previewed() -> list[Any]:
        with db.session() as session:
            return [r for r in SegmentRepo(session).list("cam0") if r.node and r.previews]

    serve.wait_for(lambda: bool(previewed()), 300, "no segment of cam0 got previews")
    row = previewed()[0]
    offset = parse_offsets(row.previews)[0]
    relative = preview_file(row.path, offset)
    on_node = cluster.nodes[row.node].data_dir / relative
    assert on_node.is_file(), f"the preview is not in {row.node}'s data dir"
    assert not (serve.data / relative).exists()
    reply = admin.get("/api/recordings/cam0/preview", params={"at": row.start + offset / 1000})
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "image/jpeg"
    assert reply.content == on_node.read_bytes()


def test_the_cluster_status_names_the_nodes_and_the_cameras(served: Served) -> None:
    serve, admin = served.serve, served.admin

    def named() -> dict[str, Any]:
        body = admin.get("/api/cluster").json()["cluster"]
        return body if body and {"node-1", "node-2"} <= {n["name"] for n in body["nodes"]} \
            else {}  # fmt: skip

    serve.wait_for(lambda: bool(named()), 120, "/api/cluster did not name both nodes")
    status = named()
    slots = {n["name"]: n["camera_slots_total"] for n in status["nodes"]}
    assert slots["node-1"] == slots["node-2"] == 1
    placed = {c["camera"]: c["node"] for c in status["cameras"]}
    assert set(placed) == set(CAMERAS)
    assert set(placed.values()) == {"node-1", "node-2"}


def test_sigterm_stops_the_cluster_cleanly(served: Served) -> None:
    import ray

    serve, db = served.serve, served.db
    serve.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 120
    while serve.process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert serve.process.returncode == 0, serve.output[-4000:]
    with db.session() as session:
        for name in CAMERAS:
            open_events = [e for e in EventRepo(session).list(EventFilter(camera=name)).items
                           if e.end is None]  # fmt: skip
            assert not open_events, f"{name}: events left open"
    # Nothing of this head is left on the cluster: cameras, detectors, writers and the
    # (detached) media actors all ended with it.
    ray.init(address=served.cluster.address, namespace=NAMESPACE, log_to_driver=False)
    try:
        left = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                if a.get("namespace") == NAMESPACE]  # fmt: skip
    finally:
        ray.shutdown()
    assert left == [], f"actors left on the cluster: {left}"
