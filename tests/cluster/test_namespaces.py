"""Two Vigil deployments on one Ray cluster, each in its own ``cluster.namespace``.

A real cluster (one worker node of two camera slots), a real PostgreSQL with one database per
deployment, two RTSP cameras. Deployment A is a ``Supervisor`` in this process (namespace
``site-a``); deployment B a ``vigil serve --cluster`` process (namespace ``site-b``) started
after A's camera records. A head ends every camera, writer and detector actor of its namespace
that it did not configure: with one namespace between them, B's start would end A's camera
(not in B's configuration) and A's writer (another database, another key).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from tests.alerts.alert_servers import free_port
from tests.cluster.conftest import SEGMENT_S, cluster_config, fast_backoff, relayed, wait_for
from tests.cluster.test_head_restart import start_serve
from tests.ray_cluster import LocalCluster, local_cluster
from tests.runtime.serve_process import ServeProcess
from tests.store.conftest import PgServer, new_pg_database
from vigil.cluster import NAMESPACE, current_namespace
from vigil.cluster.backend import RayBackend, connect
from vigil.config.models import ClusterConfig
from vigil.errors import ConfigError
from vigil.runtime.serve import Supervisor
from vigil.store import Database, SegmentRepo


def test_the_namespace_asked_before_connecting_connects_nothing() -> None:
    """Ray's ``get_runtime_context`` connects a process that is not (a throw-away cluster,
    a random namespace), after which the process's ``ray.init`` is refused: unit tests with
    a stand-in registry ask before any connection. Runs before the module's cluster."""
    ray = pytest.importorskip("ray")
    assert not ray.is_initialized(), "an earlier module left this process connected to Ray"
    assert current_namespace() == NAMESPACE
    assert not ray.is_initialized()


def cameras_of(actors: dict[str, str]) -> list[str]:
    """The cameras named by the camera group actors among ``actors``."""
    return sorted(name.rpartition(":")[2] for name in actors if name.startswith("vigil-camera:"))


def ours(namespace: str) -> dict[str, str]:
    """Name -> Ray actor id of the alive named actors of ``namespace``."""
    import ray

    found = {}
    for entry in ray.util.list_named_actors(all_namespaces=True):
        if entry.get("namespace") != namespace:
            continue
        name = str(entry["name"])
        try:
            found[name] = ray.get_actor(name, namespace=namespace)._actor_id.hex()
        except ValueError:  # ended meanwhile
            continue
    return found


@dataclass
class Sites:
    cluster: LocalCluster
    a: Supervisor
    a_db: Database
    a_actors: dict[str, str]
    b: ServeProcess
    b_admin: httpx.Client


def b_config(data: Path, port: int, database_url: str, url: str) -> str:
    return yaml.safe_dump({
        "detect": {"model": "motion", "fps": 5},
        "record": {"mode": "continuous", "segment_seconds": SEGMENT_S},
        "data_dir": str(data), "database_url": database_url,
        "server": {"host": "127.0.0.1", "port": port, "secure_cookies": False},
        "cluster": {"call_timeout": 20.0, "namespace": "site-b"},
        "cameras": {"gate": {"sources": [{"url": url, "options": {"rtsp_transport": "udp"}}]}},
    })  # fmt: skip


def a_recorded(db: Database) -> int:
    with db.session() as session:
        return len(SegmentRepo(session).list("shop"))


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory, pg_server: PgServer) -> Iterator[Sites]:
    import ray

    root = tmp_path_factory.mktemp("namespaces")
    with relayed(2) as mounts, local_cluster(root / "nodes", workers=1, slots=2) as cluster:
        ray.init(address=cluster.address, namespace="site-a")
        config = cluster_config(root / "a", new_pg_database(pg_server), cluster.address,
                                {"shop": mounts[0].url}, namespace="site-a")  # fmt: skip
        a_db = Database(config.database_url)
        a = Supervisor(config, db=a_db, backoff=fast_backoff, stall_timeout=5.0,
                       cluster_backend=RayBackend)  # fmt: skip
        a.start()
        b: ServeProcess | None = None
        try:
            wait_for(lambda: all(s.online for s in a.cameras()), 240, "A's camera not online")
            wait_for(lambda: a_recorded(a_db) >= 1, 120, "A recorded no segment")
            a_actors = ours("site-a")
            port = free_port()
            b = start_serve(root / "b", b_config(root / "b" / "data", port,
                                                 new_pg_database(pg_server), mounts[1].url),
                            port, cluster.address)  # fmt: skip
            b.wait_for(b.api_up, 240, "B's API not up")
            b_admin = b.admin()  # the first-run setup can be done once: one client
            b.wait_for(lambda: bool(b_admin.get("/api/cameras").json()[0]["online"]), 240,
                       "B's camera not online")  # fmt: skip
            # A node's writer actor is made at its cameras' first write (a finished segment)
            b.wait_for(lambda: any(n.startswith("vigil-writer:") for n in ours("site-b")), 120,
                       "B's camera wrote nothing")  # fmt: skip
            yield Sites(cluster, a, a_db, a_actors, b, b_admin)
            b_admin.close()
        finally:
            if b is not None:
                b.process.send_signal(2)  # a clean stop: it ends its own actors only
                try:
                    b.process.wait(60)
                except subprocess.TimeoutExpired:
                    b.stop()
            a.stop()
            a_db.close()
            ray.shutdown()


def test_a_second_deployment_leaves_the_first_ones_actors_alone(sites: Sites) -> None:
    now = ours("site-a")
    assert now == sites.a_actors, "B's start ended or replaced actors of A"
    assert cameras_of(now) == ["shop"]
    assert any(name.startswith("vigil-writer:") for name in now)
    b_actors = ours("site-b")
    assert cameras_of(b_actors) == ["gate"]
    assert any(name.startswith("vigil-writer:") for name in b_actors)
    assert not set(b_actors.values()) & set(now.values()), "the deployments share an actor"


def test_both_deployments_record_on(sites: Sites) -> None:
    before = a_recorded(sites.a_db)
    wait_for(lambda: a_recorded(sites.a_db) >= before + 2, 60, "A stopped recording")
    assert all(s.online for s in sites.a.cameras())
    cameras = sites.b_admin.get("/api/cameras").json()
    assert [(c["name"], c["online"], c["node"]) for c in cameras] == [("gate", True, "node-1")]


def test_cluster_status_shows_one_deployment(sites: Sites) -> None:
    def status(namespace: str) -> list[str]:
        done = subprocess.run(
            [sys.executable, "-m", "vigil.cli", "cluster", "status", "--address",
             sites.cluster.address, "--namespace", namespace, "--json"],
            capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
        return sorted(c["camera"] for c in json.loads(done.stdout)["cluster"]["cameras"])

    assert status("site-a") == ["shop"]
    assert status("site-b") == ["gate"]


def test_connected_to_another_namespace_is_refused(sites: Sites) -> None:
    with pytest.raises(ConfigError, match=r"namespace 'site-a'.*cluster.namespace: site-a"):
        connect(ClusterConfig(address=sites.cluster.address, namespace="site-c"), 1)


def test_a_namespace_ray_cannot_take_is_refused_at_load() -> None:
    with pytest.raises(ValueError, match="namespace"):
        ClusterConfig(namespace="two words")
