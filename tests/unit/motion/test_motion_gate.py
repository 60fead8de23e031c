"""MotionGate on controlled scenes: static, a moving square, masks, global changes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vigil.config.models import MotionConfig
from vigil.motion import MotionGate, MotionResult
from vigil.types import Frame

W, H = 640, 360


def _scene(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(90, 160, size=(9, 16)).astype(np.float32)
    return np.asarray(cv2.resize(coarse, (W, H), interpolation=cv2.INTER_CUBIC), np.float32)


def _frame(
    base: np.ndarray,
    seq: int,
    square: tuple[int, int] | None = None,
    gain: float = 0.0,
    noise: float = 2.0,
) -> Frame:
    """A BGR frame of the static scene plus noise, with a dark 40x40 square at ``square``."""
    rng = np.random.default_rng(1000 + seq)
    luma = base + gain + rng.normal(0, noise, size=base.shape)
    if square is not None:
        x, y = square
        luma[y : y + 40, x : x + 40] = 20
    gray = np.clip(luma, 0, 255).astype(np.uint8)
    return Frame.from_bgr(np.repeat(gray[:, :, None], 3, axis=2), seq=seq, pts=seq / 10)


def _run(gate: MotionGate, frames: list[Frame]) -> list[MotionResult]:
    return [gate.update(f) for f in frames]


def test_first_frame_initialises_and_static_scene_has_no_motion() -> None:
    base = _scene()
    gate = MotionGate(MotionConfig(), (W, H))
    results = _run(gate, [_frame(base, i) for i in range(30)])
    assert not results[0].has_motion
    assert not results[0].recalibrated
    assert not any(r.has_motion for r in results)
    assert max(r.changed_fraction for r in results) < 0.001


def test_moving_square_gives_a_box_around_it_in_full_frame_pixels() -> None:
    base = _scene()
    gate = MotionGate(MotionConfig(), (W, H))
    for i in range(10):
        gate.update(_frame(base, i))
    for step in range(10):
        x, y = 100 + 12 * step, 150
        result = gate.update(_frame(base, 10 + step, square=(x, y)))
        assert len(result.boxes) == 1, step
        x1, y1, x2, y2 = result.boxes[0]
        # Hugs the square (40x40 at x, y) within the working-resolution rounding (2 px).
        assert abs(x1 - x) <= 4
        assert abs(y1 - y) <= 4
        assert abs(x2 - (x + 40)) <= 4
        assert abs(y2 - (y + 40)) <= 4
        assert 0.5 < result.fill[0] <= 1.0
        assert result.frame_size == (W, H)
        assert not result.recalibrated


def test_moving_object_leaves_no_ghost_once_gone() -> None:
    base = _scene()
    gate = MotionGate(MotionConfig(), (W, H))
    frames = [_frame(base, i) for i in range(5)]
    frames += [_frame(base, 5 + s, square=(50 + 20 * s, 100)) for s in range(20)]
    frames += [_frame(base, 25 + i) for i in range(3)]
    results = _run(gate, frames)
    assert results[-1].has_motion is False


def test_object_that_stops_is_eventually_absorbed() -> None:
    base = _scene()
    gate = MotionGate(MotionConfig(alpha=0.05, moving_alpha=0.05), (W, H))
    results = _run(
        gate, [_frame(base, 0)] + [_frame(base, i, square=(300, 200)) for i in range(1, 120)]
    )
    assert results[1].has_motion
    assert not results[-1].has_motion


def test_mask_suppresses_motion_inside_it() -> None:
    base = _scene()
    mask = [[(0.1, 0.3), (0.5, 0.3), (0.5, 0.8), (0.1, 0.8)]]
    gate = MotionGate(MotionConfig(masks=mask), (W, H))
    open_gate = MotionGate(MotionConfig(), (W, H))
    frames = [_frame(base, 0)] + [_frame(base, 1 + s, square=(100 + 10 * s, 150)) for s in range(5)]
    assert not any(r.has_motion for r in _run(gate, frames))
    assert all(r.has_motion for r in _run(open_gate, frames)[1:])
    # Outside the mask it still sees motion.
    outside = [_frame(base, 0)] + [_frame(base, 1 + s, square=(450, 50 + 10 * s)) for s in range(5)]
    gate.reset()
    assert all(r.has_motion for r in _run(gate, outside)[1:])


@pytest.mark.parametrize("gain", [60.0, -60.0])
def test_global_brightness_jump_recalibrates(gain: float) -> None:
    base = _scene()
    gate = MotionGate(MotionConfig(), (W, H))
    for i in range(5):
        gate.update(_frame(base, i))
    jump = gate.update(_frame(base, 5, gain=gain))
    assert jump.recalibrated
    assert not jump.has_motion
    assert jump.changed_fraction > 0.5
    after = gate.update(_frame(base, 6, gain=gain))
    assert not after.recalibrated
    assert not after.has_motion


def test_small_blobs_below_min_area_are_dropped() -> None:
    base = _scene()
    gate = MotionGate(MotionConfig(min_area=0.05), (W, H))  # 5 % of the frame
    results = _run(gate, [_frame(base, 0), _frame(base, 1, square=(300, 200))])
    assert not results[1].has_motion
    assert results[1].changed_fraction > 0


def test_resolution_change_restarts_the_gate() -> None:
    gate = MotionGate(MotionConfig(), (W, H))
    gate.update(_frame(_scene(), 0))
    small = Frame.from_bgr(np.full((180, 320, 3), 100, np.uint8))
    result = gate.update(small)
    assert result.recalibrated
    assert gate.frame_size == (320, 180)
    assert not gate.update(small).has_motion


def test_frames_narrower_than_the_working_width_are_not_upscaled() -> None:
    gate = MotionGate(MotionConfig(width=320), (160, 90))
    assert gate.small_size == (160, 90)


def test_ghost_of_an_object_that_stood_still_fades() -> None:
    """The documented trade-off: a long stay leaves a ghost, which the default rates absorb."""
    base = _scene()
    gate = MotionGate(MotionConfig(), (W, H))
    stay = [_frame(base, i, square=(300, 200)) for i in range(1, 101)]
    gone = [_frame(base, 101 + i) for i in range(250)]
    results = _run(gate, [_frame(base, 0), *stay, *gone])
    after = results[101:]
    assert after[0].has_motion, "a ghost right after leaving"
    assert not any(r.has_motion for r in after[-50:])
