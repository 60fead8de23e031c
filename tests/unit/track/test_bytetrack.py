"""ByteTracker lifecycle, association stages, class-awareness and time gaps."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from vigil.config.models import EventsConfig, TrackerConfig
from vigil.errors import VigilError
from vigil.track import ByteTracker, Tracker
from vigil.track.kalman import KalmanBoxFilter
from vigil.types import Detections


def dets(*rows: tuple[float, float, float, float, float] | tuple[float, ...]) -> Detections:
    """Rows of ``(x1, y1, x2, y2, score[, class])``."""
    if not rows:
        return Detections.empty()
    arr = np.array([list(r) + [0.0] * (6 - len(r)) for r in rows], dtype=np.float64)
    return Detections(arr[:, :4], arr[:, 4], arr[:, 5].astype(np.int64))


def box(x: float, score: float = 0.9, cls: int = 0, y: float = 100.0) -> tuple[float, ...]:
    return (x, y, x + 40.0, y + 100.0, score, float(cls))


def test_is_a_tracker() -> None:
    assert isinstance(ByteTracker(), Tracker)


def test_birth_after_min_hits_then_steady_id() -> None:
    tracker = ByteTracker(TrackerConfig(min_hits=3))
    # 0.7 is below confirm_score: the track has to earn its id.
    outputs = [tracker.update(dets(box(100 + 2 * i, 0.7)), i * 0.1) for i in range(5)]
    assert [len(o) for o in outputs] == [0, 0, 1, 1, 1]
    assert {int(o.tracker_id[0]) for o in outputs[2:]} == {1}


def test_a_new_tracks_box_score_and_input_order_are_kept() -> None:
    tracker = ByteTracker(TrackerConfig(min_hits=1))
    frame = dets(box(300, 0.8), box(100, 0.95), box(500, 0.7))
    out = tracker.update(frame, 0.0)
    assert np.array_equal(out.xyxy, frame.xyxy)
    assert np.allclose(out.confidence, frame.confidence)
    assert out.tracker_id.tolist() == [1, 2, 3]


def test_a_matched_box_is_reported_as_its_tracks_filtered_box() -> None:
    """A person walks steadily at 50 px/s; one frame's box comes 12 px low (a detector's box
    cut by a neighbour). The track reports its filtered box: on the path where the boxes
    agree, pulled back towards the path where one box strays."""
    tracker = ByteTracker()
    for i in range(10):
        out = tracker.update(dets(box(100 + 5 * i)), i * 0.1)
    assert abs(float(out.xyxy[0, 0]) - 145.0) < 1.0
    assert abs(float(out.xyxy[0, 1]) - 100.0) < 1.0
    stray = tracker.update(dets(box(150, y=112.0)), 1.0)
    assert stray.tracker_id.tolist() == out.tracker_id.tolist()
    y1 = float(stray.xyxy[0, 1])
    assert 100.0 < y1 < 110.0, y1  # the raw box says 112
    assert abs(float(stray.xyxy[0, 0]) - 150.0) < 1.5
    assert np.allclose(stray.confidence, [0.9])
    # What the detector saw stays available (the moving carry repeats only that).
    raw = tracker.detected()
    assert raw.tracker_id.tolist() == stray.tracker_id.tolist()
    assert np.allclose(raw.xyxy, [[150.0, 112.0, 190.0, 212.0]])
    tracker.update(Detections.empty(), 1.1)
    assert len(tracker.detected()) == 0  # unmatched now: nothing detected at this update


def test_survives_short_gap_and_dies_after_lost_seconds() -> None:
    tracker = ByteTracker(TrackerConfig(lost_seconds=1.0))
    for i in range(3):
        (first,) = tracker.update(dets(box(100)), i * 0.1).tracker_id.tolist() or [None]
    assert first == 1
    # 0.8 s without detections: lost, not dead.
    for i in range(3, 11):
        assert len(tracker.update(Detections.empty(), i * 0.1)) == 0
        assert tracker.ended_ids == []
    assert tracker.predicted().tracker_id.tolist() == [1]
    assert tracker.update(dets(box(100)), 1.1).tracker_id.tolist() == [1]
    # Now silent for longer than lost_seconds: ended exactly once.
    ended: list[int] = []
    for i in range(12, 30):
        tracker.update(Detections.empty(), i * 0.1)
        ended += tracker.ended_ids
    assert ended == [1]
    assert len(tracker.predicted()) == 0
    tracker.update(dets(box(100)), 3.0)
    assert tracker.update(dets(box(100)), 3.1).tracker_id.tolist() == [2]


def test_death_is_measured_in_time_not_calls() -> None:
    tracker = ByteTracker(TrackerConfig(lost_seconds=1.0))
    tracker.update(dets(box(100)), 0.0)
    tracker.update(dets(box(100)), 0.1)
    tracker.update(Detections.empty(), 1.05)  # one call, 0.95 s: still alive
    assert tracker.ended_ids == []
    tracker.update(Detections.empty(), 1.2)  # second call, 1.1 s: dead
    assert tracker.ended_ids == [1]


def test_ids_belong_to_the_instance() -> None:
    a, b = ByteTracker(TrackerConfig(min_hits=1)), ByteTracker(TrackerConfig(min_hits=1))
    assert a.update(dets(box(100)), 0.0).tracker_id.tolist() == [1]
    assert b.update(dets(box(300)), 0.0).tracker_id.tolist() == [1]
    assert a.update(dets(box(100), box(400)), 0.1).tracker_id.tolist() == [1, 2]
    a.reset()
    assert a.update(dets(box(400)), 0.0).tracker_id.tolist() == [1]


def test_low_score_boxes_keep_tracks_alive_but_never_start_them() -> None:
    cfg = TrackerConfig(high_threshold=0.5, low_threshold=0.1, new_track_threshold=0.6)
    tracker = ByteTracker(cfg)
    tracker.update(dets(box(100)), 0.0)
    tracker.update(dets(box(102)), 0.1)
    # Occluded: only a low-score box where the person is, plus a low-score stray elsewhere.
    out = tracker.update(dets(box(104, 0.3), box(400, 0.3)), 0.2)
    assert out.tracker_id.tolist() == [1]
    assert out.confidence.tolist() == pytest.approx([0.3])
    for i in range(3, 6):
        out = tracker.update(dets(box(400, 0.3)), i * 0.1)
        assert out.tracker_id.size == 0  # the stray never became a track
    # Below low_threshold a box is ignored entirely.
    tracker2 = ByteTracker(cfg)
    tracker2.update(dets(box(100)), 0.0)
    tracker2.update(dets(box(100)), 0.1)
    assert len(tracker2.update(dets(box(100, 0.05)), 0.2)) == 0


def test_association_is_class_aware() -> None:
    tracker = ByteTracker()
    tracker.update(dets(box(100, cls=0)), 0.0)
    assert tracker.update(dets(box(100, cls=0)), 0.1).tracker_id.tolist() == [1]
    # Same place, other class: never continues the person's track.
    assert len(tracker.update(dets(box(100, 0.7, cls=2)), 0.2)) == 0
    out = tracker.update(dets(box(100, 0.7, cls=2)), 0.3)
    assert out.tracker_id.tolist() == [2]
    assert out.class_id.tolist() == [2]


@pytest.mark.parametrize("gap_frames", [1, 3, 5])
def test_constant_velocity_object_keeps_id_across_skipped_frames(gap_frames: int) -> None:
    """8 px/frame at 25 fps; after the gap the box no longer overlaps its last position."""
    tracker = ByteTracker(frame_rate=25.0)
    ids = []
    frames = [*range(10), *range(10 + gap_frames, 20 + gap_frames)]
    for f in frames:
        out = tracker.update(dets(box(50.0 + 8.0 * f)), f / 25.0)
        ids += out.tracker_id.tolist()
    assert set(ids) == {1}
    assert len(ids) == len(frames) - 1  # all but the first, which waits for its second hit


def test_variable_gaps_without_frame_rate() -> None:
    rng = np.random.default_rng(7)
    times = np.cumsum(rng.choice([0.04, 0.08, 0.2, 0.36], size=40))
    tracker = ByteTracker()
    ids: set[int] = set()
    for t in times:
        x = 50.0 + 120.0 * t + rng.normal(0.0, 1.0)  # 120 px/s
        ids |= set(tracker.update(dets(box(x)), float(t)).tracker_id.tolist())
    assert ids == {1}


def test_crossing_objects_keep_their_ids() -> None:
    tracker = ByteTracker(frame_rate=25.0)
    history: dict[int, list[float]] = {}
    for f in range(40):
        a, b = 50.0 + 10.0 * f, 450.0 - 10.0 * f
        frame = dets(box(a, 0.9, y=100.0), box(b, 0.8, y=112.0))
        out = tracker.update(frame, f / 25.0)
        for tid, xy in zip(out.tracker_id.tolist(), out.xyxy.tolist(), strict=True):
            history.setdefault(tid, []).append(xy[0])
    assert set(history) == {1, 2}
    assert np.all(np.diff(history[1]) > 0)  # id 1 always moves right
    assert np.all(np.diff(history[2]) < 0)


def test_predicted_lists_confirmed_live_tracks() -> None:
    tracker = ByteTracker(TrackerConfig(min_hits=2, confirm_score=1.0))
    tracker.update(dets(box(100), box(300)), 0.0)
    assert len(tracker.predicted()) == 0  # tentative tracks are not live yet
    tracker.update(dets(box(100), box(300)), 0.1)
    tracker.update(dets(box(100)), 0.2)  # 300 is lost now
    pred = tracker.predicted()
    assert sorted(pred.tracker_id.tolist()) == [1, 2]
    assert pred.xyxy.dtype == np.float32


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_time_is_refused(bad: float) -> None:
    with pytest.raises(VigilError, match="finite"):
        ByteTracker().update(Detections.empty(), bad)


def test_clock_stepping_back_keeps_tracks() -> None:
    tracker = ByteTracker()
    tracker.update(dets(box(100)), 100.0)
    tracker.update(dets(box(100)), 100.1)
    assert tracker.update(dets(box(100)), 50.0).tracker_id.tolist() == [1]
    assert tracker.update(dets(box(100)), 50.1).tracker_id.tolist() == [1]


def test_bad_frame_rate_is_refused() -> None:
    with pytest.raises(VigilError, match="frame_rate"):
        ByteTracker(frame_rate=0.0)


class CountingKalman(KalmanBoxFilter):
    """The real filter, counting its update calls."""

    def __init__(self) -> None:
        super().__init__()
        self.updates = 0

    def update(self, mean: Any, cov: Any, measurement: Any) -> Any:
        self.updates += 1
        return super().update(mean, cov, measurement)


def test_a_burst_of_two_frames_does_not_shrink_the_nominal_interval() -> None:
    """5 fps with one pair of frames 1 ms apart (RTSP delivers bursts): the following ordinary
    0.2 s gaps are plain steps, not replays of up to 30 Kalman steps each (it did, and cost a
    server most of its CPU)."""
    kalman = CountingKalman()
    tracker = ByteTracker(frame_rate=5.0, kalman=kalman)
    times = [0.0, 0.2, 0.201, *(0.401 + 0.2 * i for i in range(10))]
    ids: set[int] = set()
    per_frame = []
    for t in times:
        before = kalman.updates
        ids |= set(tracker.update(dets(box(50.0 + 40.0 * t)), t).tracker_id.tolist())
        per_frame.append(kalman.updates - before)
    assert ids == {1}
    assert max(per_frame[3:]) <= 2, per_frame  # one normal update per association stage


def test_a_confident_first_detection_is_confirmed_at_once() -> None:
    tracker = ByteTracker(TrackerConfig(min_hits=2, confirm_score=0.8))
    out = tracker.update(dets(box(100, 0.85), box(300, 0.7)), 0.0)
    assert out.tracker_id.tolist() == [1]  # 0.7 waits for its second hit
    out = tracker.update(dets(box(100, 0.85), box(300, 0.7)), 0.1)
    assert out.tracker_id.tolist() == [1, 2]


def test_by_default_a_track_waits_for_min_hits_whatever_its_score() -> None:
    """Real detectors' recurring false boxes score as high as people (docs/tracking.md)."""
    tracker = ByteTracker()
    assert len(tracker.update(dets(box(100, 0.99)), 0.0)) == 0
    assert tracker.update(dets(box(100, 0.99)), 0.1).tracker_id.tolist() == [1]


