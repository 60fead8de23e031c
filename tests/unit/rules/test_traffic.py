"""Zone traffic rules on synthetic tracks with known speed and heading.

Ground truth comes from a pinhole camera independent of the code under test: a camera 8 m
above a flat road, pitched down 20°, focal length 900 px, 1280×720. Vehicles are points
moving at constant ground velocity; their boxes' bottom centres are the projections, with
Gaussian box jitter added to every edge. The zone is a 4 m × 30 m rectangle on the road,
centred on the image's middle column, so "up the screen at the zone's centre" is the road's
forward direction (+Y) and true headings are ``atan2(vX, vY)`` (0 = away, 90 = right).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator

import numpy as np
import pytest
from pydantic import ValidationError

from vigil.config.models import EventsConfig, ZoneConfig
from vigil.errors import ConfigError
from vigil.events.lifecycle import EventManager
from vigil.events.sinks import event_to_dict
from vigil.rules.engine import RuleEngine
from vigil.rules.heading import angle_between, heading_of
from vigil.rules.speed import GroundPlane, MotionWindow
from vigil.rules.zone import ZoneRule
from vigil.types import Detections, EventState, Frame, RuleEvent, RuleEventKind

FRAME = (1280, 720)
NAMES = ["person", "bicycle", "car", "motorcycle", "bus", "truck"]
CAR = 2
F, CX, CY, HEIGHT, PITCH = 900.0, 640.0, 360.0, 8.0, math.radians(20.0)
#: The lane: X from -2 to 2 m, Y (distance along the road) from 12 to 42 m.
LANE = [(-2.0, 42.0), (2.0, 42.0), (2.0, 12.0), (-2.0, 12.0)]  # far left, far right, near ...
SIDES = (4.0, 30.0, 4.0, 30.0)


def project(x: float, y: float) -> tuple[float, float]:
    """Ground point (X right, Y forward, metres) → image pixel of the pitched pinhole camera."""
    # Camera frame: x right, y down, z forward; the camera is pitched down by PITCH.
    yc = HEIGHT * math.cos(PITCH) - y * math.sin(PITCH)
    zc = HEIGHT * math.sin(PITCH) + y * math.cos(PITCH)
    return CX + F * x / zc, CY + F * yc / zc


def zone_config(**kw: object) -> ZoneConfig:
    polygon = [(u / FRAME[0], v / FRAME[1]) for u, v in (project(*p) for p in LANE)]
    return ZoneConfig(polygon=polygon, labels=["car"], **kw)  # type: ignore[arg-type]


CALIBRATION = {"distances": SIDES}


def box(u: float, v: float, rng: np.random.Generator, jitter: float) -> list[float]:
    """A car-sized box with its bottom centre at (u, v), every edge jittered."""
    w, h = 60.0, 40.0
    edges = np.array([u - w / 2, v - h, u + w / 2, v]) + rng.normal(0.0, jitter, 4)
    return [float(e) for e in edges]


def drive(
    start: tuple[float, float],
    velocity: tuple[float, float],
    times: np.ndarray,
    *,
    jitter: float = 1.0,
    seed: int = 1,
    track: int = 7,
) -> Iterator[tuple[float, Detections]]:
    """Frames of one car moving at a constant ground velocity (m/s)."""
    rng = np.random.default_rng(seed)
    for t in times:
        x, y = start[0] + velocity[0] * t, start[1] + velocity[1] * t
        det = Detections(
            np.array([box(*project(x, y), rng, jitter)], np.float32),
            np.array([0.9], np.float32),
            np.array([CAR], np.int64),
            np.array([track], np.int64),
        )
        yield float(t), det


def run(rule: ZoneRule, frames: Iterator[tuple[float, Detections]]) -> list[RuleEvent]:
    events: list[RuleEvent] = []
    for t, det in frames:
        events += rule.update(det, t, "cam")
    return events


def true_heading(vx: float, vy: float) -> float:
    return math.degrees(math.atan2(vx, vy)) % 360.0


def test_ground_plane_reproduces_true_distances() -> None:
    rule = ZoneRule("road", zone_config(calibration=CALIBRATION), FRAME, NAMES)
    ground = rule.traffic.ground
    assert ground is not None
    pts = [(-1.0, 15.0), (1.5, 20.0), (0.0, 39.0), (-1.9, 30.0)]
    mapped = ground.to_ground([project(*p) for p in pts])
    for i in range(len(pts)):
        for j in range(i + 1, len(pts)):
            truth = math.dist(pts[i], pts[j])
            assert math.dist(mapped[i], mapped[j]) == pytest.approx(truth, rel=1e-3)
    # Upright: the road's forward direction (+Y) is "up", heading 0; +X is 90.
    a, b, c = ground.to_ground([project(0, 20), project(0, 30), project(1, 20)])
    assert heading_of(*(b - a)) == pytest.approx(0.0, abs=0.1)
    assert heading_of(*(c - a)) == pytest.approx(90.0, abs=0.1)


@pytest.mark.parametrize(
    ("start", "velocity", "smoothing"),
    [
        ((0.5, 12.5), (0.0, 50 / 3.6), 1.0),  # 50 km/h away from the camera
        ((-1.8, 14.0), (0.3, 80 / 3.6), 1.0),  # 80 km/h, drifting right across the lane
        # 30 km/h towards it from 42 m away, where one pixel is 25 cm of road: a 1 s fit of
        # 1 px jitter is only good to ~3 % (1 sigma) there, so this case smooths over 2 s.
        ((-0.5, 41.5), (0.0, -30 / 3.6), 2.0),
    ],
)
def test_speed_and_heading_of_a_constant_velocity_car(
    start: tuple[float, float], velocity: tuple[float, float], smoothing: float
) -> None:
    """Over 20 jitter draws: 95 % of smoothed speeds within 3 % of the truth, every heading
    within 5°, and each visit's mean speed within 1 %, its overall heading within 2°."""
    truth_kmh = math.hypot(*velocity) * 3.6
    truth_heading = true_heading(*velocity)
    times = np.arange(0.0, 30.0 / math.hypot(*velocity), 0.1)  # 10 fps through the lane
    errors, headings = [], []
    for seed in range(20):
        rule = ZoneRule("road", zone_config(calibration=CALIBRATION, smoothing=smoothing),
                        FRAME, NAMES)  # fmt: skip
        events: list[RuleEvent] = []
        fits = 0
        for t, det in drive(start, velocity, times, seed=seed):
            events += rule.update(det, t, "cam")
            now = dict(rule.traffic.current(7))
            if "speed_kmh" in now:
                fits += 1
                errors.append(abs(now["speed_kmh"] - truth_kmh) / truth_kmh)
                headings.append(angle_between(now["heading"], truth_heading))
        assert fits > 5
        (exit_,) = [e for e in events + rule.forget([7]) if e.kind is RuleEventKind.EXIT]
        summary = dict(exit_.measures)
        assert summary["speed_kmh"] == pytest.approx(truth_kmh, rel=0.01)
        assert summary["max_speed_kmh"] >= summary["speed_kmh"]
        assert angle_between(summary["heading"], truth_heading) <= 2.0
        counts = rule.counts()["speed"]
        assert counts["unit"] == "km/h"
        assert counts["tracks"] == 1
        assert counts["by_class"]["car"]["mean"] == pytest.approx(truth_kmh, rel=0.01)
    assert float(np.percentile(errors, 95)) <= 0.03, max(errors)
    assert max(headings) <= 5.0


