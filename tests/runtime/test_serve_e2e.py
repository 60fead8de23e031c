"""End to end: an RTSP camera → Supervisor with YOLOX-Nano → database, segments, MQTT.

A real RTSP relay (Debian ``rtsp-server-perl``) carries a shared clip published by ``ffmpeg``
in real time; a real Mosquitto broker receives the alerts; SQLite holds events and segments.
Then the camera drops out and comes back: Vigil reconnects, the gap in recordings is no longer
than the outage plus one segment, and nothing recorded before is lost.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("sqlalchemy", reason="the server extra is not installed")
pytest.importorskip("paho.mqtt", reason="the server extra is not installed")

from tests.alerts.alert_servers import Broker, Subscriber
from tests.rtsp_relay import RtspRelay as Camera
from tests.runtime.serve_process import CLIP, rtsp_camera, running_broker, wait_for
from vigil.api.clips import ClipJobSink
from vigil.config.models import VigilConfig
from vigil.ingest import Backoff
from vigil.paths import sha256_file
from vigil.runtime.serve import Supervisor
from vigil.store import Database, EventFilter, EventRepo, JobRepo, SegmentRepo

SEGMENT_S = 2.0


@pytest.fixture
def camera(clips_dir: Path) -> Iterator[Camera]:
    yield from rtsp_camera(clips_dir / CLIP, publish=False)  # the test publishes


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    yield from running_broker(tmp_path / "broker")


@pytest.mark.slow
@pytest.mark.parametrize("processes", [0, 1], ids=["threads", "processes"])
def test_camera_to_database_segments_and_mqtt_through_an_outage(
    tmp_path: Path, camera: Camera, broker: Broker, yolox_nano_path: Path, processes: int
) -> None:
    camera.publish()
    time.sleep(1.5)  # the publisher announces the stream
    subscriber = Subscriber(broker.port, ["vigil/#"])
    config = VigilConfig.model_validate({
        "detect": {"model": str(yolox_nano_path), "fps": 5, "labels": ["person"]},
        "events": {"min_duration": 0.5},
        "data_dir": str(tmp_path / "data"),
        "record": {"mode": "continuous", "segment_seconds": SEGMENT_S},
        "mqtt": {"host": "127.0.0.1", "port": broker.port, "discovery": False},
        "cameras": {"door": {"sources": [
            {"url": camera.url, "options": {"rtsp_transport": "udp"}}
        ]}},
    })  # fmt: skip
    db = Database(f"sqlite:///{tmp_path / 'vigil.db'}")
    db.migrate()

    def segments() -> list[tuple[str, float, float, int, str]]:
        with db.session() as session:
            return [(r.path, r.start, r.end, r.size, r.sha256)
                    for r in SegmentRepo(session).list("door")]  # fmt: skip

    def events() -> int:
        with db.session() as session:
            return EventRepo(session).count(EventFilter(camera="door"))

    backoff = lambda: Backoff(initial=0.3, factor=2.0, max=1.0, jitter=0.0)  # noqa: E731
    supervisor = Supervisor(config, db=db, backoff=backoff, stall_timeout=2.0,
                            worker_processes=processes, sinks=(ClipJobSink(db),))  # fmt: skip
    supervisor.start()
    worker = supervisor.workers["door"]
    try:
        wait_for(lambda: events() > 0 and len(segments()) >= 2, 30,
                 "no event and two segments")  # fmt: skip
        before = segments()
        assert worker.online

        # The camera drops out, stays away for a while, and comes back.
        camera.unpublish()
        gone = time.time()
        wait_for(lambda: not worker.online, 10, "the outage was not noticed")
        time.sleep(2.0)
        camera.publish()
        back = time.time()
        wait_for(lambda: worker.online, 20, "the camera did not come back")
        wait_for(lambda: any(s[1] > back for s in segments()), 20,
                 "no segment after the camera came back")  # fmt: skip
    finally:
        supervisor.stop()
        subscriber_messages = subscriber.drain(0.5)
        subscriber.close()

    after = segments()
    outage = back - gone
    # Nothing recorded before the outage was lost: rows and files, byte for byte.
    assert set(before) <= set(after)
    for path, _, _, size, digest in after:
        file = config.data_dir / path
        assert file.stat().st_size == size
        assert sha256_file(file) == digest
    gaps = [b[1] - a[2] for a, b in itertools.pairwise(after)]
    assert max(gaps) <= outage + SEGMENT_S + 1.0, (gaps, outage)

    with db.session() as session:
        rows = EventRepo(session).list(EventFilter(camera="door")).items
    assert rows
    assert all(r.state == "end" and r.label == "person" for r in rows), "stop closes events"
    with db.session() as session:  # each ended event's clip was queued for the API to render
        clips = JobRepo(session).list(kind="clip")
    assert {j.params["event"] for j in clips} == {r.id for r in rows}

    topics = {m.topic for m in subscriber_messages}
    assert "vigil/events" in topics, sorted(topics)
    payloads = [json.loads(m.payload) for m in subscriber_messages if m.topic == "vigil/events"]
    assert {p["camera"] for p in payloads} == {"door"}
    availability = [m.payload for m in subscriber_messages
                    if m.topic == "vigil/door/availability"]  # fmt: skip
    assert availability[-1] == b"offline"
    db.close()