def test_a_tentative_track_cannot_take_a_confirmed_tracks_box() -> None:
    """A false box beside a tracked person starts a tentative track. When one box comes next,
    overlapping the newcomer more than the person, the person's track takes it: in one joint
    assignment the newcomer would, and be confirmed with a new id (an identity switch)."""
    tracker = ByteTracker(TrackerConfig(min_hits=2))
    for i in range(3):
        tracker.update(dets(box(100)), i * 0.1)
    out = tracker.update(dets(box(100), box(116)), 0.3)  # 116 starts a tentative track
    assert out.tracker_id.tolist() == [1]
    out = tracker.update(dets(box(112)), 0.4)  # IoU 0.54 with the person, 0.82 with 116
    assert out.tracker_id.tolist() == [1]


def test_a_lost_track_cannot_take_the_box_of_a_track_seen_a_moment_ago() -> None:
    """Two people side by side (boxes at x 100 and 110); the one at 110 is hidden for three
    frames, its lost track parked where it was. The visible person's next box (at 108)
    overlaps the parked box more (IoU 0.92) than its own track's (0.72): tracks seen at the
    previous update are matched first, so it stays with its own track."""
    tracker = ByteTracker(TrackerConfig(min_hits=2), frame_rate=10.0)
    for i in range(4):
        out = tracker.update(dets(box(100), box(110)), i * 0.1)
    visible, hidden = out.tracker_id.tolist()
    for i in range(4, 7):
        assert tracker.update(dets(box(100)), i * 0.1).tracker_id.tolist() == [visible]
    assert tracker.update(dets(box(108)), 0.7).tracker_id.tolist() == [visible]
    # The hidden person comes back beside it and takes up their own, lost track again.
    out = tracker.update(dets(box(108), box(118)), 0.8)
    assert out.tracker_id.tolist() == [visible, hidden]


