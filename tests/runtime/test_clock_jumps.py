"""Fault: the host clock jumps forwards and back while Vigil runs.

The real clock cannot be changed by a test, so ``time.time`` is replaced (``monkeypatch``)
by a host clock that jumps, and a fresh ``vigil.clock.SteadyClock`` reading it is installed
as the process's clock, at the seams where Vigil stamps data: live frames (hence events and
tracker steps), segments, and the retention loop of ``vigil serve``. Timers (reconnect
backoff, stall detection, batching) run on ``time.monotonic()``, which a jump of the wall
clock does not move; that is checked too.

Wanted: retention deletes nothing more after a forward jump of a year; after a backward jump
of an hour events never get negative durations, frame times never run backwards, and the
segments of a reconnect do not overlap the earlier ones.
"""

from __future__ import annotations

import ast
import itertools
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("sqlalchemy", reason="the server extra is not installed")

from vigil import clock
from vigil.clock import SteadyClock
from vigil.config import parse_config
from vigil.config.models import VigilConfig
from vigil.ingest import SyntheticSource
from vigil.runtime.pipeline import CameraPipeline
from vigil.runtime.serve import Supervisor
from vigil.store import Database, SegmentRepo
from vigil.types import EventState

YEAR = 365 * 86_400.0
HOUR = 3600.0
REAL_TIME = time.time
REAL_MONOTONIC = time.monotonic


class HostClock:
    """``time.time`` as a host whose clock is set by hand: real time plus ``step``, plus
    ``passed`` seconds that the test lets pass at once (the monotonic clock of the installed
    ``SteadyClock`` moves by them too, as both clocks would in that time)."""

    def __init__(self) -> None:
        self.step = 0.0
        self.passed = 0.0

    def __call__(self) -> float:
        return REAL_TIME() + self.step + self.passed

    def monotonic(self) -> float:
        return REAL_MONOTONIC() + self.passed


@pytest.fixture
def host(monkeypatch: pytest.MonkeyPatch) -> Iterator[HostClock]:
    wall = HostClock()
    monkeypatch.setattr(time, "time", wall)
    previous = clock.install(SteadyClock(wall, wall.monotonic))
    try:
        yield wall
    finally:
        clock.install(previous)


def test_steady_clock_absorbs_jumps_and_slews_back() -> None:
    wall, mono = [1_000_000.0], [0.0]
    steady = SteadyClock(lambda: wall[0], lambda: mono[0], jump_s=2.0, slew=0.01)
    readings = [steady()]

    def tick(seconds: float, jump: float = 0.0) -> None:
        mono[0] += seconds
        wall[0] += seconds + jump
        readings.append(steady())

    tick(1.0)
    tick(1.0, jump=YEAR)  # forward a year: the reading goes on by the elapsed second
    assert readings[-1] - readings[-2] == pytest.approx(1.0, abs=0.02)
    tick(1.0, jump=-YEAR - HOUR)  # back past where it was
    assert readings[-1] >= readings[-2]
    assert steady.jumps == 2
    for _ in range(100):
        tick(100.0)
    assert all(b >= a for a, b in itertools.pairwise(readings)), "monotone"
    assert steady.offset == pytest.approx(HOUR - 100 * 100 * 0.01, abs=1.0), "slews back"
    before = steady.offset
    tick(1.0, jump=0.5)  # drift below jump_s passes straight through
    assert steady.offset == pytest.approx(before - 0.01, abs=1e-6)


def test_retention_deletes_nothing_more_when_the_clock_jumps_a_year_ahead(
    tmp_path: Path, host: HostClock
) -> None:
    config = VigilConfig.model_validate({
        "data_dir": str(tmp_path / "data"), "record": {"max_age": 3600},
        "server": {"retention_interval": 3600},
    })  # fmt: skip
    db = Database(f"sqlite:///{tmp_path / 'vigil.db'}")
    db.migrate()
    now = clock.now()  # the clock is read before the jump (frames, segments do it all along)
    try:
        with db.session() as session:
            repo = SegmentRepo(session)
            for n in range(3):  # the last ten minutes of recordings
                rel = f"recordings/cam/{n}.mp4"
                (config.data_dir / rel).parent.mkdir(parents=True, exist_ok=True)
                (config.data_dir / rel).write_bytes(b"x" * 10)
                start = now - 600 + n * 200
                repo.add(camera="cam", path=rel, start=start, end=start + 10, size=10,
                         sha256="0" * 64)  # fmt: skip
        supervisor = Supervisor(config, db=db)
        ran = threading.Event()
        seen: list[float] = []
        real_run = supervisor.run_retention

        def spy(at: float) -> list[str]:
            seen.append(at)
            try:
                return real_run(at)
            finally:
                ran.set()

        supervisor.run_retention = spy  # type: ignore[method-assign]
        host.step = YEAR
        loop = threading.Thread(target=supervisor._retention_loop, daemon=True)
        loop.start()
        supervisor._retention_now.set()  # as a recorder that found the disk full does
        assert ran.wait(60), "retention did not run"
        supervisor._stop.set()
        supervisor._retention_now.set()
        loop.join(60)
        assert seen[0] < now + HOUR, "retention ran at the jumped time"
        with db.session() as session:
            assert len(SegmentRepo(session).list("cam")) == 3, "recordings were deleted"
        assert len(list((config.data_dir / "recordings/cam").iterdir())) == 3
        supervisor.stop()
    finally:
        db.close()


