"""MovingCarry: when moving tracks may go through a frame without the detector, and how far."""

from __future__ import annotations

import numpy as np
import pytest

from vigil.runtime.carry import MovingCarry
from vigil.types import Detections

NO_MOTION = np.zeros((0, 4), np.float32)


def tracked(*rows: tuple[int, tuple[float, float, float, float]]) -> Detections:
    return Detections(
        np.array([box for _, box in rows], np.float32).reshape(-1, 4),
        np.full(len(rows), 0.8, np.float32),
        np.zeros(len(rows), np.int64),
        np.array([tid for tid, _ in rows], np.int64),
    )


def walking(max_frames: int = 2) -> MovingCarry:
    """Track 1 seen at t=0 and t=0.2, walking right at 100 px/s (20 px per frame)."""
    carry = MovingCarry(max_frames)
    for t, x in ((0.0, 100.0), (0.2, 120.0)):
        carry.looked(NO_MOTION, tracked((1, (x, 100.0, x + 60, 300.0))))
        carry.observe(tracked((1, (x, 100.0, x + 60, 300.0))), t, [])
    return carry


def motion_at(x: float) -> np.ndarray:
    return np.array([[x + 5, 120.0, x + 55, 290.0]], np.float32)


def test_a_walking_track_is_carried_where_it_was_last_seen() -> None:
    carried = walking().carry(0.4, motion_at(140.0), [1])
    assert carried is not None
    # Not extrapolated: a carried box only repeats a position the detector saw.
    np.testing.assert_allclose(carried.xyxy[0], (120.0, 100.0, 180.0, 300.0))
    assert carried.confidence[0] == pytest.approx(0.8)
    assert carried.tracker_id[0] == -1  # a detection for the tracker, not a track


@pytest.mark.parametrize("bound", [1, 2, 3])
def test_never_more_frames_in_a_row_than_the_bound(bound: int) -> None:
    carry = walking(bound)
    t, x, carried = 0.2, 120.0, 0
    for _ in range(bound + 3):
        t, x = t + 0.2, x + 2.0  # a slow walk: the motion stays inside the carried box
        out = carry.carry(t, motion_at(x), [1])
        if out is None:
            break
        carried += 1
        carry.observe(tracked((1, tuple(out.xyxy[0]))), t, [])  # type: ignore[arg-type]
    assert carried == bound
    assert carry.in_row == bound
    # The detector looks: carrying may start again.
    carry.looked(motion_at(x), tracked((1, (x, 100.0, x + 60, 300.0))))
    carry.observe(tracked((1, (x, 100.0, x + 60, 300.0))), t, [])
    assert carry.in_row == 0
    assert carry.carry(t + 0.2, motion_at(x + 20), [1]) is not None


@pytest.mark.parametrize(
    ("motion", "live", "others", "why"),
    [
        ([[500, 100, 560, 300]], [1], False, "motion outside every box: something new"),
        ([[120, 120, 400, 290]], [1], False, "motion well beyond the box"),
        (NO_MOTION, [1], True, "a lost or tentative track the detector must see"),
        (NO_MOTION, [1, 2], False, "a track the last frame did not see"),
        (NO_MOTION, [], False, "no track and no known-empty motion"),
    ],
)
def test_the_detector_must_run(motion: object, live: list[int], others: bool, why: str) -> None:
    boxes = np.asarray(motion, np.float32).reshape(-1, 4)
    assert walking().carry(0.4, boxes, live, others=others) is None, why


def test_a_stale_track_is_not_carried() -> None:
    carry = walking()
    carry.observe(Detections.empty(), 0.4, [])  # the detector did not see it at 0.4
    assert carry.carry(0.6, NO_MOTION, [1]) is None


def test_motion_the_detector_found_empty_is_carried_as_empty() -> None:
    carry = MovingCarry(2)
    ghost = np.array([[300.0, 200.0, 360.0, 320.0]], np.float32)
    carry.looked(ghost, Detections.empty())
    carry.observe(Detections.empty(), 0.0, [])
    out = carry.carry(0.2, ghost + 2.0, [])
    assert out is not None
    assert len(out) == 0
    # Motion somewhere else is not known to be empty.
    assert carry.carry(0.4, ghost + 200.0, []) is None


def test_motion_where_something_was_found_is_not_known_empty() -> None:
    carry = MovingCarry(2)
    person = np.array([[300.0, 200.0, 360.0, 320.0]], np.float32)
    found = Detections(person.copy(), np.array([0.9], np.float32), np.zeros(1, np.int64))
    carry.looked(person, found)
    carry.observe(Detections.empty(), 0.0, [])  # not confirmed yet: no track
    assert carry.carry(0.2, person, []) is None


def test_zero_switches_it_off_and_ended_tracks_are_forgotten() -> None:
    assert walking(0).carry(0.4, motion_at(140.0), [1]) is None
    carry = walking()
    carry.observe(Detections.empty(), 0.4, [1])
    assert len(carry) == 0
    with pytest.raises(ValueError, match="max_frames"):
        MovingCarry(-1)
