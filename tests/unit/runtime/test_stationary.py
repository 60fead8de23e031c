"""StationaryTracks: when the detector may be skipped, and what is carried instead."""

from __future__ import annotations

import numpy as np
import pytest

from vigil.runtime.stationary import StationaryTracks
from vigil.types import Detections

BOX = (100.0, 50.0, 160.0, 200.0)


def tracked(*rows: tuple[int, tuple[float, float, float, float]]) -> Detections:
    return Detections(
        np.array([box for _, box in rows], np.float32).reshape(-1, 4),
        np.full(len(rows), 0.8, np.float32),
        np.zeros(len(rows), np.int64),
        np.array([tid for tid, _ in rows], np.int64),
    )


def settled(seconds: float = 4.0, box: tuple[float, ...] = BOX) -> StationaryTracks:
    st = StationaryTracks(stationary_seconds=3.0, recheck_seconds=2.0)
    for i in range(int(seconds * 5) + 1):
        t = i / 5
        st.observe(tracked((1, box)), t, [])  # type: ignore[arg-type]
        st.looked(t)
    return st


NO_MOTION = np.zeros((0, 4), np.float32)


def test_a_still_track_is_carried_with_its_box() -> None:
    st = settled()
    carried = st.carry(4.2, NO_MOTION, [1])
    assert carried is not None
    np.testing.assert_allclose(carried.xyxy[0], BOX)
    assert carried.confidence[0] == pytest.approx(0.8)


@pytest.mark.parametrize(
    ("time", "motion", "live", "why"),
    [
        (4.2, [[400, 300, 450, 380]], [1], "motion elsewhere"),
        (4.2, [[90, 40, 300, 210]], [1], "motion well beyond the box"),
        (4.2, NO_MOTION, [1, 2], "another live track"),
        (6.1, NO_MOTION, [1], "recheck interval over"),
        (4.2, NO_MOTION, [], "no live track"),
    ],
)
def test_the_detector_must_run(time: float, motion: object, live: list[int], why: str) -> None:
    st = settled()
    assert st.carry(time, np.asarray(motion, np.float32).reshape(-1, 4), live) is None, why


def test_fidgeting_inside_the_box_still_skips() -> None:
    st = settled()
    hands = np.array([[95, 100, 170, 140]], np.float32)  # just beyond the box, within margin
    assert st.carry(4.2, hands, [1]) is not None


def test_not_yet_settled_long_enough() -> None:
    assert settled(seconds=2.0).carry(2.2, NO_MOTION, [1]) is None


def test_a_moving_track_resets_its_clock() -> None:
    st = settled()
    st.observe(tracked((1, (140.0, 50.0, 200.0, 200.0))), 4.2, [])
    st.looked(4.2)
    assert st.carry(4.4, NO_MOTION, [1]) is None


def test_state_is_forgotten_when_tracks_end() -> None:
    st = settled()
    st.observe(Detections.empty(), 4.4, [1])
    assert len(st) == 0


def test_zero_seconds_switches_it_off() -> None:
    st = StationaryTracks(stationary_seconds=0.0, recheck_seconds=2.0)
    st.observe(tracked((1, BOX)), 0.0, [])
    assert st.carry(10.0, NO_MOTION, [1]) is None
