"""Cameras in worker processes (``server.worker_processes``): real spawned processes, real
synthetic cameras, the shared detector in the main process fed through shared memory.

The detector here is a probe that lives in the main process (it is never pickled): it
records what reached it and reports one person in the middle of every image, so events
start, carry snapshots (pixels back through shared memory) and stay open until closed.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sqlalchemy", reason="the server extra is not installed")

from tests.runtime.test_supervisor import LINE, ListSink, fast_backoff, make_config, wait_for
from vigil.config.models import LineConfig
from vigil.detect.labels import COCO
from vigil.errors import ConfigError
from vigil.privacy.changes import thumbnail
from vigil.runtime.procs import assign, resolve_worker_processes
from vigil.runtime.serve import Supervisor
from vigil.runtime.shm import Slot, SlotRegistry, packed_size
from vigil.types import Detections, EventState, ImageArray

SCENE = "synthetic://?width=640&height=360&fps=10&duration={d}"
PERSON = COCO.index("person")


class ProbeDetector:
    """One person box in the middle of every image; remembers each image's shape and mean."""

    class_names: Sequence[str] = COCO
    input_size = (416, 416)

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: list[tuple[tuple[int, ...], float]] = []
        self.batches: list[int] = []

    def detect_batch(self, images: Sequence[ImageArray]) -> list[Detections]:
        with self.lock:
            self.batches.append(len(images))
            self.seen.extend((im.shape, float(im.mean())) for im in images)
        out = []
        for im in images:
            h, w = im.shape[:2]
            box = np.array([[w * 0.4, h * 0.3, w * 0.6, h * 0.9]], np.float32)
            out.append(Detections(box, np.array([0.9], np.float32), np.array([PERSON])))
        return out


def shm_names(prefix: str) -> list[str]:
    return [n for n in os.listdir("/dev/shm") if n.startswith(prefix)]


def detector_config(tmp: Path, names: Sequence[str], duration: float) -> object:
    return make_config(tmp, {
        name: {"sources": [{"url": SCENE.format(d=duration)}],
               "detect": {"model": "yolox_nano", "fps": 5, "labels": ["person"]},
               "motion": {"enabled": False}}
        for name in names
    })  # fmt: skip


# -- pure parts ------------------------------------------------------------------------------


@pytest.mark.parametrize(("setting", "cameras", "cpus", "expected"), [
    (0, 16, 2, 0), (2, 16, 2, 2), (4, 3, 2, 3),  # never more processes than cameras
    ("auto", 8, 2, 0), ("auto", 9, 2, 2), ("auto", 16, 2, 2), ("auto", 16, 1, 0),
    ("auto", 40, 8, 8), ("auto", 4, None, 0),
])  # fmt: skip
def test_resolve_worker_processes(
    setting: int | str, cameras: int, cpus: int | None, expected: int
) -> None:
    assert resolve_worker_processes(setting, cameras, cpus) == expected


@pytest.mark.parametrize(("value", "ok"), [
    (0, True), (2, True), (64, True), ("auto", True), (-1, False), (65, False), ("many", False),
])  # fmt: skip
def test_worker_processes_setting(value: object, ok: bool) -> None:
    from pydantic import ValidationError

    from vigil.config.models import ServerConfig

    assert ServerConfig().worker_processes == "auto"
    if ok:
        assert ServerConfig(worker_processes=value).worker_processes == value  # type: ignore[arg-type]
    else:
        with pytest.raises(ValidationError, match="worker_processes"):
            ServerConfig(worker_processes=value)  # type: ignore[arg-type]


@pytest.mark.parametrize(("cameras", "processes", "groups"), [
    (["c", "a", "b"], 2, [["a", "c"], ["b"]]),
    (["a"], 3, [["a"]]),
    (["a", "b", "c", "d"], 4, [["a"], ["b"], ["c"], ["d"]]),
])  # fmt: skip
def test_assign_deals_cameras_round_robin(
    cameras: list[str], processes: int, groups: list[list[str]]
) -> None:
    assert assign(cameras, processes) == groups


def test_slot_round_trip_and_registry_unlinks() -> None:
    registry = SlotRegistry(f"vigil-test-{os.getpid()}")
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 255, shape, np.uint8) for shape in [(5, 7, 3), (360, 640, 3)]]
    slot = registry.create(packed_size([im.shape for im in images]))
    other = Slot(slot.name)  # what a worker process does: attach by name
    layout = other.pack(images)
    views = registry.get(slot.name).views(layout)
    assert all(np.array_equal(a, b) for a, b in zip(images, views, strict=True))
    assert not views[0].flags.writeable
    with pytest.raises(ValueError, match="do not fit"):
        other.pack([*images, images[1]])
    other.close()
    del views
    grown = registry.create(10, replaces=slot.name)
    assert shm_names(registry.prefix) == [grown.name]
    registry.close()
    assert shm_names(registry.prefix) == []


# -- the Supervisor with worker processes ---------------------------------------------------


