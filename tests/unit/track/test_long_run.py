"""100k frames of synthetic traffic: the tracker's state must stay bounded."""

from __future__ import annotations

import numpy as np
import pytest

from vigil.config.models import TrackerConfig
from vigil.track import ByteTracker
from vigil.types import Detections

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
    for frame in range(FRAMES):
        objects, detections = _scene(rng, objects, frame)
        out = tracker.update(detections, frame / FPS)
        ended_total += len(tracker.ended_ids)
        if len(out):
            last_id = max(last_id, int(out.tracker_id.max()))
        for key, value in tracker.state_sizes().items():
            peak[key] = max(peak.get(key, 0), value)
    # At most 12 people + a false positive per frame + tracks lost for 2 s (20 frames).
    assert peak["tracks"] <= 60, peak
    assert peak["ended"] <= 20, peak
    assert last_id > 1000  # many tracks came and went...
    for frame in range(FRAMES, FRAMES + 40):  # ... and when the scene empties, all end.
        tracker.update(Detections.empty(), frame / FPS)
        ended_total += len(tracker.ended_ids)
    assert tracker.state_sizes()["tracks"] == 0
    assert len(tracker.predicted()) == 0
    assert (
        ended_total >= last_id - 5
    )  # every confirmed id was reported ended (bar a few unconfirmed)