def test_speeds_use_frame_timestamps_not_frame_counts() -> None:
    """Uneven gaps (dropped frames, a wandering fps): the fit weighs samples by their times."""
    rng = np.random.default_rng(5)
    times = np.cumsum(rng.uniform(0.04, 0.35, 200))
    times = times[times < 30.0 / (60 / 3.6)]
    rule = ZoneRule("road", zone_config(calibration=CALIBRATION), FRAME, NAMES)
    speeds = []
    for t, det in drive((0.0, 12.2), (0.0, 60 / 3.6), times, seed=6):
        rule.update(det, t, "cam")
        now = dict(rule.traffic.current(7))
        if "speed_kmh" in now:
            speeds.append(now["speed_kmh"])
    assert len(speeds) > 5
    assert max(abs(s - 60.0) for s in speeds) <= 0.03 * 60.0, speeds


def test_imperial_units_give_mph() -> None:
    feet = tuple(d / 0.3048 for d in SIDES)
    cal = {"distances": feet, "units": "imperial"}
    rule = ZoneRule("road", zone_config(calibration=cal, speed_limit=25), FRAME, NAMES)
    times = np.arange(0.0, 2.0, 0.1)
    events = run(rule, drive((0.0, 13.0), (0.0, 50 / 3.6), times))
    (speeding,) = [e for e in events if e.kind is RuleEventKind.SPEEDING]
    assert dict(speeding.measures)["speed_mph"] == pytest.approx(50 / 1.609344, rel=0.03)


