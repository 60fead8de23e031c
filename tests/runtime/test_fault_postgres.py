"""Fault: the PostgreSQL server of a running ``vigil serve`` is stopped for 30 s, then started.

A real ``vigil serve`` (one camera: synthetic analysis, a real camera stream recorded in
2 s segments: ``ffmpeg`` pushing MPEG-TS over UDP, as ``test_disk_full``, since the RTSP
relay starves on a loaded machine) stores into a real PostgreSQL server of its own
(``tests.store.conftest``), which is stopped the way an administrator restarts it
(``pg_ctl stop -m fast``) and started again 30 s later. Wanted: the server keeps running;
while the database is down the API answers 503 ``storage_unavailable`` naming the problem
(but ``/metrics`` and ``/api/cameras`` answer a session verified lately, ``OUTAGE_READS``),
``/api/health`` says the database is down, and the log says why (and that segments wait to
be indexed); afterwards everything resumes by itself (the camera analysed in a thread, and
in a worker process): the events and
segments of the outage reach the database (nothing lost,
``vigil_store_writes_total{outcome="failed"}`` is 0), and after a graceful stop every
segment file on disk has its row and no event is left open.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytest.importorskip("sqlalchemy", reason="the server extra is not installed")

from tests.alerts.alert_servers import free_port
from tests.runtime.serve_process import (
    CAMERA,
    CLIP,
    ServeProcess,
    UdpCameras,
    serve_config,
    udp_cameras,
)
from tests.store.conftest import PgServer
from vigil.store import SegmentRepo

OUTAGE_S = 30.0
#: How long an event is open when the database goes (see the test).
OPEN_S = 34.0


@pytest.fixture
def camera(clips_dir: Path) -> Iterator[UdpCameras]:
    yield from udp_cameras(clips_dir / CLIP, (CAMERA,))


def metric(text: str, name: str) -> float:
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert found is not None, f"{name} not in /metrics"
    return float(found.group(1))


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 1], ids=["threads", "processes"])
def test_postgresql_restarted_mid_run_loses_nothing(
    tmp_path: Path, camera: UdpCameras, own_pg: PgServer, workers: int
) -> None:
    own_pg.admin_sql("CREATE DATABASE vigil_serve")
    url = own_pg.url("vigil_serve")
    port = free_port()
    text = (
        serve_config(tmp_path / "data", port, camera.url(CAMERA), worker_processes=workers)
        + f"database_url: {url}\n"
    )
    serve = ServeProcess(tmp_path, text, port, db_url=url)
    admin: httpx.Client | None = None
    try:
        serve.wait_for(serve.api_up, 120, "the API did not answer")
        admin = serve.admin()
        serve.wait_for(lambda: len(serve.segment_paths()) >= 2, 90, "no segment")
        # The scene's objects walk one at a time, 48 s each, 12 s apart: stop the server
        # 34 s into an event, so that it ends and the next one starts during the outage.
        serve.wait_for(lambda: any(e.state != "end" and time.time() - e.start > OPEN_S
                                   for e in serve.events()), 150,
                       "no event open for long enough")  # fmt: skip
        (open_event,) = [e.id for e in serve.events() if e.state != "end"]
        assert admin.get("/api/cameras").status_code == 200  # the session, verified lately

        own_pg.halt()
        down = time.time()
        # While it is down: 503 with the reason, health says so, the recorder too.
        serve.wait_for(lambda: admin.get("/api/events").status_code == 503, 30,
                       "the API did not notice the database was down")  # fmt: skip
        error = admin.get("/api/events").json()["error"]
        assert error["code"] == "storage_unavailable", error
        assert "cannot reach the database server" in error["message"], error
        health = httpx.get(f"{serve.base_url}/api/health", timeout=30).json()
        assert (health["status"], health["database"]) == ("degraded", False), health
        # ... but what operators need during the outage still answers (``OUTAGE_READS``).
        cameras = admin.get("/api/cameras")
        assert cameras.status_code == 200, cameras.text
        assert [c["name"] for c in cameras.json()] == [CAMERA]
        during = admin.get("/metrics")
        assert during.status_code == 200, during.text
        assert metric(during.text, "vigil_database_up") == 0
        while time.time() - down < OUTAGE_S:
            serve.wait_for(lambda: True, 1, "")  # fails at once if the server died
            time.sleep(1.0)
        assert serve.process.poll() is None, "vigil serve died while the database was down"
        own_pg.resume()
        up = time.time()

        # It comes back by itself: the API, then what the outage produced.
        serve.wait_for(lambda: admin.get("/api/events").status_code == 200, 90,
                       "the API did not answer again")  # fmt: skip

        def outage_stored() -> bool:
            events = serve.events()
            ended = [e for e in events if e.id == open_event and e.end is not None
                     and down < e.end < up]  # fmt: skip
            started = [e for e in events if down < e.start < up]
            rows = serve.query(lambda s: SegmentRepo(s).list(CAMERA), [])
            return bool(ended and started) and any(down < r.start < up - 2.0 for r in rows)

        try:
            serve.wait_for(outage_stored, 120, "the events and segments of the outage were not "
                           "stored")  # fmt: skip
        except AssertionError:
            print(down, up, [(e.id, e.start, e.end, e.state) for e in serve.events()])
            print(sorted(r.start for r in serve.query(lambda s: SegmentRepo(s).list(CAMERA), [])))
            raise
        scrape = admin.get("/metrics")
        assert scrape.status_code == 200, scrape.text
        assert metric(scrape.text, 'vigil_store_writes_total{outcome="delivered"}') > 0
        assert metric(scrape.text, 'vigil_store_writes_total{outcome="failed"}') == 0
        cameras = admin.get("/api/cameras").json()
        assert [c["online"] for c in cameras if c["name"] == CAMERA] == [True], cameras

        serve.process.send_signal(signal.SIGINT)
        try:
            code = serve.process.wait(60)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running 60 s after SIGINT:\n{serve.output[-4000:]}")
    finally:
        if admin is not None:
            admin.close()
        serve.stop()

    log = serve.output
    assert code == 0, f"exit code {code}:\n{log[-4000:]}"
    assert "cannot reach the database server" in log
    assert "stored late" in log, "the log says the queued writes landed"
    assert "not indexed" in log, "the log says segments wait to be indexed"
    recordings = serve.data / "recordings"
    on_disk = {p.relative_to(serve.data).as_posix() for p in recordings.rglob("*.mp4")}
    indexed = serve.segment_paths()
    assert on_disk, "nothing was recorded"
    assert on_disk == indexed, sorted(on_disk ^ indexed)
    events = serve.events()
    assert [e.id for e in events if e.state != "end"] == [], "an event was left open"
