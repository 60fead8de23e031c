"""100k frames of synthetic traffic: tracker, rule and event state must stay bounded."""

from __future__ import annotations

import numpy as np
import pytest

from vigil.config.models import EventsConfig, LineConfig, TrackerConfig, ZoneConfig
from vigil.events.lifecycle import EventManager
from vigil.rules.engine import RuleEngine
from vigil.track import ByteTracker
from vigil.types import Detections, Frame

SIZE = (640, 360)

FRAMES = 100_000
FPS = 10.0


def _scene(
    rng: np.random.Generator, objects: np.ndarray, frame: int
) -> tuple[np.ndarray, Detections]:
    """Advance ``objects`` rows ``(x, y, vx, vy, w, h, death_frame)`` and detect them.

    A busy period of 1000 frames is followed by 2000 quiet ones, as on a real camera (and so that
    100k frames fit the test budget): nobody enters during a quiet period.
    """
    alive = objects[objects[:, 6] > frame]
    busy = (frame // 1000) % 3 == 0
    if busy and rng.random() < 0.08 and len(alive) < 12:  # someone walks in
        born = [
            rng.uniform(0, 600),
            rng.uniform(0, 300),
            rng.normal(0, 4),
            rng.normal(0, 2),
            rng.uniform(20, 60),
            rng.uniform(50, 150),
            frame + rng.integers(5, 300),
        ]
        alive = np.vstack([alive, born])
    alive[:, :2] += alive[:, 2:4]
    seen = alive[rng.random(len(alive)) > 0.1]  # 10 % missed detections
    xy = seen[:, :2] + rng.normal(0, 1.5, (len(seen), 2))
    boxes = np.c_[xy, xy + seen[:, 4:6]]
    scores = rng.uniform(0.3, 1.0, len(seen))
    if busy and rng.random() < 0.2:  # a false positive now and then
        fx, fy = rng.uniform(0, 600), rng.uniform(0, 300)
        boxes = np.vstack([boxes, [fx, fy, fx + 30, fy + 80]])
        scores = np.append(scores, rng.uniform(0.3, 0.9))
    return alive, Detections(boxes, scores, np.zeros(len(boxes), np.int64))


@pytest.mark.slow
def test_state_stays_bounded_over_100k_frames() -> None:
    rng = np.random.default_rng(0)
    tracker = ByteTracker(TrackerConfig(lost_seconds=2.0), frame_rate=FPS)
    objects = np.zeros((0, 7))
    peak: dict[str, int] = {}
    ended_total = 0
    last_id = 0
    rules = RuleEngine(
        "cam",
        {"left": ZoneConfig(polygon=[(0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0)], dwell=3.0)},
        {"middle": LineConfig(points=((0.0, 0.5), (1.0, 0.5)))},
        SIZE,
        ["person"],
    )
    events = EventManager(
        "cam", EventsConfig(snapshots=False), ["person"], live=False, rules_configured=True
    )
    luma = np.zeros((SIZE[1], SIZE[0]), np.uint8)
    peak_rules = peak_events = 0
    for frame in range(FRAMES):
        objects, detections = _scene(rng, objects, frame)
        out = tracker.update(detections, frame / FPS)
        ended_total += len(tracker.ended_ids)
        image = Frame(
            camera_id="cam",
            seq=frame,
            pts=frame / FPS,
            wall_time=0.0,
            luma=luma,
            loader=lambda size: np.zeros((1, 1, 3), np.uint8),
        )
        hits = rules.update(out, image.time, tracker.ended_ids)
        events.update(image, out, hits, tracker.ended_ids)
        peak_rules = max(peak_rules, rules.state_size())
        peak_events = max(peak_events, events.state_size())
        if len(out):
            last_id = max(last_id, int(out.tracker_id.max()))
        for key, value in tracker.state_sizes().items():
            peak[key] = max(peak.get(key, 0), value)
    # At most 12 people + a false positive per frame + tracks lost for 2 s (20 frames).
    assert peak["tracks"] <= 60, peak
    assert peak_rules <= 60, peak_rules
    assert peak_events <= 60, peak_events
    assert rules.counts()["zones"]["left"]["entries"]["total"] > 100  # the rules did work
    assert peak["ended"] <= 20, peak
    assert last_id > 1000  # many tracks came and went...
    for frame in range(FRAMES, FRAMES + 40):  # ... and when the scene empties, all end.
        tracker.update(Detections.empty(), frame / FPS)
        ended_total += len(tracker.ended_ids)
        rules.update(Detections.empty(), frame / FPS, tracker.ended_ids)
        image = Frame(
            camera_id="cam",
            seq=frame,
            pts=frame / FPS,
            wall_time=0.0,
            luma=luma,
            loader=lambda size: np.zeros((1, 1, 3), np.uint8),
        )
        events.update(image, Detections.empty(), [], tracker.ended_ids)
    assert tracker.state_sizes()["tracks"] == 0
    assert rules.state_size() == 0
    assert events.state_size() == 0
    assert len(tracker.predicted()) == 0
    assert (
        ended_total >= last_id - 5
    )  # every confirmed id was reported ended (bar a few unconfirmed)
