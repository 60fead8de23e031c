"""``vigil serve`` as deployed (a process, a camera stream over HTTP): the files it writes
are private and its log never holds the secrets some URLs carry.

The camera is a clip served by a local HTTP server: a network stream (so it is recorded)
that, unlike the UDP-only RTSP relay, does not depend on free RTP ports on a busy machine.
"""

from __future__ import annotations

import functools
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

pytest.importorskip("uvicorn", reason="the server extra is not installed")

from tests.alerts.alert_servers import free_port
from vigil.paths import PRIVATE_UMASK

CLIP = "one-by-one-person-detection.mp4"
SECRET = "vgl_not-for-the-log-0123456789"
CONFIG = """
detect: {{model: motion, fps: 10}}
data_dir: {data}
record: {{mode: continuous, segment_seconds: 2}}
server: {{host: 127.0.0.1, port: {port}, secure_cookies: false}}
cameras:
  door:
    sources: [{{url: "{url}"}}]
"""


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass  # the camera's own request log is noise here


@pytest.fixture
def camera(clips_dir: Path) -> Iterator[str]:
    """The URL of the clip on a local HTTP server."""
    handler = functools.partial(_QuietHandler, directory=str(clips_dir))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/{CLIP}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def _wait(what: Callable[[], bool], message: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120  # generous: the machine is shared
    while not what():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            output = process.communicate()[0].decode()
            raise AssertionError(f"{message}; vigil serve said:\n{output}")
        time.sleep(0.2)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.slow
def test_serve_writes_private_files_and_logs_no_url_secrets(tmp_path: Path, camera: str) -> None:
    port = free_port()
    data = tmp_path / "data"
    config = tmp_path / "vigil.yaml"
    config.write_text(CONFIG.format(data=data, port=port, url=camera))
    # Started with the usual loose umask (files 0644): vigil must tighten it itself.
    process = subprocess.Popen(
        [sys.executable, "-m", "vigil.cli", "serve", "--config", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, umask=0o022,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: _answers(f"{base}/api/health"), "the API does not answer", process)
        _wait(lambda: any(data.glob("recordings/door/*/*/*.mp4")), "no segment", process)
        _wait(lambda: any(data.glob("snapshots/door/*/*.jpg")), "no event snapshot", process)
        with httpx.Client(base_url=base) as client:
            assert client.get(f"/api/ws/events?token={SECRET}").status_code in (401, 404)
            assert client.get(f"/api/cameras/door/live.mjpeg?grant={SECRET}").status_code == 401
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=60)[0].decode()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, output
    assert "live.mjpeg?grant=[redacted]" in output, output
    assert SECRET not in output
    made = [data, *data.rglob("*")]
    assert data / "vigil.db" in made
    loose = {str(p.relative_to(tmp_path)): oct(stat.S_IMODE(p.stat().st_mode))
             for p in made if stat.S_IMODE(p.stat().st_mode) & PRIVATE_UMASK}  # fmt: skip
    assert loose == {}, "readable by other users or writable by the group"
