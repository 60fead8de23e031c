"""``docker stop`` and systemd send SIGTERM; Ctrl-C sends SIGINT: both must stop gracefully.

A real ``vigil serve`` (API on, a real RTSP camera recorded, a real Mosquitto) gets a real
signal while an event is open and a segment is being written. It must exit 0 within the
10 s that ``docker stop`` waits before its SIGKILL, with every event closed, the open segment
finished and indexed, and ``offline`` retained on the camera's MQTT availability topic (a
Last Will would only mark Vigil itself offline, and leave the camera ``online``).
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("sqlalchemy", reason="the server extra is not installed")
pytest.importorskip("paho.mqtt", reason="the server extra is not installed")

from tests.alerts.alert_servers import Broker, Subscriber, free_port
from tests.rtsp_relay import RtspRelay
from tests.runtime.serve_process import (
    CAMERA,
    CLIP,
    ServeProcess,
    rtsp_camera,
    running_broker,
    serve_config,
)

#: ``docker stop``'s default grace period before SIGKILL (systemd's is longer).
GRACE_S = 10


@pytest.fixture
def camera(clips_dir: Path) -> Iterator[RtspRelay]:
    yield from rtsp_camera(clips_dir / CLIP)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    yield from running_broker(tmp_path / "broker")


def _retained(port: int, topic: str) -> bytes:
    """The retained message of ``topic``, as a client connecting now receives it."""
    subscriber = Subscriber(port, [topic])
    try:
        return bytes(subscriber.take(topic, timeout=10).payload)
    finally:
        subscriber.close()


@pytest.mark.slow
@pytest.mark.parametrize("stop_with", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_stops_gracefully_on_a_signal(
    tmp_path: Path, camera: RtspRelay, broker: Broker, stop_with: signal.Signals
) -> None:
    port = free_port()
    text = serve_config(tmp_path / "data", port, camera.url, mqtt_port=broker.port)
    serve = ServeProcess(tmp_path, text, port)
    availability = f"vigil/{CAMERA}/availability"
    try:
        serve.wait_for(serve.api_up, 60, "the API did not answer")
        serve.wait_for(lambda: len(serve.segment_paths()) >= 1, 60, "no segment was indexed")
        serve.wait_for(lambda: _retained(broker.port, availability) == b"online", 30,
                       "the camera was never reported online")  # fmt: skip
        # Signal while an event is open, so that closing it is part of the shutdown.
        serve.wait_for(lambda: any(e.state != "end" for e in serve.events()), 60,
                       "no open event")  # fmt: skip
        serve.process.send_signal(stop_with)
        try:
            code = serve.process.wait(GRACE_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {GRACE_S} s after {stop_with.name}:\n{serve.output}")
    finally:
        serve.stop()

    assert code == 0, f"exit code {code}:\n{serve.output}"
    recordings = serve.data / "recordings"
    assert list(recordings.rglob("*.partial")) == [], "an unfinished segment was left"
    on_disk = {p.relative_to(serve.data).as_posix() for p in recordings.rglob("*.mp4")}
    indexed = serve.segment_paths()
    assert on_disk, "nothing was recorded"
    assert on_disk == indexed, "every segment, the last one too, is in the database"
    events = serve.events()
    assert events, "no event reached the database"
    assert [e.id for e in events if e.state != "end"] == [], "an event was left open"
    assert _retained(broker.port, availability) == b"offline"
    assert _retained(broker.port, "vigil/availability") == b"offline"
