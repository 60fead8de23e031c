"""A transient disk full under ``vigil serve``: recording fails, says so, and comes back.

Two cameras (``ffmpeg`` streaming a clip in real time as MPEG-TS over UDP; analysis runs on
synthetic scenes) record into a data directory on a real 8 MiB tmpfs; a real Mosquitto
broker listens. The disk is filled to the last byte while they record, then grown
to 64 MiB in place (``mount -o remount,size=``), the way an operator adds space. Wanted: the
recording threads survive, each camera reports ``recording failed: disk full`` in its status
and on MQTT while the disk is full, no temporary file is left behind, and each writes new
segments once there is space again (within about one segment: the retry delay is capped at
one segment's length, ``tests/record/test_recorder_storage.py``). The cameras are analysed in
threads, and in a worker process (the recorders stay in the main process either way).
"""

from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("sqlalchemy", reason="the server extra is not installed")
pytest.importorskip("paho.mqtt", reason="the server extra is not installed")

from tests.alerts.alert_servers import Broker, Subscriber
from tests.runtime.serve_process import CLIP, UdpCameras, running_broker, udp_cameras, wait_for
from tests.small_disk import SmallDisk, small_disk
from vigil.config.models import VigilConfig
from vigil.errors import StorageError
from vigil.ingest import Backoff
from vigil.record.segmenter import sha256_file
from vigil.runtime.serve import Supervisor
from vigil.store import Database, SegmentRepo

SEGMENT_S = 2.0
CAMERAS = ("cam1", "cam2")
SCENE = "synthetic://?width=320&height=180&fps=5&duration=600"


@pytest.fixture
def cameras(clips_dir: Path) -> Iterator[UdpCameras]:
    yield from udp_cameras(clips_dir / CLIP, CAMERAS)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    yield from running_broker(tmp_path / "broker")


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[SmallDisk]:
    with small_disk(tmp_path / "disk", 8 * 1024 * 1024) as mounted:
        yield mounted


def temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob(".*") if p.name.endswith(".tmp")]


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 1], ids=["threads", "processes"])
def test_recording_survives_a_full_disk_and_resumes_when_space_returns(
    tmp_path: Path, cameras: UdpCameras, broker: Broker, disk: SmallDisk, workers: int
) -> None:
    subscriber = Subscriber(broker.port, ["vigil/+/recording/status"])
    config = VigilConfig.model_validate({
        "detect": {"model": "motion", "fps": 5},
        "data_dir": str(disk.path / "data"),
        "record": {"mode": "continuous", "segment_seconds": SEGMENT_S},
        # No free-space deletion here: the disk is full of ballast, not of recordings.
        "server": {"free_space_reserve": 0, "retention_interval": 3600},
        "mqtt": {"host": "127.0.0.1", "port": broker.port, "discovery": False},
        # Analysis of a synthetic scene (its events write snapshots to the same disk);
        # recording of the camera's stream.
        "cameras": {name: {"sources": [
            {"url": SCENE, "roles": ["detect"]},
            {"url": cameras.url(name), "roles": ["record"]},
        ]} for name in CAMERAS},
    })  # fmt: skip
    db = Database(f"sqlite:///{tmp_path / 'vigil.db'}")  # the database is not on the small disk
    db.migrate()

    def starts(name: str) -> list[float]:
        with db.session() as session:
            return [r.start for r in SegmentRepo(session).list(name)]

    def describe() -> str:
        return "; ".join(
            f"{c}: {len(starts(c))} segment(s), recorder {recording(c)}, "
            f"{supervisor.recorders[c].connections} connection(s), last error "
            f"{supervisor.recorders[c].last_error}"
            for c in CAMERAS
        )

    def recording(name: str) -> tuple[str | None, str | None]:
        status = {s.name: s for s in supervisor.cameras()}[name]
        return status.recording, status.recording_error

    # A partial, not a lambda: a worker process gets it pickled.
    backoff = functools.partial(Backoff, initial=0.3, factor=2.0, max=1.0, jitter=0.0)
    supervisor = Supervisor(config, db=db, backoff=backoff, stall_timeout=10.0,
                            worker_processes=workers)  # fmt: skip
    supervisor.start()
    try:
        wait_for(lambda: all(starts(c) for c in CAMERAS), 120, "both cameras recorded",
                 describe)  # fmt: skip
        disk.fill()
        wait_for(lambda: all(recording(c)[0] == "failed" for c in CAMERAS), 60,
                 "both recorders reported the full disk")  # fmt: skip
        for name in CAMERAS:
            assert recording(name) == ("failed", "recording failed: disk full")
        failures = {c: supervisor.recorders[c].storage_failures for c in CAMERAS}
        # It stays full a while: the recorders keep retrying (and keep failing) meanwhile.
        wait_for(lambda: all(supervisor.recorders[c].storage_failures > failures[c] + 1
                             for c in CAMERAS), 60, "the recorders did not retry")  # fmt: skip
        alive = {t.name for t in threading.enumerate() if t.is_alive()}
        assert {f"record-{c}" for c in CAMERAS} <= alive, "the recording threads must live on"
        assert [r[0] for r in map(recording, CAMERAS)] == ["failed", "failed"]
        assert temp_files(disk.path) == [], "failed writes leave no temporary file"

        disk.resize(64 * 1024 * 1024)
        grown = time.time()
        wait_for(lambda: all(any(s > grown for s in starts(c)) for c in CAMERAS), 60,
                 "new segments after the disk was grown")  # fmt: skip
        for name in CAMERAS:
            assert recording(name) == ("recording", None)
    finally:
        supervisor.stop()
        messages = subscriber.drain(0.5)
        subscriber.close()
    try:
        with db.session() as session:
            rows = SegmentRepo(session).list()
        for row in rows:  # every indexed segment is complete and intact
            assert sha256_file(config.data_dir / row.path) == row.sha256
        assert not list(config.data_dir.rglob("*.partial")), "no partial segment left"
    finally:
        db.close()

    for name in CAMERAS:
        topic = f"vigil/{name}/recording/status"
        states = [json.loads(m.payload) for m in messages if m.topic == topic]
        assert {"state": "failed", "error": "recording failed: disk full"} in states, states
        failed_at = states.index({"state": "failed", "error": "recording failed: disk full"})
        assert {"state": "recording", "error": None} in states[failed_at:], states