def test_a_person_seen_only_with_low_scores_becomes_a_track() -> None:
    """Half hidden from the start (0.45: below high_threshold, above new_track_threshold): the
    box starts a tentative track, which the low stage carries to confirmation."""
    cfg = TrackerConfig(high_threshold=0.5, new_track_threshold=0.4, min_hits=2)
    tracker = ByteTracker(cfg)
    ids: list[int] = []
    for i in range(4):
        ids += tracker.update(dets(box(100 + 3 * i, 0.45)), i * 0.1).tracker_id.tolist()
    assert ids == [1, 1, 1]


def test_refind_stage_keeps_a_small_jittery_box_on_its_track() -> None:
    """A far, narrow person (20x50 px) re-detected 12 px off after a miss: IoU 0.25 fails every
    IoU stage, but the centre lies 0.24 box heights away, inside refind_distance."""

    def small(x: float) -> tuple[float, ...]:
        return (x, 100.0, x + 20.0, 150.0, 0.9, 0.0)

    def run(refind_distance: float) -> list[int]:
        tracker = ByteTracker(TrackerConfig(refind_distance=refind_distance), frame_rate=10.0)
        for i in range(5):
            tracker.update(dets(small(100)), i * 0.1)
        tracker.update(Detections.empty(), 0.5)
        ids = tracker.update(dets(small(112)), 0.6).tracker_id.tolist()
        return ids + tracker.update(dets(small(112)), 0.7).tracker_id.tolist()

    assert run(0.3) == [1, 1]
    assert run(0.0) == [2]  # without the stage: a new identity (after its second hit)


def test_a_coasting_track_slows_down() -> None:
    """80 px/s, then unseen for 2 s: the prediction drifts about v·coast_seconds (80 px), not
    v·2 s (160 px), so the person is still near where they were last seen."""
    start = 100.0

    def drift(coast_seconds: float) -> float:
        config = TrackerConfig(coast_seconds=coast_seconds, lost_seconds=5.0)
        tracker = ByteTracker(config, frame_rate=10.0)
        for i in range(20):
            tracker.update(dets(box(start + 8.0 * i)), i * 0.1)
        for i in range(20, 40):
            tracker.update(Detections.empty(), i * 0.1)
        ((x1, *_),) = tracker.predicted().xyxy.tolist()
        return x1 - (start + 8.0 * 19)

    assert 60.0 < drift(1.0) < 90.0
    assert drift(60.0) > 140.0


def test_default_lost_tracks_end_before_their_events_close() -> None:
    """An event closes `events.debounce` after its object was last seen; the object's EXIT
    (with its visit's speed and heading) comes when the tracker ends the track, so a lost
    track must end first (with lost_seconds 2.5 the red car's EXIT measures were lost)."""
    assert TrackerConfig().lost_seconds < EventsConfig().debounce
