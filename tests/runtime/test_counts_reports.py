"""Rule counts reported per camera: on change, at most once per interval, the last values
always; and through the Supervisor to a real Mosquitto broker, including on (re)connect."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("paho.mqtt", reason="the server extra is not installed")

from tests.alerts.alert_servers import Broker, Subscriber
from tests.runtime.test_supervisor import LINE, ListSink, fast_backoff, make_config, wait_for
from vigil.config.alerts import MqttConfig
from vigil.config.models import SourceConfig
from vigil.ingest import Source, StatusCallback, open_source
from vigil.ingest.synthetic import DEFAULT_DOWN_CROSSINGS, DEFAULT_UP_CROSSINGS
from vigil.runtime.serve import Supervisor
from vigil.runtime.worker import CameraWorker

FINAL = {"a_to_b": DEFAULT_DOWN_CROSSINGS, "b_to_a": DEFAULT_UP_CROSSINGS}


def unpaced(source: SourceConfig, camera: str, on_status: StatusCallback) -> Source:
    """The synthetic scene as fast as it renders (media times), not in real time."""
    return open_source(source.url, camera)


def line_totals(counts: Mapping[str, Any]) -> dict[str, int]:
    return dict(counts["lines"]["middle"]["total"])


@pytest.mark.parametrize("interval", [0.3, 1.0])
def test_worker_reports_counts_at_most_once_per_interval_and_the_last_ones(
    tmp_path: Path, interval: float
) -> None:
    config = make_config(tmp_path, {
        "a": {"sources": [{"url": "synthetic://?fps=10&duration=20"}], "lines": LINE},
    })  # fmt: skip
    reports: list[tuple[float, Mapping[str, Any]]] = []
    worker = CameraWorker(
        config.camera("a"), None, ListSink(), source_factory=unpaced, counts_interval=interval,
        on_counts=lambda camera, counts: reports.append((time.monotonic(), counts)),
    )  # fmt: skip
    worker.run()
    assert reports, "a new session reports its (zero) counts"
    assert line_totals(reports[0][1]) == {"a_to_b": 0, "b_to_a": 0}
    assert line_totals(reports[-1][1]) == FINAL, "the last values always go out"
    # Every report but the final flush respects the interval (timing slack: 50 ms).
    gaps = [b[0] - a[0] for a, b in pairwise(reports[:-1])]
    assert all(gap >= interval - 0.05 for gap in gaps), gaps
    crossings = DEFAULT_DOWN_CROSSINGS + DEFAULT_UP_CROSSINGS
    assert len(reports) <= crossings + 2, "only changes are reported"


@pytest.mark.slow
def test_supervisor_publishes_counts_to_mqtt_on_change_and_on_connect(tmp_path: Path) -> None:
    folder = tmp_path / "broker"
    folder.mkdir()
    broker = Broker(folder)
    broker.stop()  # Vigil starts while the broker is down: the counts wait for the connection
    config = make_config(tmp_path, {
        "a": {"sources": [{"url": "synthetic://?width=640&height=360&fps=10&duration=10"}],
              "lines": LINE},
    })  # fmt: skip
    mqtt = MqttConfig(host="127.0.0.1", port=broker.port, reconnect_min_s=1, reconnect_max_s=1)
    config = config.model_copy(update={"mqtt": mqtt})
    supervisor = Supervisor(config, backoff=fast_backoff)
    subscriber: Subscriber | None = None
    try:
        supervisor.start()
        time.sleep(2.5)
        assert supervisor.mqtt is not None
        assert not supervisor.mqtt.connected
        broker.start()
        # Totals only (line/<line>/<dir>); per-class counters live one level below.
        subscriber = Subscriber(broker.port, ["vigil/a/line/+/+"])
        first = json.loads(subscriber.take("vigil/a/line/middle/a_to_b", timeout=10).payload)
        assert isinstance(first, int), "the counts known before the connection arrive on it"
        wait_for(lambda: supervisor.workers["a"].state == "ended", 30, "camera a did not end")
        time.sleep(0.5)
        messages = subscriber.drain(1.0)
    finally:
        supervisor.stop()
        if subscriber is not None:
            subscriber.close()
        broker.stop()
    last: dict[str, int] = {}
    times: dict[str, list[float]] = {}
    for msg in messages:
        direction = msg.topic.rsplit("/", 1)[1]
        last[direction] = int(msg.payload)
        times.setdefault(direction, []).append(msg.timestamp)
    assert last == FINAL
    for stamps in times.values():
        gaps = [b - a for a, b in pairwise(stamps)]
        # The first value may be the resync on connect, the last the end-of-session flush;
        # between them, changes go out at most once per second (0.2 s network slack).
        assert all(gap >= 0.8 for gap in gaps[1:-1]), gaps