def test_events_never_get_negative_durations_when_the_clock_steps_back(
    host: HostClock,
) -> None:
    """A live camera (the synthetic scene, paced and stamped as a camera is) runs through the
    pipeline while the host clock steps back an hour mid-event."""
    config = parse_config("detect: {model: motion, fps: 25}\nevents: {min_duration: 0.2}\n")
    camera = config.for_source("synthetic://", name="cam")
    source = SyntheticSource("cam", width=160, height=90, fps=25, duration=10, live=True)
    info = source.open()
    pipeline = CameraPipeline(camera, None, (info.width, info.height), live=True,
                              source_fps=info.fps)  # fmt: skip
    times, events = [], []
    for frame in source.frames():
        if frame.seq == 75:  # 3 s in, an object is in view and its event open
            host.step = -HOUR
        times.append(frame.time)
        events.extend(pipeline.process(frame).events)
    events.extend(pipeline.close(times[-1]))
    assert all(b >= a for a, b in itertools.pairwise(times)), "frame times ran back"
    ended = [e for e in events if e.state is EventState.END]
    assert ended, "the scene produced no event"
    assert all(e.end is not None and e.end >= e.start for e in ended), [
        (e.start, e.end) for e in ended]  # fmt: skip
    assert clock.now() > REAL_TIME() - 60, "Vigil's time did not follow the step back"


def test_segments_of_a_reconnect_after_a_step_back_do_not_overlap(
    tmp_path: Path, host: HostClock
) -> None:
    from tests.runtime.test_soak import encoded_second
    from vigil.record.segmenter import Segmenter

    container, packets = encoded_second()
    video = container.streams.video[0]
    per_second = packets[-1][1] - packets[0][1] + (packets[1][1] - packets[0][1])
    segmenter = Segmenter("cam", tmp_path, segment_seconds=2.0)
    import av

    def feed(seconds: int) -> None:
        for second in range(seconds):
            for pts, dts, key, data in packets:
                packet = av.Packet(data)
                packet.pts, packet.dts = pts + second * per_second, dts + second * per_second
                packet.time_base = video.time_base
                packet.stream = video
                packet.is_keyframe = key
                segmenter.write(packet)

    try:
        segmenter.set_streams(video, None)
        feed(5)
        host.passed += 5.0  # the five seconds of video take five seconds from a camera
        host.step = -HOUR  # the clock steps back, then the camera reconnects
        segmenter.set_streams(video, None)
        feed(5)
        segmenter.close()
    finally:
        container.close()
    segments = segmenter.segments
    assert len(segments) >= 4
    assert all(s.end > s.start for s in segments)
    assert all(b.start >= a.end - 0.5 for a, b in itertools.pairwise(segments)), [
        (s.start, s.end) for s in segments]  # fmt: skip


def test_timers_run_on_the_monotonic_clock() -> None:
    """Stall detection, reconnect backoff and batching waits must not read the wall clock:
    a jump would fire or starve them. No ``time.time()`` in those modules."""
    root = Path(__file__).resolve().parents[2] / "vigil"
    for rel in (
        "ingest/av_source.py",
        "ingest/backoff.py",
        "runtime/batcher.py",
        "record/recorder.py",
        "runtime/worker.py",
        "runtime/threads.py",
    ):
        tree = ast.parse((root / rel).read_text())
        calls = [
            n.lineno
            for n in ast.walk(tree)
            if isinstance(n, ast.Call)
            and isinstance(n.func, ast.Attribute)
            and n.func.attr == "time"
            and isinstance(n.func.value, ast.Name)
            and n.func.value.id == "time"
        ]
        assert calls == [], f"vigil/{rel} reads time.time() at lines {calls}"