def test_detector_in_the_main_process_sees_every_cameras_pixels(tmp_path: Path) -> None:
    probe = ProbeDetector()
    seen = ListSink()
    config = detector_config(tmp_path, ["a", "b", "c"], 3)
    supervisor = Supervisor(config, sinks=[seen], detector=probe, backoff=fast_backoff,
                            worker_processes=2)  # type: ignore[arg-type]  # fmt: skip
    assert supervisor.pool is not None
    prefix = supervisor.pool.registry.prefix
    supervisor.start()
    try:
        assert len(supervisor.worker_pids()) == 2
        wait_for(lambda: all(w.state == "ended" for w in supervisor.workers.values()), 30,
                 "the cameras did not finish")  # fmt: skip
        assert shm_names(prefix), "slots exist while running"
    finally:
        supervisor.stop()
    assert shm_names(prefix) == [], "shared memory left in /dev/shm"
    # 640x360 frames scaled to the network's 416: every analysed frame crossed intact.
    assert {shape for shape, _ in probe.seen} == {(234, 416, 3)}
    assert len(probe.seen) >= 3 * 10
    assert np.std([mean for _, mean in probe.seen]) > 0, "the scene moves: pixels differ"
    ends = [e for e in seen.events if e.state is EventState.END]
    assert {e.camera_id for e in ends} == {"a", "b", "c"}
    snaps = [e.snapshot for e in seen.events if e.snapshot is not None]
    assert snaps
    assert all(s.image is not None and s.image.shape == (360, 640, 3) for s in snaps)
    status = {s.name: s for s in supervisor.cameras()}
    assert all(s.inference_ms > 0 for s in status.values())
    assert all(supervisor.workers[n].analysed >= 10 for n in "abc")


def test_a_killed_worker_process_is_restarted_and_its_cameras_resume(tmp_path: Path) -> None:
    seen = ListSink()
    config = detector_config(tmp_path, ["a", "b"], 60)
    supervisor = Supervisor(config, sinks=[seen], detector=ProbeDetector(),
                            backoff=fast_backoff, worker_processes=2)  # type: ignore[arg-type]  # fmt: skip
    supervisor.start()
    try:
        a, b = supervisor.workers["a"], supervisor.workers["b"]
        wait_for(lambda: any(e.state is EventState.START and e.camera_id == "a"
                             for e in seen.events), 30, "no event started on a")  # fmt: skip
        pid = supervisor.pool.workers[0].process.pid  # type: ignore[union-attr]
        assert sorted(supervisor.pool.workers[0].cameras) == ["a"]  # type: ignore[union-attr]
        frames_b = b.frames
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: a.restarts == 1 and a.state == "restarting", 10, "not seen dying")
        # The event the dead process left open is closed by the main process.
        opened = {e.id for e in seen.events if e.camera_id == "a"}
        closed = {e.id for e in seen.events if e.camera_id == "a" and e.state is EventState.END}
        assert opened == closed
        frames_a = a.frames
        wait_for(lambda: a.online and a.frames > frames_a + 5, 30, "camera a did not resume")
        assert supervisor.pool.workers[0].process.pid != pid  # type: ignore[union-attr]
        assert b.frames > frames_b + 5, "the other process went on"
        # One preview and one request slot per camera: the dead process's slot is gone.
        assert len(supervisor.pool.registry.names) == 4  # type: ignore[union-attr]
        assert b.restarts == 0
    finally:
        supervisor.stop()


def test_rules_updated_at_run_time_reach_a_camera_in_a_worker(tmp_path: Path) -> None:
    config = make_config(tmp_path, {"a": {"sources": [{"url": SCENE.format(d=10)}]}})
    supervisor = Supervisor(config, backoff=fast_backoff, worker_processes=1)
    supervisor.start()
    try:
        wait_for(lambda: supervisor.workers["a"].online, 20, "camera a not online")
        supervisor.update_rules("a", {}, {"middle": LineConfig.model_validate(LINE["middle"])})
        assert list(supervisor.rules("a")[1]) == ["middle"]
        assert "middle" in supervisor.counts("a")["lines"], "the worker's engine has the new line"
        bad = LineConfig.model_validate({"points": [[0.1, 0.5], [0.9, 0.5]], "labels": ["unicorn"]})
        with pytest.raises(ConfigError):
            supervisor.update_rules("a", {}, {"dot": bad})
        assert list(supervisor.rules("a")[1]) == ["middle"], "a rejected update changes nothing"
        frame = supervisor.latest_frame("a")
        assert frame is not None
        assert frame.shape == (360, 640, 3)
        assert supervisor.latest_tracks("a").width == 640
        # The raw detections cross the process boundary too (people modes hide them).
        wait_for(lambda: bool(supervisor.latest_tracks("a").detections), 20,
                 "no detections from the worker process")  # fmt: skip
        # And the thumbnail of their analysed frame (live video hides what changed since).
        decided = supervisor.latest_tracks("a").decided
        assert decided is not None
        assert decided.shape == thumbnail(frame).shape
        assert supervisor.latest_frame("nope") is None
    finally:
        supervisor.stop()
    assert supervisor.workers["a"].state == "stopped"
    assert supervisor.latest_frame("a") is None, "no process, no frame"


def test_graceful_stop_in_process_mode_closes_open_events(tmp_path: Path) -> None:
    seen = ListSink()
    config = detector_config(tmp_path, ["a"], 60)
    supervisor = Supervisor(config, sinks=[seen], detector=ProbeDetector(),
                            backoff=fast_backoff, worker_processes=1)  # type: ignore[arg-type]  # fmt: skip
    supervisor.start()
    try:
        wait_for(lambda: any(e.state is EventState.START for e in seen.events), 30,
                 "no event started")  # fmt: skip
    finally:
        started = time.monotonic()
        supervisor.stop()
    assert time.monotonic() - started < 10
    assert seen.events[-1].state is EventState.END
    opened = {e.id for e in seen.events}
    assert opened == {e.id for e in seen.events if e.state is EventState.END}
    assert supervisor.workers["a"].state == "stopped"
