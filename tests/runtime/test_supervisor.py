"""Supervisor with real threads, real synthetic cameras, a real SQLite database.

Two synthetic cameras (paced in real time, model-free motion detector) and one camera at a
URL where nothing listens run together: the good ones produce exactly the scene's crossings
and events while the bad one is reported offline and retried. Camera ``b`` starts without
rules and gets its line through ``update_rules`` at run time.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytest

pytest.importorskip("sqlalchemy", reason="the server extra is not installed")

from vigil.config.models import LineConfig, SourceConfig, VigilConfig
from vigil.ingest import Backoff, Source, SourceInfo, StatusCallback, open_source
from vigil.ingest.synthetic import DEFAULT_DOWN_CROSSINGS, DEFAULT_UP_CROSSINGS
from vigil.runtime.serve import Supervisor
from vigil.runtime.worker import default_source
from vigil.store import CountRepo, Database, EventFilter, EventRepo, SegmentRepo
from vigil.store.sink import count_key
from vigil.types import Direction, Event, EventState, Frame, RuleEvent, RuleEventKind

SCENE = "synthetic://?width=640&height=360&fps=10&duration=10"
LINE = {"middle": {"points": [[0.05, 0.5], [0.95, 0.5]]}}
BAD = "rtsp://127.0.0.1:1/x"


def fast_backoff() -> Backoff:
    return Backoff(initial=0.2, factor=1.5, max=0.5, jitter=0.0)


def make_config(tmp: Path, cameras: dict[str, Any]) -> VigilConfig:
    return VigilConfig.model_validate({
        "detect": {"model": "motion", "fps": 10},
        "tracker": {"new_track_threshold": 0.5, "high_threshold": 0.4},
        "data_dir": str(tmp / "data"),
        "cameras": cameras,
    })  # fmt: skip


def make_db(tmp: Path) -> Database:
    db = Database(f"sqlite:///{tmp / 'vigil.db'}")
    db.migrate()
    return db


def wait_for(what: Callable[[], bool], timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} within {timeout} s")
        time.sleep(0.05)


class ListSink:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def publish(self, event: Event) -> None:
        self.events.append(event)

    def close(self) -> None:
        pass


@dataclass
class Run:
    supervisor: Supervisor
    db: Database
    live: list[dict[str, Any]]
    mid_status: dict[str, Any] = field(default_factory=dict)
    mid_frame: np.ndarray | None = None
    rules_b: tuple[dict[str, Any], dict[str, Any]] | None = None


def subscribe_in_thread(supervisor: Supervisor) -> tuple[list[dict[str, Any]], threading.Thread]:
    """A WebSocket-like asyncio client in its own loop; it ends when the hub closes."""
    received: list[dict[str, Any]] = []
    ready = threading.Event()

    async def collect() -> None:
        stream = supervisor.subscribe()
        first = asyncio.ensure_future(anext(stream, None))
        await asyncio.sleep(0)  # let the generator register before anything is published
        ready.set()
        item = await first
        while item is not None:
            received.append(item)
            item = await anext(stream, None)

    thread = threading.Thread(target=asyncio.run, args=(collect(),), daemon=True)
    thread.start()
    assert ready.wait(5)
    return received, thread


@pytest.fixture(scope="module", params=[0, 2], ids=["threads", "processes"])
def run(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Run]:
    """The same run with every camera in a thread, and spread over two worker processes."""
    tmp = tmp_path_factory.mktemp("serve")
    config = make_config(tmp, {
        "a": {"sources": [{"url": SCENE}], "lines": LINE},
        "b": {"sources": [{"url": SCENE}]},
        "bad": {"sources": [{"url": BAD}], "lines": LINE},
    })  # fmt: skip
    db = make_db(tmp)
    supervisor = Supervisor(config, db=db, backoff=fast_backoff, stall_timeout=2.0,
                            worker_processes=request.param)  # fmt: skip
    received, client = subscribe_in_thread(supervisor)
    supervisor.start()
    result = Run(supervisor, db, received)
    try:
        line = LineConfig.model_validate(LINE["middle"])
        supervisor.update_rules("b", {}, {"middle": line})
        result.rules_b = supervisor.rules("b")

        # Mid-run: once camera a runs at its pace and the bad one was found offline (worker
        # processes take a while to spawn and report on a busy machine: no fixed sleep).
        def settled() -> bool:
            status = {s.name: s for s in supervisor.cameras()}
            result.mid_status = status
            a, bad = status["a"], status["bad"]
            return (a.online and a.state == "running" and a.decode_fps >= 5.0
                    and a.detect_fps > 0 and bad.state == "offline")  # fmt: skip

        wait_for(settled, 60, "camera a running and camera bad offline")
        result.mid_frame = supervisor.latest_frame("a")
        wait_for(lambda: all(supervisor.workers[c].state == "ended" for c in "ab"), 30,
                 "both synthetic cameras did not finish")  # fmt: skip
    finally:
        supervisor.stop()
        client.join(10)
    yield result
    db.close()


def line_totals(db: Database, camera: str) -> dict[str, int]:
    with db.session() as session:
        points = CountRepo(session).series(camera, rule="middle", period="day")
    totals: dict[str, int] = {}
    for p in points:
        totals[p.metric] = totals.get(p.metric, 0) + p.count
    return totals


@pytest.mark.parametrize("camera", ["a", "b"])
def test_good_cameras_count_every_crossing_in_the_database(run: Run, camera: str) -> None:
    assert line_totals(run.db, camera) == {
        Direction.A_TO_B.value: DEFAULT_DOWN_CROSSINGS,
        Direction.B_TO_A.value: DEFAULT_UP_CROSSINGS,
    }  # fmt: skip


@pytest.mark.parametrize("camera", ["a", "b"])
def test_good_cameras_store_one_finished_event_per_crossing(run: Run, camera: str) -> None:
    with run.db.session() as session:
        rows = EventRepo(session).list(EventFilter(camera=camera)).items
    assert len(rows) == DEFAULT_DOWN_CROSSINGS + DEFAULT_UP_CROSSINGS
    assert all(r.state == "end" and r.end is not None and r.live for r in rows)
    assert all(r.lines == ["middle"] for r in rows)
    assert all(abs(r.start - time.time()) < 120 for r in rows), "live events carry UTC times"


@pytest.mark.parametrize("camera", ["a", "b"])
def test_metrics_counters_match_the_database(run: Run, camera: str) -> None:
    """``/metrics``' events and crossings, in threads and in worker processes alike."""
    metrics = run.supervisor.metrics()
    with run.db.session() as session:
        rows = EventRepo(session).list(EventFilter(camera=camera)).items
    by_label: dict[str, int] = {}
    for row in rows:
        by_label[row.label] = by_label.get(row.label, 0) + 1
    assert {label: n for (cam, label), n in metrics.events.items() if cam == camera} == by_label
    crossings: dict[str, int] = {}
    for (cam, line, direction, _label), n in metrics.crossings.items():
        if cam == camera and line == "middle":
            crossings[direction] = crossings.get(direction, 0) + n
    assert crossings == line_totals(run.db, camera)
    assert metrics.reconnects[(camera, "detect")] == 0  # a file-like scene never drops out
    assert (metrics.mqtt, metrics.webhooks) == (None, None)


