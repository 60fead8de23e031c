"""A file as a camera of ``vigil serve``: real time, wall-clock times, recorded, looping.

A 4 s clip of the demo street (people and cars drawn, H.264, a keyframe a second) is served
by a real Supervisor with a real SQLite database. Before, a file camera decoded at ~75 fps,
was not recorded, ended after one pass and dated its events 1970-01-01.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from vigil.config.models import VigilConfig
from vigil.media.h264 import Encoding, H264File
from vigil.runtime.demo_scene import DOOR_LINE, FPS, HEIGHT, ROAD_ZONE, WIDTH, render_frame
from vigil.runtime.demo_scene import _script as demo_script
from vigil.runtime.demo_scene import background as demo_background
from vigil.runtime.serve import Supervisor
from vigil.store import Database, EventRepo, SegmentRepo

CLIP_SECONDS = 4.0


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Seconds 8–12 of the demo street: a walker heads for the door, cars pass."""
    path = tmp_path_factory.mktemp("clip") / "street.mp4"
    movers, empty = demo_script(), demo_background()
    with H264File(path, FPS, (WIDTH, HEIGHT), encoding=Encoding(keyframe_s=1.0)) as out:
        for i in range(round(CLIP_SECONDS * FPS)):
            out.write(render_frame(8.0 + i / FPS, movers, empty))
    return path


def make_config(tmp: Path, clip: Path, *, loop: bool) -> VigilConfig:
    return VigilConfig.model_validate({
        "detect": {"model": "motion", "fps": 5},
        "tracker": {"new_track_threshold": 0.5, "high_threshold": 0.4},
        "events": {"min_duration": 0.2},
        "record": {"mode": "continuous", "segment_seconds": 1},
        "data_dir": str(tmp / "data"),
        "cameras": {"street": {
            "sources": [{"url": str(clip), "loop": loop}],
            "lines": {"door": {"points": DOOR_LINE}},
            "zones": {"road": {"polygon": ROAD_ZONE}},
        }},
    })  # fmt: skip


def wait_for(what: Callable[[], bool], timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} within {timeout} s")
        time.sleep(0.1)


def segments(db: Database) -> list[Any]:
    with db.session() as session:
        return SegmentRepo(session).list("street")


def test_a_looping_file_camera_plays_in_real_time_is_recorded_and_dated_now(
    tmp_path: Path, clip: Path
) -> None:
    db = Database(f"sqlite:///{tmp_path / 'vigil.db'}")
    db.migrate()
    supervisor = Supervisor(make_config(tmp_path, clip, loop=True), db=db, worker_processes=0)
    started = time.time()
    supervisor.start()
    try:
        # Twice the clip's length: it must still be playing, having started over.
        wait_for(lambda: time.time() - started > 2.5 * CLIP_SECONDS, 60, "time did not pass")
        status = supervisor.workers["street"]
        assert status.state == "running", status.error
        (camera,) = supervisor.cameras()
        assert camera.online
        # Real time: the clip's 15 fps, not the ~75+ fps a file decodes at when unpaced.
        assert 0 < camera.decode_fps < 1.5 * FPS
        wait_for(lambda: len(segments(db)) >= 4, 60, "four 1 s segments were not recorded")
    finally:
        supervisor.stop()
    rows = segments(db)
    now = time.time()
    assert all(started - 1 <= row.start < row.end <= now + 1 for row in rows), rows
    assert all((tmp_path / "data" / row.path).is_file() for row in rows)
    # The walker and the cars move in every second of the clip: the timeline's motion lane.
    assert sum(row.has_motion for row in rows) >= len(rows) - 1, [r.has_motion for r in rows]
    # The loop went on recording past one pass of the clip.
    assert max(row.end for row in rows) - min(row.start for row in rows) > CLIP_SECONDS + 1
    with db.session() as session:
        events = EventRepo(session).list().items
    assert events, "the walker and the cars made no event"
    assert all(started - 1 <= e.start <= now + 1 for e in events), [e.start for e in events]
    db.close()


def test_a_file_camera_without_loop_plays_and_records_once(tmp_path: Path, clip: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'vigil.db'}")
    db.migrate()
    supervisor = Supervisor(make_config(tmp_path, clip, loop=False), db=db, worker_processes=0)
    started = time.time()
    supervisor.start()
    try:
        wait_for(lambda: supervisor.workers["street"].state == "ended", 60,
                 "the file camera did not end after its one pass")  # fmt: skip
        # It took about the clip's length (not a fraction of it, as unpaced decoding did).
        assert time.time() - started >= 0.8 * CLIP_SECONDS
        wait_for(lambda: len(segments(db)) > 0, 30, "the one pass was not recorded")
        time.sleep(2.0)  # a recorder that started over would add segments meanwhile
        recorded = segments(db)
        assert sum(row.end - row.start for row in recorded) <= CLIP_SECONDS + 0.5
        time.sleep(2.0)
        assert [row.id for row in segments(db)] == [row.id for row in recorded]
    finally:
        supervisor.stop()
    db.close()
