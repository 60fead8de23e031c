"""``promtool check metrics`` on a live scrape of a real ``vigil serve``.

The server runs a camera (paced synthetic analysis, a real RTSP stream recorded), a real
Mosquitto and a real webhook receiver, so that every family is present with real values:
events, line crossings, MQTT and webhook deliveries, storage, and a recorder reconnect after
the camera drops out. Any complaint of promtool, lint warnings included, fails the test.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("sqlalchemy", reason="the server extra is not installed")
pytest.importorskip("paho.mqtt", reason="the server extra is not installed")

from prometheus_client.parser import text_string_to_metric_families

from tests.alerts.alert_servers import Broker, free_port
from tests.promtool import promtool_complaints, require_promtool
from tests.rtsp_relay import RtspRelay
from tests.runtime.serve_process import (
    CAMERA,
    CLIP,
    ServeProcess,
    rtsp_camera,
    running_broker,
    serve_config,
)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def camera(clips_dir: Path) -> Iterator[RtspRelay]:
    yield from rtsp_camera(clips_dir / CLIP)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    yield from running_broker(tmp_path / "broker")


@pytest.fixture
def webhook_url() -> Iterator[str]:
    """A receiver that accepts every POST (204)."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()


def _samples(text: str) -> Samples:
    """``{(sample name, sorted labels): value}``."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}  # fmt: skip


def _total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    return sum(value for (sample, have), value in samples.items()
               if sample == name and set(labels.items()) <= set(have))  # fmt: skip


@pytest.mark.slow
def test_live_scrape_passes_promtool(
    tmp_path: Path, camera: RtspRelay, broker: Broker, webhook_url: str
) -> None:
    require_promtool()  # before minutes of set-up
    port = free_port()
    text = serve_config(tmp_path / "data", port, camera.url, mqtt_port=broker.port,
                        webhook_url=webhook_url)  # fmt: skip
    serve = ServeProcess(tmp_path, text, port)
    closing: list[httpx.Client] = []
    try:
        serve.wait_for(serve.api_up, 60, "the API did not answer")
        client = serve.admin()
        scraped: dict[str, httpx.Response] = {}
        closing.append(client)

        def scrape() -> Samples:
            reply = client.get("/metrics")
            assert reply.status_code == 200, reply.text
            scraped["last"] = reply
            return _samples(reply.text)

        def lively() -> bool:
            s = scrape()
            return all((
                _total(s, "vigil_events_total", camera=CAMERA) > 0,
                _total(s, "vigil_line_crossings_total", camera=CAMERA) > 0,
                _total(s, "vigil_webhook_deliveries_total", outcome="delivered") > 0,
                _total(s, "vigil_mqtt_messages_total", outcome="delivered") > 0,
                _total(s, "vigil_storage_used_bytes", camera=CAMERA) > 0,
            ))  # fmt: skip

        serve.wait_for(lively, 90, "events, crossings, deliveries and a segment")
        assert promtool_complaints(scraped["last"].content) == ""
        samples = scrape()
        assert samples[("vigil_mqtt_connected", ())] == 1.0
        assert _total(samples, "vigil_camera_online", camera=CAMERA) == 1.0
        free = samples[("vigil_storage_free_bytes", ())]
        assert 0 < free < samples[("vigil_storage_total_bytes", ())]
        assert samples[("vigil_uptime_seconds", ())] > 0
        assert _total(samples, "process_resident_memory_bytes") > 0
        assert _total(samples, "vigil_webhook_deliveries_total", outcome="failed") == 0

        # The camera drops out and comes back: the recorder's reconnect is counted.
        record = {"camera": CAMERA, "role": "record"}
        before = _total(samples, "vigil_source_reconnects_total", **record)
        camera.unpublish()
        camera.publish()
        serve.wait_for(lambda: _total(scrape(), "vigil_source_reconnects_total", **record)
                       > before, 90, "no recorder reconnect counted")  # fmt: skip
        assert promtool_complaints(scraped["last"].content) == ""
        serve.process.send_signal(signal.SIGTERM)
        assert serve.process.wait(30) == 0, serve.output
    finally:
        for each in closing:
            each.close()
        serve.stop()
