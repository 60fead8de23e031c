"""``CameraPipeline.prepare``: sampler and motion gate run ahead, in another thread, unchanged."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from vigil.config import parse_config
from vigil.errors import VigilError
from vigil.ingest import open_source
from vigil.runtime.pipeline import CameraPipeline, FrameResult
from vigil.types import Frame

# Motion-blob detection at half the source's rate: the sampler drops every other frame.
URL = "synthetic://?width=320&height=180&fps=10&duration=8"
RULES = """
detect: {model: motion, fps: 5}
tracker: {new_track_threshold: 0.5, high_threshold: 0.4}
lines:
  middle:
    points: [[0.05, 0.5], [0.95, 0.5]]
"""


def frames() -> list[Frame]:
    source = open_source(URL)
    source.open()
    try:
        return list(source.frames())
    finally:
        source.close()


def pipeline() -> CameraPipeline:
    return CameraPipeline(parse_config(RULES).for_source(URL), None, (320, 180))


def summary(results: list[FrameResult]) -> list[tuple[bool, bool, list[int], list[float]]]:
    return [
        (r.analysed, r.moving, r.tracked.tracker_id.tolist(), r.tracked.xyxy.ravel().tolist())
        for r in results
    ]


def test_prepared_in_another_thread_the_results_are_the_same() -> None:
    plain = pipeline()
    alone = [plain.process(f) for f in frames()]
    assert any(r.moving for r in alone)
    assert not all(r.analysed for r in alone)

    ahead, todo = pipeline(), frames()
    ran_in: set[str] = set()
    update = ahead.gate.update

    def recorded(frame: Frame) -> object:
        ran_in.add(threading.current_thread().name)
        return update(frame)

    ahead.gate.update = recorded  # type: ignore[method-assign,assignment]
    worker = threading.Thread(target=lambda: [ahead.prepare(f) for f in todo], name="ahead")
    worker.start()
    worker.join()
    results = [ahead.process(f) for f in todo]
    assert ran_in == {"ahead"}
    assert summary(results) == summary(alone)
    assert ahead.rules.counts() == plain.rules.counts()
    assert np.array_equal(results[-1].tracked.xyxy, alone[-1].tracked.xyxy)


def test_a_frame_that_was_not_prepared_is_refused() -> None:
    pipe, todo = pipeline(), frames()[:3]
    pipe.prepare(todo[0])
    pipe.process(todo[0])
    with pytest.raises(VigilError, match="prepare"):
        pipe.process(todo[1])


def test_the_gate_runs_ahead_for_frames_up_to_720p_unless_told() -> None:
    """Where decoding is the wall (1080p on this class of CPU: bench/pipeline.py) the gate
    stays in the analysis thread; an explicit choice wins."""
    from pathlib import Path

    from vigil.runtime.analyze import AnalyzeOptions, gate_ahead

    default = AnalyzeOptions(Path("out"))
    assert gate_ahead(default, (768, 432))
    assert gate_ahead(default, (1280, 720))
    assert not gate_ahead(default, (1920, 1080))
    assert gate_ahead(AnalyzeOptions(Path("out"), gate_ahead=True), (1920, 1080))
    assert not gate_ahead(AnalyzeOptions(Path("out"), gate_ahead=False), (768, 432))