def test_speeding_fires_once_above_the_limit_only() -> None:
    cfg = zone_config(calibration=CALIBRATION, speed_limit=50)
    fast = ZoneRule("road", cfg, FRAME, NAMES)
    events = run(fast, drive((0.0, 12.5), (0.0, 60 / 3.6), np.arange(0.0, 1.7, 0.1)))
    hits = [e for e in events if e.kind is RuleEventKind.SPEEDING]
    assert len(hits) == 1
    assert hits[0].label == "car"
    assert dict(hits[0].measures)["speed_kmh"] == pytest.approx(60.0, rel=0.03)
    assert fast.counts()["speeding_events"] == 1
    assert fast.counts()["events_by_class"] == {"speeding": {"car": 1}}
    slow = ZoneRule("road", cfg, FRAME, NAMES)
    events = run(slow, drive((0.0, 12.5), (0.0, 45 / 3.6), np.arange(0.0, 2.3, 0.1)))
    assert [e.kind for e in events] == [RuleEventKind.ENTER]
    assert slow.counts()["speeding_events"] == 0


def test_wrong_way_in_a_one_way_zone() -> None:
    cfg = zone_config(
        calibration=CALIBRATION, direction={"heading": 0, "tolerance": 60, "min_time": 1.0}
    )
    times = np.arange(0.0, 3.0, 0.1)
    right = ZoneRule("road", cfg, FRAME, NAMES)
    assert [e.kind for e in run(right, drive((0.0, 13.0), (0.0, 10.0), times))] == [
        RuleEventKind.ENTER
    ]
    wrong = ZoneRule("road", cfg, FRAME, NAMES)
    events = run(wrong, drive((0.0, 40.0), (0.0, -10.0), times))
    hits = [e for e in events if e.kind is RuleEventKind.WRONG_WAY]
    assert len(hits) == 1
    measures = dict(hits[0].measures)
    assert angle_between(measures["heading"], 180.0) <= 5.0
    assert measures["distance_m"] >= 3.0
    # It needed min_time of wrong-way travel after its first fit (half a window in).
    assert hits[0].time >= 1.0 + 0.5
    assert wrong.counts()["wrong_way_events"] == 1
    # A car standing in the lane, boxes jittering, is not going the wrong way.
    standing = ZoneRule("road", cfg, FRAME, NAMES)
    events = run(standing, drive((0.0, 25.0), (0.0, 0.0), np.arange(0, 20, 0.1), jitter=2.0))
    assert [e.kind for e in events] == [RuleEventKind.ENTER]


def test_wrong_way_without_calibration_uses_image_headings() -> None:
    cfg = ZoneConfig(
        polygon=[(0.1, 0.1), (0.9, 0.1), (0.9, 0.9), (0.1, 0.9)],
        direction={"heading": 90, "tolerance": 45},  # type: ignore[arg-type]
    )
    rule = ZoneRule("lane", cfg, FRAME, NAMES)
    rng = np.random.default_rng(3)
    events = []
    for i in range(40):  # 200 px/s to the left, up 10 px/s: heading ~273°
        t = i * 0.1
        u, v = 1000 - 200 * t, 500 - 10 * t
        det = Detections(
            np.array([box(u, v, rng, 1.0)], np.float32), class_id=[CAR], tracker_id=[3]
        )
        events += rule.update(det, t, "cam")
        now = dict(rule.traffic.current(3))
        if "heading" in now:
            assert angle_between(now["heading"], heading_of(-200, -10)) <= 5.0
            assert "speed_kmh" not in now  # no calibration: no speed
    kinds = [e.kind for e in events]
    assert kinds == [RuleEventKind.ENTER, RuleEventKind.WRONG_WAY]
    assert "distance_px" in dict(events[1].measures)
    assert "speed" not in rule.counts()