def test_bad_camera_is_reported_offline_and_retried(run: Run) -> None:
    bad = run.supervisor.workers["bad"]
    status = run.mid_status["bad"]
    assert status.online is False
    assert status.state == "offline"
    assert status.last_frame_time is None
    assert bad.sessions >= 3, "the camera was not retried"
    assert bad.last_error is not None
    assert "127.0.0.1:1" in bad.last_error
    assert bad.state == "stopped"
    with run.db.session() as session:
        assert EventRepo(session).count(EventFilter(camera="bad")) == 0


def test_status_and_latest_frame_while_running(run: Run) -> None:
    status = run.mid_status["a"]
    assert status.online
    assert status.state == "running"
    assert 5.0 <= status.decode_fps <= 15.0, status
    assert status.detect_fps > 0
    assert status.last_frame_time is not None
    assert run.mid_frame is not None
    assert run.mid_frame.shape == (360, 640, 3)
    assert run.mid_frame.dtype == np.uint8
    assert run.supervisor.latest_frame("nope") is None


def test_rules_read_back_and_unknown_camera(run: Run) -> None:
    assert run.rules_b is not None
    zones, lines = run.rules_b
    assert zones == {}
    assert list(lines) == ["middle"]
    with pytest.raises(KeyError):
        run.supervisor.rules("nope")


