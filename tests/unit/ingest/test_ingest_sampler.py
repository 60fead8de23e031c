"""FrameSampler: which frames are analysed at the detect rate."""

from __future__ import annotations

import random

import numpy as np
import pytest

from vigil.ingest import FrameSampler
from vigil.types import Frame


def _taken(sampler: FrameSampler, pts: list[float]) -> list[int]:
    return [i for i, t in enumerate(pts) if sampler.take_pts(t)]


@pytest.mark.parametrize(
    ("source_fps", "detect_fps", "first_taken"),
    [
        (25, 5, [0, 5, 10, 15, 20, 25]),
        (10, 5, [0, 2, 4, 6, 8, 10]),
        (30, 10, [0, 3, 6, 9, 12, 15]),
        (12.5, 5, [0, 2, 5, 7, 10, 12]),
        (10, 10, [0, 1, 2, 3, 4, 5]),
        (5, 10, [0, 1, 2, 3, 4, 5]),  # source slower than detect: every frame
        (1, 5, [0, 1, 2, 3, 4, 5]),
    ],
)
def test_regular_pts(source_fps: float, detect_fps: float, first_taken: list[int]) -> None:
    pts = [i / source_fps for i in range(int(source_fps * 60))]
    taken = _taken(FrameSampler(detect_fps), pts)
    assert taken[: len(first_taken)] == first_taken
    expected = len(pts) * min(1.0, detect_fps / source_fps)
    assert abs(len(taken) - expected) <= 1


@pytest.mark.parametrize(("source_fps", "detect_fps"), [(25, 5), (30, 7), (15, 5), (10, 3)])
def test_jittery_pts_keep_rate_and_spacing(source_fps: float, detect_fps: float) -> None:
    rng = random.Random(3)
    dt = 1 / source_fps
    pts = [i * dt + rng.uniform(-0.25, 0.25) * dt for i in range(int(source_fps * 120))]
    taken = _taken(FrameSampler(detect_fps), pts)
    rate = len(taken) / 120
    assert rate == pytest.approx(detect_fps, rel=0.02)
    gaps = np.diff(taken)
    ideal = source_fps / detect_fps
    assert gaps.min() >= int(ideal) - 1
    assert gaps.max() <= int(ideal) + 2


def test_gap_in_stream_does_not_cause_a_burst() -> None:
    sampler = FrameSampler(5)
    pts = [i * 0.04 for i in range(50)] + [10 + i * 0.04 for i in range(50)]
    taken = _taken(sampler, pts)
    after_gap = [i for i in taken if i >= 50]
    assert after_gap[:3] == [50, 55, 60]


def test_backwards_pts_restart_the_grid() -> None:
    sampler = FrameSampler(5)
    pts = [i * 0.04 for i in range(30)] + [i * 0.04 for i in range(30)]
    taken = _taken(sampler, pts)
    assert 30 in taken
    assert [i - 30 for i in taken if i >= 30] == [i for i in taken if i < 30]


def test_take_uses_frame_pts() -> None:
    sampler = FrameSampler(5)
    image = np.zeros((8, 8, 3), np.uint8)
    frames = [Frame.from_bgr(image, seq=i, pts=i / 25) for i in range(11)]
    assert [f.seq for f in frames if sampler.take(f)] == [0, 5, 10]


def test_rejects_nonpositive_fps() -> None:
    with pytest.raises(ValueError, match="fps > 0"):
        FrameSampler(0)


@pytest.mark.parametrize(("source_fps", "detect_fps"), [(10, 5), (25, 5), (30, 10), (12.5, 5)])
def test_needed_is_false_only_for_frames_the_sampler_drops(
    source_fps: float, detect_fps: float
) -> None:
    """A source that asks ``needed`` before decoding each frame never loses a taken one."""
    sampler = FrameSampler(detect_fps)
    pts = [i / source_fps for i in range(200)]
    skipped = 0
    for t in pts:
        needed = sampler.needed(t, 1.0 / source_fps)
        taken = sampler.take_pts(t)
        assert needed or not taken, f"pts {t}: would have been left undecoded but was taken"
        skipped += not needed
    # And it does say "not needed" for most dropped frames (else it would be pointless).
    dropped = len(pts) - len(_taken(FrameSampler(detect_fps), pts))
    assert skipped >= 0.6 * dropped


def test_needed_before_the_grid_and_when_every_frame_is_taken() -> None:
    sampler = FrameSampler(5.0)
    assert sampler.needed(0.1, 0.1)  # no grid yet
    sampler.take_pts(0.0)
    assert not sampler.needed(0.1, 0.1)
    assert sampler.needed(0.2, 0.1)
    slow = FrameSampler(10.0)
    slow.take_pts(0.0)
    assert all(slow.needed(i / 8, 1 / 8) for i in range(1, 20))  # 8 fps source at 10 fps
