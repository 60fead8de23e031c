"""``vigil serve`` as a user runs it follows a camera's own ``redact:`` settings: its mask
over the left half is black in what a viewer gets and in audited unredacted output."""

from __future__ import annotations

import io
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the server extra is not installed")

import httpx

from tests.alerts.alert_servers import free_port
from tests.api.test_events import _decode
from tests.api.test_live_view import read_parts
from tests.api.test_redaction_paths import halves
from vigil.cli import main

CONFIG = """
detect: {{model: motion, fps: 5}}
data_dir: {data}
record: {{mode: "off"}}
server: {{host: 127.0.0.1, port: {port}, secure_cookies: false, worker_processes: 0}}
cameras:
  yard:
    sources: [{{url: "synthetic://?width=320&height=180&fps=10&duration=600"}}]
    redact: {{masks: [[[0, 0], [0.5, 0], [0.5, 1], [0, 1]]]}}
"""
PASSWORD = "correct horse battery"
REASON = {"unredacted": "true", "reason": "incident 31"}


def _add_user(config: Path, name: str, role: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["user", "--config", str(config), "add", name, "--role", role,
                 "--password-stdin"]) == 0  # fmt: skip


def _login(base: str, name: str) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=30)
    reply = client.post("/api/login", json={"name": name, "password": PASSWORD})
    assert reply.status_code == 200, reply.text
    client.headers["X-CSRF-Token"] = reply.json()["csrf_token"]
    return client


def _snapshot(client: httpx.Client, process: subprocess.Popen[bytes], **params: str) -> bytes:
    """The camera snapshot, once the camera has delivered a frame."""
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, "vigil serve stopped"
        reply = client.get("/api/cameras/yard/snapshot", params=params)
        if reply.status_code == 200:
            return reply.content
        assert reply.json()["error"]["code"] == "no_frame", reply.text
        assert time.monotonic() < deadline, "the camera delivered no frame"
        time.sleep(0.2)


@pytest.mark.slow
def test_serve_applies_the_cameras_own_mask_to_every_viewer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    config = tmp_path / "vigil.yaml"
    config.write_text(CONFIG.format(data=tmp_path / "data", port=port))
    _add_user(config, "val", "viewer", monkeypatch)
    _add_user(config, "op", "operator", monkeypatch)
    process = subprocess.Popen([sys.executable, "-m", "vigil.cli", "serve", "--config",
                                str(config)], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            try:
                if httpx.get(f"{base}/api/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the API did not come up"
            time.sleep(0.2)
        viewer, operator = _login(base, "val"), _login(base, "op")
        images = {"viewer": _decode(_snapshot(viewer, process)),
                  "unredacted": _decode(_snapshot(operator, process, **REASON))}  # fmt: skip
        grant = operator.post("/api/cameras/yard/live/unredacted",
                              json={"reason": "incident 31"}).json()["grant"]  # fmt: skip
        with operator.stream("GET", "/api/cameras/yard/live.mjpeg",
                             params={"grant": grant}) as reply:  # fmt: skip
            assert reply.status_code == 200
            (jpeg,) = read_parts(reply.iter_bytes(), 1)
        images["unredacted live"] = _decode(jpeg)
        for what, image in images.items():
            left, right = halves(image)
            assert left < 8, f"{what}: the camera's mask is not applied (left half {left:.0f})"
            assert right > 40, f"{what}: the unmasked half is missing ({right:.0f})"
        viewer.close()
        operator.close()
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=30)[0].decode()
        assert process.returncode == 0, output
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
