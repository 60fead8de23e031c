"""``vigil serve --cluster local``: a real ``vigil serve`` process starts a one-node Ray
cluster of its own (for trying the Ray backend out), runs a real RTSP camera on it as an
actor, records and serves its segments, and ends that cluster when it stops: no process it
started is left.

Other Ray clusters run on this machine meanwhile (the other cluster tests'): ``local`` must
start its own, not join one of them.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.alerts.alert_servers import free_port
from tests.cluster.conftest import SEGMENT_S, start_relay
from tests.conftest import require_file
from tests.ray_cluster import local_cluster, require_ray
from tests.rtsp_relay import require_tools
from tests.runtime.serve_process import ServeProcess
from tests.store.conftest import PgServer, new_pg_database
from vigil.paths import shared_data_dir
from vigil.store import Database, EventFilter, EventRepo, SegmentRepo

pytestmark = pytest.mark.slow
require_ray()

CAMERA = "yard"


def _config(data: Path, port: int, database_url: str, url: str) -> str:
    return yaml.safe_dump({
        "detect": {"model": "motion", "fps": 5},
        "record": {"mode": "continuous", "segment_seconds": SEGMENT_S},
        "data_dir": str(data),
        "database_url": database_url,
        "server": {"host": "127.0.0.1", "port": port, "secure_cookies": False},
        "cluster": {"call_timeout": 20.0},
        "cameras": {CAMERA: {"sources": [{"url": url, "options": {"rtsp_transport": "udp"}}],
                             "lines": {"across": {"points": [[0.05, 0.5], [0.95, 0.5]]}}}},
    })  # fmt: skip


def _children() -> dict[int, list[int]]:
    """Every process's children, from ``/proc``."""
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # ended meanwhile
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _descendants(pid: int) -> set[int]:
    tree, found, todo = _children(), set(), [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended


def _names(pids: set[int]) -> set[str]:
    names = set()
    for pid in pids:
        try:
            names.add(Path(f"/proc/{pid}/comm").read_text().strip())
        except OSError:
            continue
    return names


@pytest.fixture(scope="module")
def other_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A Ray cluster already running on this machine (as other tests' are)."""
    with local_cluster(tmp_path_factory.mktemp("other"), workers=0):
        yield


def test_serve_cluster_local_runs_records_and_ends_its_own_cluster(
    tmp_path: Path, pg_server: PgServer, other_cluster: None,
) -> None:  # fmt: skip
    require_tools("rtsp-server-perl", "ffmpeg")
    clips = require_file(shared_data_dir() / "clips")
    url = new_pg_database(pg_server)
    relay, mounts = start_relay(clips, 1)
    port = free_port()
    config = tmp_path / "vigil.yaml"
    config.write_text(_config(tmp_path / "data", port, url, mounts[0].url))
    serve = ServeProcess.__new__(ServeProcess)
    serve.folder, serve.port, serve.data, serve.db_url = tmp_path, port, tmp_path / "data", url
    serve.log = tmp_path / "serve.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "VIGIL_NODE_"))}
    db = Database(url)
    try:
        with serve.log.open("wb") as out:
            serve.process = subprocess.Popen(
                [sys.executable, "-m", "vigil.cli", "serve", "--config", str(config),
                 "--cluster", "local"], stdout=out, stderr=subprocess.STDOUT, env=env)  # fmt: skip
        serve.wait_for(serve.api_up, 300, "the API did not come up")
        admin = serve.admin()

        def online() -> dict[str, Any]:
            cams = {c["name"]: c for c in admin.get("/api/cameras").json()}
            return cams[CAMERA] if cams[CAMERA]["online"] else {}

        serve.wait_for(lambda: bool(online()), 300, "the camera did not come online")
        # The camera runs on this machine's own node, named after the host.
        assert online()["node"] == socket.gethostname()

        def recorded() -> list[Any]:
            with db.session() as session:
                return list(SegmentRepo(session).list(CAMERA))

        serve.wait_for(lambda: bool(recorded()), 300, "no segment was indexed")
        row = recorded()[0]
        assert row.node == socket.gethostname()
        played = admin.get(f"/api/recordings/{row.id}/media")
        assert played.status_code == 200, played.text
        assert played.content == (serve.data / row.path).read_bytes()
        admin.close()

        started = _descendants(serve.process.pid)
        assert {"gcs_server", "raylet"} <= _names(started), _names(started)
        serve.process.send_signal(signal.SIGTERM)
        serve.process.wait(180)
        assert serve.process.returncode == 0, serve.output[-4000:]
        deadline = time.monotonic() + 60
        while any(_alive(p) for p in started) and time.monotonic() < deadline:
            time.sleep(0.5)
        left = {p for p in started if _alive(p)}
        assert not left, f"processes of its cluster left running: {_names(left)}"
        with db.session() as session:
            events = EventRepo(session).list(EventFilter(camera=CAMERA)).items
        assert [e.id for e in events if e.end is None] == [], "events left open"
    finally:
        serve.stop()
        db.close()
        for mount in mounts:
            mount.unpublish()
        relay.stop()