def test_live_subscribers_get_every_event_and_end_at_stop(run: Run) -> None:
    ends = [e for e in run.live if e["state"] == "end"]
    assert len(ends) == 2 * (DEFAULT_DOWN_CROSSINGS + DEFAULT_UP_CROSSINGS)
    assert {e["camera"] for e in ends} == {"a", "b"}
    assert run.supervisor.hub.subscribers == 0


# -- crashes, graceful stop -------------------------------------------------------------------


class CrashingSource:
    """Yields a few frames of a scene, then raises like a bug in a stage would."""

    def __init__(self, url: str, camera: str) -> None:
        self.inner = open_source(url, camera, live=True)
        self.camera_id = camera

    def open(self) -> SourceInfo:
        return self.inner.open()

    def frames(self) -> Iterator[Frame]:
        for i, frame in enumerate(self.inner.frames()):
            if i == 5:
                raise RuntimeError("a stage blew up")
            yield frame

    def close(self) -> None:
        self.inner.close()


def test_a_crashing_worker_is_restarted(tmp_path: Path) -> None:
    calls: list[int] = []

    def factory(source: SourceConfig, camera: str, on_status: StatusCallback) -> Source:
        calls.append(1)
        if len(calls) == 1:
            return CrashingSource(source.url, camera)
        short = SourceConfig(url=source.url.replace("duration=10", "duration=1"))
        return default_source(short, camera, on_status)

    config = make_config(tmp_path, {"a": {"sources": [{"url": SCENE}]}})
    supervisor = Supervisor(config, source_factory=factory, backoff=fast_backoff)
    supervisor.start()
    try:
        worker = supervisor.workers["a"]
        wait_for(lambda: worker.state == "ended", 20, "the restarted worker did not finish")
    finally:
        supervisor.stop()
    assert worker.restarts == 1
    assert len(calls) == 2
    assert worker.last_error is not None
    assert "RuntimeError: a stage blew up" in worker.last_error
    assert worker.frames >= 5 + 10


def test_graceful_stop_closes_open_events(tmp_path: Path) -> None:
    config = make_config(tmp_path, {
        "a": {"sources": [{"url": SCENE.replace("duration=10", "duration=20")}], "lines": LINE},
    })  # fmt: skip
    db = make_db(tmp_path)
    seen = ListSink()
    supervisor = Supervisor(config, db=db, sinks=[seen], backoff=fast_backoff)
    supervisor.start()
    try:
        wait_for(lambda: any(e.state is EventState.START for e in seen.events), 20,
                 "no event started")  # fmt: skip
    finally:
        supervisor.stop()
    try:
        with db.session() as session:
            rows = EventRepo(session).list(EventFilter(camera="a")).items
        assert rows
        assert all(r.state == "end" and r.end is not None for r in rows)
        assert seen.events[-1].state is EventState.END
    finally:
        db.close()


# -- store sink, retention ------------------------------------------------------------------


def _hit(kind: RuleEventKind, direction: Direction | None = None) -> RuleEvent:
    return RuleEvent("r", kind, "cam", 1, 0, "person", 0.0, (0.0, 0.0), direction)


@pytest.mark.parametrize(
    ("hit", "kind", "metric"),
    [
        (_hit(RuleEventKind.CROSS, Direction.A_TO_B), "line", "a_to_b"),
        (_hit(RuleEventKind.CROSS, Direction.B_TO_A), "line", "b_to_a"),
        (_hit(RuleEventKind.ENTER), "zone", "enter"),
        (_hit(RuleEventKind.EXIT), "zone", "exit"),
        (_hit(RuleEventKind.LOITER), "zone", "loiter"),
        (_hit(RuleEventKind.SPEEDING), "zone", "speeding"),
        (_hit(RuleEventKind.WRONG_WAY), "zone", "wrong_way"),
        (_hit(RuleEventKind.STOPPED), "zone", "stopped"),
    ],
)
def test_count_keys(hit: RuleEvent, kind: str, metric: str) -> None:
    key = count_key(hit)
    assert (key.camera, key.rule, key.kind, key.label, key.metric) == (
        "cam",
        "r",
        kind,
        "person",
        metric,
    )


