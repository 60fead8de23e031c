"""The detection and recording switches of a camera outlive a restart of ``vigil serve``.

A real ``vigil serve`` (API, a real RTSP camera recorded, a real Mosquitto) gets its camera's
detection switched OFF by an MQTT command, as Home Assistant sends it, and its recording
through the API, and is stopped with SIGTERM. The retained state topics are then cleared, so
that what a client finds there after the second start can only come from the new process: it
must say OFF, the API must say so too, and the camera must really be off (frames decoded, none
analysed; no segment written).
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("sqlalchemy", reason="the server extra is not installed")
pytest.importorskip("paho.mqtt", reason="the server extra is not installed")

import httpx
from paho.mqtt import publish

from tests.alerts.alert_servers import Broker, Subscriber, free_port
from tests.rtsp_relay import RtspRelay, require_tools
from tests.runtime.serve_process import CAMERA, PASSWORD, ServeProcess, serve_config
from vigil.store.models import CameraRow

CLIP = "one-by-one-person-detection.mp4"
SWITCHES = ("detection", "recording")


@pytest.fixture
def camera(clips_dir: Path) -> Iterator[RtspRelay]:
    require_tools("rtsp-server-perl", "ffmpeg")
    relay = RtspRelay(clips_dir / CLIP)
    relay.publish()
    try:
        yield relay
    finally:
        relay.stop()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    folder = tmp_path / "broker"
    folder.mkdir()
    server = Broker(folder)
    try:
        yield server
    finally:
        server.stop()


def retained(port: int, topic: str) -> bytes | None:
    """The retained message of ``topic`` now, None when there is none."""
    subscriber = Subscriber(port, [topic])
    try:
        return bytes(subscriber.take(topic, timeout=2).payload) or None
    except AssertionError:
        return None
    finally:
        subscriber.close()


def state_topic(switch: str) -> str:
    return f"vigil/{CAMERA}/{switch}"


def stop(serve: ServeProcess) -> None:
    serve.process.send_signal(signal.SIGTERM)
    assert serve.process.wait(30) == 0, serve.output


def stored_switches(serve: ServeProcess) -> dict[str, bool | None]:
    def read(session: object) -> dict[str, bool | None]:
        row = session.get(CameraRow, CAMERA)  # type: ignore[attr-defined]
        return {} if row is None else {"detection": row.detection, "recording": row.recording}

    result: dict[str, bool | None] = serve.query(read, {})
    return result


def login(serve: ServeProcess) -> httpx.Client:
    """The first run's admin, logged in again (first-run setup is done)."""
    client = httpx.Client(base_url=serve.base_url, timeout=30)
    reply = client.post("/api/login", json={"name": "root", "password": PASSWORD})
    assert reply.status_code == 200, reply.text
    client.headers["X-CSRF-Token"] = reply.json()["csrf_token"]
    return client


def check_off(serve: ServeProcess, client: httpx.Client) -> None:
    """The camera decodes frames but analyses none; its recorder is there."""
    cameras: list[dict[str, object]] = []

    def decoding() -> bool:
        nonlocal cameras
        answer = client.get("/api/cameras")
        cameras = answer.json() if answer.status_code == 200 else []
        return any(c["name"] == CAMERA and float(str(c["decode_fps"])) >= 5 for c in cameras)

    serve.wait_for(decoding, 60, "the camera did not deliver frames after the restart")
    status = next(c for c in cameras if c["name"] == CAMERA)
    assert status["detect_fps"] == 0, f"detection runs although switched off: {status}"
    assert status["recording"] is not None, status


@pytest.mark.slow
def test_switches_stay_off_across_a_restart(
    tmp_path: Path, camera: RtspRelay, broker: Broker
) -> None:
    port = free_port()
    serve = ServeProcess(tmp_path, serve_config(tmp_path / "data", port, camera.url,
                                                mqtt_port=broker.port), port)  # fmt: skip
    try:
        serve.wait_for(serve.api_up, 60, "the API did not answer")
        for switch in SWITCHES:
            serve.wait_for(lambda s=switch: retained(broker.port, state_topic(s)) == b"ON", 30,
                           f"the {switch} switch was never reported ON")  # fmt: skip
        # Detection as Home Assistant switches it, recording through the API.
        publish.single(f"{state_topic('detection')}/set", "OFF", hostname="127.0.0.1",
                       port=broker.port)  # fmt: skip
        client = serve.admin()
        try:
            reply = client.put(f"/api/cameras/{CAMERA}/switches/recording", json={"on": False})
            assert reply.status_code == 200, reply.text
            assert reply.json()["recording"] is False
        finally:
            client.close()
        for switch in SWITCHES:
            serve.wait_for(lambda s=switch: retained(broker.port, state_topic(s)) == b"OFF",
                           30, f"the {switch} switch did not go OFF")  # fmt: skip
        serve.wait_for(lambda: stored_switches(serve) == dict.fromkeys(SWITCHES, False), 30,
                       "the switches were not stored")  # fmt: skip
        stop(serve)
    finally:
        serve.stop()
    segments_before = serve.segment_paths()
    # Forget what the first run published: only the second can put a state there now.
    for switch in SWITCHES:
        publish.single(state_topic(switch), b"", retain=True, hostname="127.0.0.1",
                       port=broker.port)  # fmt: skip
        assert retained(broker.port, state_topic(switch)) is None

    port = free_port()
    again = ServeProcess(tmp_path, serve_config(tmp_path / "data", port, camera.url,
                                                mqtt_port=broker.port), port)  # fmt: skip
    try:
        again.wait_for(again.api_up, 60, "the API did not answer after the restart")
        for switch in SWITCHES:
            again.wait_for(
                lambda s=switch: retained(broker.port, state_topic(s)) is not None,
                30,
                f"the {switch} switch was not published after the restart",
            )
            assert retained(broker.port, state_topic(switch)) == b"OFF", switch
        client = login(again)
        try:
            answer = client.get(f"/api/cameras/{CAMERA}/switches")
            assert answer.json() == {"detection": False, "recording": False}, answer.text
            check_off(again, client)
        finally:
            client.close()
        stop(again)
    except httpx.HTTPError as exc:
        pytest.fail(f"API error: {exc}\n{again.output}")
    finally:
        again.stop()
    assert again.segment_paths() == segments_before, "a segment was written while switched off"
    assert stored_switches(again) == dict.fromkeys(SWITCHES, False)
