"""``vigil serve`` as a user runs it: a process, a config file, a signal to stop it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("sqlalchemy", reason="the server extra is not installed")

from tests.alerts.alert_servers import free_port
from vigil.store import Database, EventFilter, EventRepo

CONFIG = """
detect: {{model: motion, fps: 10}}
tracker: {{new_track_threshold: 0.5, high_threshold: 0.4}}
data_dir: {data}
server: {{host: 127.0.0.1, port: {port}, secure_cookies: false, worker_processes: {procs}}}
cameras:
  yard:
    sources: [{{url: "synthetic://?fps=10&duration=10"}}]
    lines:
      middle: {{points: [[0.05, 0.5], [0.95, 0.5]]}}
"""


def _health(port: int) -> dict[str, object] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=1) as reply:
            return dict(json.loads(reply.read()))
    except OSError:
        return None


@pytest.mark.slow
@pytest.mark.parametrize(("api", "stop_with", "procs"), [
    (False, signal.SIGTERM, 0), (True, signal.SIGINT, 0),
    (True, signal.SIGINT, 1),  # the camera in a worker process: Ctrl-C reaches both
    (False, signal.SIGTERM, 1),
])  # fmt: skip
def test_serve_runs_until_signalled_and_stops_cleanly(
    tmp_path: Path, api: bool, stop_with: signal.Signals, procs: int
) -> None:
    port = free_port()
    config = tmp_path / "vigil.yaml"
    config.write_text(CONFIG.format(data=tmp_path / "data", port=port, procs=procs))
    args = [sys.executable, "-m", "vigil.cli", "serve", "--config", str(config)]
    process = subprocess.Popen([*args] if api else [*args, "--no-api"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        db_file = tmp_path / "data" / "vigil.db"
        while time.monotonic() < deadline and not _has_event(db_file):
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            time.sleep(0.2)
        assert _has_event(db_file), "no event reached the database"
        if api:
            assert _health(port) is not None, "the API does not answer"
        process.send_signal(stop_with)
        output = process.communicate(timeout=30)[0].decode()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, output
    assert "1 camera(s)" in output
    leaked = [p.name for p in Path("/dev/shm").glob(f"vigil-{process.pid}-*")]
    assert leaked == [], "shared memory left behind"
    db = Database(f"sqlite:///{db_file}")
    try:
        with db.session() as session:
            rows = EventRepo(session).list(EventFilter(camera="yard")).items
        assert rows
        assert all(r.state == "end" for r in rows), "shutdown leaves no open event"
    finally:
        db.close()


def _has_event(db_file: Path) -> bool:
    if not db_file.exists():
        return False
    db = Database(f"sqlite:///{db_file}")
    try:
        with db.session() as session:
            return EventRepo(session).count(EventFilter(camera="yard")) > 0
    except Exception:
        return False  # not migrated yet
    finally:
        db.close()