def test_retention_deletes_old_unlocked_segments_and_their_files(tmp_path: Path) -> None:
    config = VigilConfig.model_validate({
        "data_dir": str(tmp_path / "data"), "record": {"max_age": 3600},
    })  # fmt: skip
    db = make_db(tmp_path)
    now = 1_700_000_000.0
    plan = {"old.mp4": (now - 7200, False), "locked.mp4": (now - 7000, True),
            "new.mp4": (now - 60, False)}  # fmt: skip
    try:
        with db.session() as session:
            repo = SegmentRepo(session)
            for name, (start, locked) in plan.items():
                rel = f"recordings/cam/{name}"
                (config.data_dir / rel).parent.mkdir(parents=True, exist_ok=True)
                (config.data_dir / rel).write_bytes(b"x" * 10)
                repo.add(camera="cam", path=rel, start=start, end=start + 10, size=10,
                         sha256="0" * 64)  # fmt: skip
                if locked:
                    repo.set_lock("cam", start, start + 10, True)
        supervisor = Supervisor(config, db=db)
        assert supervisor.run_retention(now) == ["recordings/cam/old.mp4"]
        left = sorted(p.name for p in (config.data_dir / "recordings/cam").iterdir())
        assert left == ["locked.mp4", "new.mp4"]
        with db.session() as session:
            assert sorted(r.path.rsplit("/", 1)[1] for r in SegmentRepo(session).list()) == left
        supervisor.stop()
    finally:
        db.close()


def test_retention_of_vigil_serve_prunes_the_folders_it_empties(tmp_path: Path) -> None:
    """``Supervisor.run_retention`` is the ``RetentionJob``: the hour and day folders of the
    deleted segments go too, the camera folder with a kept segment stays."""
    config = VigilConfig.model_validate({
        "data_dir": str(tmp_path / "data"), "record": {"max_age": 3600},
    })  # fmt: skip
    db = make_db(tmp_path)
    now = 1_700_000_000.0
    try:
        with db.session() as session:
            repo = SegmentRepo(session)
            for rel, start in (
                ("recordings/cam/2023-11-13/10/00.00.mp4", now - 86_400),
                ("recordings/cam/2023-11-14/22/13.00.mp4", now - 20),
            ):
                (config.data_dir / rel).parent.mkdir(parents=True, exist_ok=True)
                (config.data_dir / rel).write_bytes(b"x" * 10)
                repo.add(camera="cam", path=rel, start=start, end=start + 10, size=10,
                         sha256="0" * 64)  # fmt: skip
        supervisor = Supervisor(config, db=db)
        assert supervisor.run_retention(now) == ["recordings/cam/2023-11-13/10/00.00.mp4"]
        assert not (config.data_dir / "recordings/cam/2023-11-13").exists()
        assert (config.data_dir / "recordings/cam/2023-11-14/22/13.00.mp4").exists()
        supervisor.stop()
    finally:
        db.close()


# -- recording activity ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "objects", "marked"),
    [("events", True, True), ("motion", True, True), ("events", False, False),
     ("motion", False, False)],
)  # fmt: skip
def test_worker_marks_recorder_activity(
    tmp_path: Path, mode: Literal["events", "motion"], objects: bool, marked: bool
) -> None:
    from vigil.ingest.synthetic import SyntheticSource
    from vigil.record import Recorder
    from vigil.runtime.worker import CameraWorker

    def factory(source: SourceConfig, camera: str, on_status: StatusCallback) -> Source:
        return SyntheticSource(camera, fps=10, duration=10, objects=None if objects else [])

    config = make_config(tmp_path, {"a": {"sources": [{"url": SCENE}], "lines": LINE}})
    recorder = Recorder("rtsp://127.0.0.1:1/x", "a", tmp_path, mode=mode, post_roll=0.0)
    sink = ListSink()
    worker = CameraWorker(config.camera("a"), None, sink, recorder=recorder,
                          source_factory=factory)  # fmt: skip
    started = time.time()
    worker.run()
    assert worker.state == "ended"
    ends = [e for e in sink.events if e.state is EventState.END]
    assert len(ends) == (DEFAULT_DOWN_CROSSINGS + DEFAULT_UP_CROSSINGS if objects else 0)
    assert recorder.recording_at(started) is marked
    assert not recorder.recording_at(time.time() + 60), "activity beyond the scene"