def test_vigil_serve_retention_frees_space_on_a_nearly_full_disk(
    tmp_path: Path, disk: SmallDisk
) -> None:
    """``Supervisor.run_retention`` on a real nearly full disk: no age or size limit applies,
    yet the oldest unlocked segments go until ``min_free_bytes`` is free again; a locked one
    stays, and the folders emptied are pruned."""
    config = VigilConfig.model_validate({
        "data_dir": str(disk.path / "data"),
        "server": {"min_free_bytes": 1024 * 1024, "free_space_reserve": 0},
    })  # fmt: skip
    db = Database(f"sqlite:///{tmp_path / 'vigil.db'}")
    db.migrate()
    now = 1_700_000_000.0
    size = 512 * 1024
    rels = [f"recordings/cam/2023-11-14/{hour:02d}/00.00.mp4" for hour in range(8)]
    try:
        with db.session() as session:
            repo = SegmentRepo(session)
            for hour, rel in enumerate(rels):
                path = config.data_dir / rel
                path.parent.mkdir(parents=True)
                path.write_bytes(bytes(size))
                start = now - 86_400 + hour * 3600
                repo.add(camera="cam", path=rel, start=start, end=start + 10, size=size,
                         sha256="0" * 64)  # fmt: skip
            repo.set_lock("cam", now - 86_400, now - 86_400 + 10, True)  # the oldest: evidence
        disk.fill()
        assert disk.free < 1024 * 1024
        supervisor = Supervisor(config, db=db)
        deleted = supervisor.run_retention(now)
        assert deleted == rels[1:3], "the oldest unlocked, just enough of them"
        assert disk.free >= 1024 * 1024
        assert (config.data_dir / rels[0]).exists(), "locked evidence stays"
        assert not (config.data_dir / rels[1]).parent.exists(), "emptied folders are pruned"
        with db.session() as session:
            assert [r.path for r in SegmentRepo(session).list()] == [rels[0], *rels[3:]]
        supervisor.stop()
    finally:
        db.close()


def test_retention_frees_a_full_disk_that_also_holds_the_database(disk: SmallDisk) -> None:
    """SQLite on the same full disk cannot record a deletion: retention deletes the planned
    (unlocked, oldest) files first, then the rows, so the disk is not stuck full for good."""
    config = VigilConfig.model_validate({
        "data_dir": str(disk.path / "data"),
        "server": {"min_free_bytes": 1024 * 1024, "free_space_reserve": 0},
    })  # fmt: skip
    db = Database(f"sqlite:///{disk.path / 'vigil.db'}")
    db.migrate()
    now = 1_700_000_000.0
    size = 512 * 1024
    rels = [f"recordings/cam/2023-11-14/{hour:02d}/00.00.mp4" for hour in range(6)]
    try:
        with db.session() as session:
            repo = SegmentRepo(session)
            for hour, rel in enumerate(rels):
                path = config.data_dir / rel
                path.parent.mkdir(parents=True)
                path.write_bytes(bytes(size))
                start = now - 86_400 + hour * 3600
                repo.add(camera="cam", path=rel, start=start, end=start + 10, size=size,
                         sha256="0" * 64)  # fmt: skip
            repo.set_lock("cam", now - 86_400, now - 86_400 + 10, True)
        disk.fill()
        with pytest.raises(StorageError), db.session(immediate=True) as session:
            SegmentRepo(session).delete([6])  # the database really cannot write now
        supervisor = Supervisor(config, db=db)
        assert supervisor.run_retention(now) == rels[1:3]
        # About the reserve is free (the database's own journal took a few pages of it).
        assert disk.free > 1024 * 1024 - 64 * 1024
        assert (config.data_dir / rels[0]).exists(), "locked evidence stays"
        with db.session() as session:
            assert [r.path for r in SegmentRepo(session).list()] == [rels[0], *rels[3:]]
        supervisor.stop()
    finally:
        db.close()