def test_stopped_vehicle_despite_box_jitter() -> None:
    cfg = zone_config(calibration=CALIBRATION, stopped=30)
    rule = ZoneRule("road", cfg, FRAME, NAMES)
    rng = np.random.default_rng(9)
    events: list[RuleEvent] = []
    stop_at = 2.0
    for i in range(600):  # drive in at 36 km/h for 2 s, stand for 50 s, then drive on
        t = i * 0.1
        if t < stop_at:
            y = 13.0 + 10.0 * t
        elif t < 52.0:
            y = 33.0
        else:
            y = 33.0 + 10.0 * (t - 52.0)
        if y > 41.0:
            break
        det = Detections(
            np.array([box(*project(0.0, y), rng, 2.0)], np.float32), class_id=[CAR], tracker_id=[4]
        )
        events += rule.update(det, t, "cam")
        stopped_now = rule.counts()["stopped"]["current"]
        if stop_at + 31.5 <= t < 52.0:
            assert stopped_now == 1, t
        if t < stop_at + 29.0 or t >= 53.5:
            assert stopped_now == 0, t
    hits = [e for e in events if e.kind is RuleEventKind.STOPPED]
    assert len(hits) == 1
    # 30 s after the smoothed position settled: at most one smoothing window after the stop.
    assert stop_at + 30.0 <= hits[0].time <= stop_at + 31.5
    assert hits[0].duration is not None
    assert hits[0].duration >= 30.0
    counts = rule.counts()
    assert counts["stopped_events"] == 1
    assert counts["events_by_class"]["stopped"] == {"car": 1}


def test_slow_traffic_is_not_stopped() -> None:
    """A queue crawling at 3 km/h moves 25 m in 30 s: never still for the 10 s asked."""
    cfg = zone_config(calibration=CALIBRATION, stopped=10)
    rule = ZoneRule("road", cfg, FRAME, NAMES)
    events = run(rule, drive((0.0, 13.0), (0.0, 3 / 3.6), np.arange(0.0, 30.0, 0.2), jitter=2))
    assert [e.kind for e in events] == [RuleEventKind.ENTER]


def test_calibration_errors_name_the_fix() -> None:
    with pytest.raises(ValidationError, match="exactly 4 polygon corners"):
        ZoneConfig(polygon=[(0, 0), (1, 0), (1, 1)], calibration=CALIBRATION)  # type: ignore[arg-type]
    square = [(0, 0), (1, 0), (1, 1), (0, 1)]
    with pytest.raises(ValidationError, match="must be positive"):
        ZoneConfig(polygon=square, calibration={"distances": (4, 0, 4, 30)})  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="at least 4 items"):
        ZoneConfig(polygon=square, calibration={"distances": (4, 30, 4)})  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="speed_limit needs calibration"):
        ZoneConfig(polygon=[(0, 0), (1, 0), (1, 1)], speed_limit=50)
    with pytest.raises(ConfigError, match="cannot close"):
        ZoneRule("road", zone_config(calibration={"distances": (4, 1, 40, 1)}), FRAME, NAMES)
    dented = ZoneConfig(polygon=[(0, 0), (1, 0), (0.4, 0.3), (0, 1)], calibration=CALIBRATION)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="convex"):
        ZoneRule("road", dented, FRAME, NAMES)


def test_rectangle_side_lengths_match_the_zone_orientation() -> None:
    """Corners listed anticlockwise on screen give the same distances (no mirror trouble)."""
    rev = list(reversed(LANE))
    polygon = [(u / FRAME[0], v / FRAME[1]) for u, v in (project(*p) for p in rev)]
    ground = GroundPlane("r", np.array([project(*p) for p in rev]), (4.0, 30.0, 4.0, 30.0))
    a, b, c = ground.to_ground([project(0, 20), project(0, 30), project(1, 20)])
    assert math.dist(a, b) == pytest.approx(10.0, rel=1e-3)
    assert heading_of(*(b - a)) == pytest.approx(0.0, abs=0.1)
    assert heading_of(*(c - a)) == pytest.approx(90.0, abs=0.1)
    assert len(polygon) == 4


