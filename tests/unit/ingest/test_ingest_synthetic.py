"""SyntheticSource: determinism, ground truth, the default scene's documented crossings."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from vigil.errors import SourceError
from vigil.ingest import SyntheticObject, SyntheticSource, default_scene, open_source
from vigil.ingest.synthetic import (
    DEFAULT_DOWN_CROSSINGS,
    DEFAULT_LINE_Y,
    DEFAULT_UP_CROSSINGS,
)


def test_frames_are_deterministic_for_a_seed() -> None:
    a = [f.bgr() for f in SyntheticSource(duration=1.0, seed=3).frames()]
    b = [f.bgr() for f in SyntheticSource(duration=1.0, seed=3).frames()]
    c = next(SyntheticSource(duration=1.0, seed=4).frames()).bgr()
    assert len(a) == len(b) == 10
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0], c)


def test_frame_timing_and_info() -> None:
    source = SyntheticSource("cam9", width=320, height=240, fps=4, duration=2.5)
    info = source.open()
    assert (info.width, info.height, info.fps, info.frame_count, info.live) == (
        320,
        240,
        4.0,
        10,
        False,
    )
    frames = list(source.frames())
    assert [f.seq for f in frames] == list(range(10))
    assert [f.pts for f in frames] == [i / 4 for i in range(10)]
    assert {f.camera_id for f in frames} == {"cam9"}
    assert frames[0].luma.shape == (240, 320)
    assert frames[-1].wall_time - frames[0].wall_time == pytest.approx(9 / 4)


def test_background_has_noise_but_is_static() -> None:
    frames = list(SyntheticSource(duration=1.0, objects=[]).frames())
    lumas = np.stack([f.luma.astype(np.int16) for f in frames])
    spread = lumas.max(axis=0) - lumas.min(axis=0)
    assert 0 < float(np.mean(spread)) < 12


def test_ground_truth_matches_rendered_pixels() -> None:
    obj = SyntheticObject(
        start=(0.25, 0.5), end=(0.75, 0.5), t0=0.0, t1=2.0, size=(40, 60), color=(255, 255, 255)
    )
    source = SyntheticSource(width=400, height=200, fps=10, duration=2.0, objects=[obj], noise=0)
    assert source.ground_truth_boxes(1.0) == [("person", (180.0, 70.0, 220.0, 130.0))]
    empty = SyntheticSource(width=400, height=200, fps=10, duration=2.0, objects=[], noise=0)
    changed = np.any(source.render(10) != empty.render(10), axis=2)  # t = 1.0
    ys, xs = np.nonzero(changed)
    assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (180, 70, 220, 130)
    assert source.ground_truth_boxes(2.5) == []


def test_ground_truth_is_clipped_to_the_frame() -> None:
    obj = SyntheticObject(start=(0.0, 0.0), end=(1.0, 1.0), t0=0, t1=1, size=(20, 20), label="car")
    source = SyntheticSource(width=100, height=100, duration=1, objects=[obj])
    assert source.ground_truth_boxes(0.0) == [("car", (0.0, 0.0, 10.0, 10.0))]


@pytest.mark.parametrize("duration", [10.0, 20.0, 60.0])
def test_default_scene_crossings(duration: float) -> None:
    objects = default_scene(duration)
    down = sum(o.start[1] < DEFAULT_LINE_Y < o.end[1] for o in objects)
    up = sum(o.end[1] < DEFAULT_LINE_Y < o.start[1] for o in objects)
    assert (down, up) == (DEFAULT_DOWN_CROSSINGS, DEFAULT_UP_CROSSINGS) == (3, 2)
    spans = sorted((o.t0, o.t1) for o in objects)
    assert all(a[1] < b[0] for a, b in itertools.pairwise(spans)), "must not overlap"
    assert spans[0][0] >= 0
    assert spans[-1][1] <= duration


def test_default_scene_shows_one_object_at_a_time() -> None:
    source = SyntheticSource(duration=20)
    visible = [len(source.ground_truth_boxes(i / 10)) for i in range(200)]
    assert max(visible) == 1
    assert sum(visible) > 150


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("synthetic://", (640, 360, 10.0, 200)),
        ("synthetic://?width=320&height=180&fps=5&duration=4", (320, 180, 5.0, 20)),
        ("synthetic://?fps=12.5&duration=2", (640, 360, 12.5, 25)),
    ],
)
def test_synthetic_url(url: str, expected: tuple[int, int, float, int]) -> None:
    info = open_source(url, "demo").open()
    assert (info.width, info.height, info.fps, info.frame_count) == expected
    assert info.url.startswith("synthetic://")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("synthetic://?colour=red", "unknown parameter 'colour'"),
        ("synthetic://?fps=fast", "fps='fast' is not a valid float"),
        ("synthetic://?width=8", "width, height >= 16"),
    ],
)
def test_bad_synthetic_url(url: str, message: str) -> None:
    with pytest.raises(SourceError, match=message):
        open_source(url)


def test_object_validation() -> None:
    with pytest.raises(ValueError, match="t1 > t0"):
        SyntheticObject(start=(0, 0), end=(1, 1), t0=2, t1=1, size=(5, 5))
    with pytest.raises(ValueError, match="positive size"):
        SyntheticObject(start=(0, 0), end=(1, 1), t0=0, t1=1, size=(0, 5))
