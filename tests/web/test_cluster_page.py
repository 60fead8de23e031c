"""The web UI's cluster page in a real browser (Chromium via Playwright).

The API runs in this process under uvicorn, once as a single host (no Cluster entry in the
navigation, the page says so) and once with a cluster status behind ``GET /api/cluster``
(fixed figures: where they come from on a real Ray cluster is ``tests/cluster``). The page
must show the nodes with their slots, the cameras where they run, the detector load, the
failovers and the cameras rebalancing moved, with no console error; its screenshot goes to
``artifacts/screenshots``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.alerts.alert_servers import free_port
from tests.web.conftest import DESKTOP, PASSWORD, Pages, login
from vigil.api import ApiSettings, CameraStatus, StaticRuntime, create_app
from vigil.api.auth import hash_password
from vigil.cluster.status import (
    CameraPlacement,
    ClusterStatus,
    DetectorLoad,
    Failover,
    NodeStatus,
    Rebalanced,
)
from vigil.store import Database, Role, UserRepo

pytestmark = pytest.mark.slow

STATUS = ClusterStatus(
    gathered_at=1_796_000_000.0,
    nodes=(
        NodeStatus("head", "a1" * 28, True, "10.0.0.1", 0, 0, 4, 0),
        NodeStatus("node-1", "b2" * 28, True, "10.0.0.2", 2, 4, 16, 1),
        NodeStatus("node-2", "c3" * 28, False, "10.0.0.3", 0, 4, 16, 1),
    ),
    cameras=(
        CameraPlacement("door", "ALIVE", "node-1", "b2" * 28, 0, moves=1),
        CameraPlacement("yard", "ALIVE", "node-1", "b2" * 28, 1),
        CameraPlacement("gate", "RESTARTING", None, None, 2),
    ),
    # One detector per model on a node: two models on node-1.
    detectors=(
        DetectorLoad(
            "node-1", "b2" * 28, 1200, 400, 3.0, 1, 16, 20.0, "/models/yolox_nano.onnx", (416, 416)
        ),
        DetectorLoad("node-1", "b2" * 28, 90, 90, 1.0, 0, 16, 20.0, "/models/own.onnx", (640, 640)),
    ),
    failovers=(Failover("yard", 1, "node-1"), Failover("gate", 2, None)),
    rebalanced=(Rebalanced("door", 1, "node-1"),),
    supervising=False,
)


@contextmanager
def served(tmp_path: Path, status: Callable[[], ClusterStatus] | None) -> Iterator[str]:
    """The API (and UI) on a free port, with an admin ``root``; yields its URL."""
    import uvicorn

    db = Database(f"sqlite:///{tmp_path / 'vigil.db'}")
    db.migrate()
    with db.session() as session:
        UserRepo(session).add("root", Role.ADMIN, hash_password(PASSWORD))
    runtime = StaticRuntime({"door": CameraStatus("door", True, "running")})
    app = create_app(ApiSettings(secure_cookies=False), db, runtime, data_dir=tmp_path / "data",
                     cluster_status=status)  # fmt: skip
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
        if app.state.vigil.jobs is not None:
            app.state.vigil.jobs.stop(timeout=30)
        db.close()


def test_single_host_has_no_cluster_entry(browser: Any, tmp_path: Path) -> None:
    with served(tmp_path, None) as url:
        pages = Pages(browser, url)
        try:
            page = pages.open(DESKTOP)
            login(page, "root")
            page.locator("#nav-list a", has_text="Users").wait_for()
            assert page.locator("#nav-list a", has_text="Cluster").count() == 0
            page.goto("/#/cluster")  # typed by hand: the page says why there is nothing
            page.get_by_text("Vigil runs on a single host.").wait_for()
            assert not pages.errors, pages.errors
        finally:
            pages.close()


def test_cluster_page_shows_nodes_cameras_load_failovers(
    browser: Any, tmp_path: Path, shots: Path
) -> None:
    with served(tmp_path, lambda: STATUS) as url:
        pages = Pages(browser, url)
        try:
            page = pages.open(DESKTOP)
            login(page, "root")
            page.locator("#nav-list a", has_text="Cluster").click()
            page.locator("#cluster-nodes").wait_for()
            node1 = page.locator('#cluster-nodes tr[data-node="node-1"]')
            assert "2 / 4" in node1.inner_text()
            assert "down" in page.locator('#cluster-nodes tr[data-node="node-2"]').inner_text()
            camera = '#cluster-cameras tr[data-camera="{}"]'.format
            assert "node-1" in page.locator(camera("yard")).inner_text()
            assert "restarting" in page.locator(camera("gate")).inner_text()
            detectors = page.locator("#cluster-detectors").inner_text()
            assert "3.00" in detectors
            assert "yolox_nano.onnx 416×416" in detectors
            assert "own.onnx 640×640" in detectors
            failovers = page.locator("#cluster-failovers").inner_text()
            assert "yard: restarted 1×, now on node-1" in failovers
            assert "gate: restarted 2×, waiting for a node" in failovers
            assert "API replica" in page.locator("#cluster-time").inner_text()
            moved = page.locator("#cluster-rebalanced").inner_text()
            assert "door: moved 1×, now on node-1" in moved
            page.screenshot(path=shots / "cluster.png", full_page=True)
            assert not pages.errors, pages.errors
        finally:
            pages.close()