def test_motion_window_needs_half_a_window_of_samples() -> None:
    window = MotionWindow(1.0)
    window.add(0.0, 0.0, 0.0)
    window.add(0.2, 2.0, 0.0)
    window.add(0.4, 4.0, 0.0)
    assert window.fit() is None  # 0.4 s < half of 1 s
    window.add(0.6, 6.0, 0.0)
    fit = window.fit()
    assert fit is not None
    assert fit.vx == pytest.approx(10.0)
    assert fit.vy == pytest.approx(0.0)
    for i in range(4, 40):
        window.add(i * 0.2, 2.0 * i, 0.0)
    assert len(window) == 6  # only the last second is kept


def test_speeding_opens_an_event_that_carries_the_measures() -> None:
    cfg = zone_config(calibration=CALIBRATION, speed_limit=50)
    engine = RuleEngine("cam", {"road": cfg}, {}, FRAME, NAMES)
    manager = EventManager("cam", EventsConfig(), NAMES, live=False, rules_configured=True)
    image = np.zeros((FRAME[1], FRAME[0], 3), np.uint8)
    changes = []
    for i, (t, det) in enumerate(drive((0.0, 12.5), (0.0, 70 / 3.6), np.arange(0.0, 1.6, 0.1))):
        hits = engine.update(det, t)
        frame = Frame.from_bgr(image, camera_id="cam", seq=i, pts=t)
        changes += manager.update(frame, det, hits, [])
    hits = engine.update(Detections.empty(), 1.6, ended_ids=[7])
    changes += manager.update(
        Frame.from_bgr(image, camera_id="cam", seq=99, pts=1.6), Detections.empty(), hits, [7]
    )
    end = changes[-1]
    assert end.state is EventState.END
    assert end.counts["road:speeding"] == 1
    assert end.measures["road:speed_kmh"] == pytest.approx(70.0, rel=0.03)
    assert end.measures["road:max_speed_kmh"] >= end.measures["road:speed_kmh"]
    assert angle_between(end.measures["road:heading"], 0.0) <= 5.0
    assert json.loads(json.dumps(event_to_dict(end)))["measures"] == end.measures


def test_speed_counts_include_visits_in_progress_once() -> None:
    rule = ZoneRule("road", zone_config(calibration=CALIBRATION), FRAME, NAMES)
    run(rule, drive((0.0, 13.0), (0.0, 40 / 3.6), np.arange(0.0, 1.5, 0.1)))
    inside = rule.counts()["speed"]
    assert inside["tracks"] == 1  # still inside: measured so far
    assert inside["mean"] == pytest.approx(40.0, rel=0.03)
    assert rule.counts()["speed"] == inside  # counting does not fold it in for good
    rule.forget([7])
    after = rule.counts()["speed"]
    assert after["tracks"] == 1
    assert after["by_class"] == {"car": {k: after[k] for k in ("tracks", "mean", "max")}}


def test_boxes_cut_by_the_frame_edge_are_not_measured() -> None:
    """A car entering through the bottom edge: while its box is cut there, the bottom centre
    sits on the edge although the car drives on; measured, it would read as standing."""
    cfg = ZoneConfig(polygon=[(0, 0), (1, 0), (1, 1), (0, 1)], stopped=2)
    rule = ZoneRule("lane", cfg, FRAME, NAMES)
    rng = np.random.default_rng(4)
    events: list[RuleEvent] = []
    for i in range(60):  # 50 px/s up the screen, the box's true bottom starts 150 px below
        t = i * 0.1
        x1, y1, x2, y2 = box(640.0, FRAME[1] + 150 - 50 * t, rng, 1.0)
        det = Detections(np.array([[x1, y1, x2, min(y2, FRAME[1])]], np.float32),
                         class_id=[CAR], tracker_id=[2])  # fmt: skip
        events += rule.update(det, t, "cam")
        if t < 3.0:
            assert rule.traffic.current(2) == ()  # cut: not observed
    assert [e.kind for e in events] == [RuleEventKind.ENTER]  # no STOPPED
    assert angle_between(dict(rule.traffic.current(2))["heading"], 0.0) <= 5.0
