"""ZoneRule: enter/exit, dwell and loiter timings, occupancy, filters, forgetting."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from vigil.config.models import ZoneConfig
from vigil.errors import ConfigError
from vigil.rules.zone import ZoneRule
from vigil.types import Anchor, Detections, RuleEvent, RuleEventKind

FRAME = (640, 360)
NAMES = ["person", "bicycle", "car"]
SQUARE = [(0.25, 0.25), (0.75, 0.25), (0.75, 0.75), (0.25, 0.75)]  # pixels 160..480 x 90..270
IN, OUT = (320.0, 180.0), (40.0, 180.0)
ENTER, EXIT, DWELL, LOITER = (
    RuleEventKind.ENTER,
    RuleEventKind.EXIT,
    RuleEventKind.DWELL,
    RuleEventKind.LOITER,
)


def boxes(
    rows: Sequence[tuple[int, float, float]], w: float = 10, h: float = 20, class_id: int = 0
) -> Detections:
    """Tracked boxes whose bottom centre is at (x, y): rows of (track id, x, y)."""
    xyxy = [(x - w / 2, y - h, x + w / 2, y) for _, x, y in rows]
    return Detections(
        np.array(xyxy, dtype=np.float32).reshape(-1, 4),
        np.full(len(rows), 0.9, np.float32),
        np.full(len(rows), class_id, np.int64),
        np.array([t for t, _, _ in rows], np.int64),
    )


def zone(**kw: object) -> ZoneRule:
    return ZoneRule("yard", ZoneConfig(polygon=SQUARE, **kw), FRAME, NAMES)  # type: ignore[arg-type]


def summary(events: list[RuleEvent]) -> list[tuple[RuleEventKind, float, float | None]]:
    return [(e.kind, e.time, None if e.duration is None else round(e.duration, 6)) for e in events]


@pytest.mark.parametrize(
    ("timeline", "dwell", "loiter", "expected"),
    [
        # appears inside: ENTER on its first frame; leaves: EXIT with the time it stayed
        ([(0.0, IN), (0.5, IN), (0.9, OUT)], None, None, [(ENTER, 0.0, None), (EXIT, 0.9, 0.9)]),
        # uneven gaps: dwell fires on the first frame at or past 1.5 s inside (2.0 - 0.4)
        (
            [(0.0, OUT), (0.4, IN), (1.7, IN), (2.0, IN), (3.3, IN), (5.2, IN), (5.3, IN)],
            1.5,
            4.0,
            [(ENTER, 0.4, None), (DWELL, 2.0, 1.6), (LOITER, 5.2, 4.8)],
        ),
        # exactly at the threshold counts
        ([(0.0, IN), (1.0, IN), (2.0, IN)], 2.0, None, [(ENTER, 0.0, None), (DWELL, 2.0, 2.0)]),
        # leaves before the threshold: no dwell; comes back: the timer restarts
        (
            [(0.0, IN), (1.0, IN), (1.2, OUT), (1.4, IN), (2.5, IN), (3.0, IN)],
            1.5,
            None,
            [(ENTER, 0.0, None), (EXIT, 1.2, 1.2), (ENTER, 1.4, None), (DWELL, 3.0, 1.6)],
        ),
        # dwell fires once per visit, not on every frame after
        ([(float(t), IN) for t in range(6)], 1.0, None, [(ENTER, 0.0, None), (DWELL, 1.0, 1.0)]),
        # one big gap jumps past both thresholds at once
        (
            [(0.0, IN), (10.0, IN)],
            1.0,
            5.0,
            [(ENTER, 0.0, None), (DWELL, 10.0, 10.0), (LOITER, 10.0, 10.0)],
        ),
        # never inside: nothing
        ([(0.0, OUT), (1.0, OUT)], 0.5, 0.5, []),
    ],
)
def test_timeline(
    timeline: list[tuple[float, tuple[float, float]]],
    dwell: float | None,
    loiter: float | None,
    expected: list[tuple[RuleEventKind, float, float | None]],
) -> None:
    rule = zone(dwell=dwell, loiter=loiter)
    events: list[RuleEvent] = []
    for time, (x, y) in timeline:
        events += rule.update(boxes([(1, x, y)]), time, "cam")
    assert summary(events) == expected
    counts = rule.counts()
    assert counts["dwell_events"] == sum(1 for k, _, _ in expected if k is DWELL)
    assert counts["loiter_events"] == sum(1 for k, _, _ in expected if k is LOITER)


def test_missing_frames_keep_a_track_inside() -> None:
    rule = zone(dwell=2.0)
    events = rule.update(boxes([(1, *IN)]), 0.0, "cam")
    events += rule.update(Detections.empty(), 1.0, "cam")  # lost for a moment
    events += rule.update(boxes([(1, *IN)]), 2.5, "cam")
    assert summary(events) == [(ENTER, 0.0, None), (DWELL, 2.5, 2.5)]


def test_point_on_the_border_is_inside() -> None:
    rule = zone()
    events = rule.update(boxes([(1, 160.0, 180.0)]), 0.0, "cam")  # on the left edge
    assert [e.kind for e in events] == [ENTER]


def test_occupancy_and_entries() -> None:
    rule = zone()
    car = boxes([(3, 300, 200)], class_id=2)
    rule.update(boxes([(1, *IN), (2, 330, 190), (3, *OUT)]), 0.0, "cam")
    rule.update(Detections.merge([boxes([(1, *IN), (2, 330, 190)]), car]), 1.0, "cam")
    counts = rule.counts()
    assert counts["occupancy"]["current"] == 3  # two people and the car that entered
    rule.update(Detections.merge([boxes([(1, *OUT), (2, *IN)]), car]), 2.0, "cam")
    counts = rule.counts()
    assert counts["entries"] == {"total": 3, "by_class": {"car": 1, "person": 2}}
    assert counts["occupancy"]["current"] == 2
    assert counts["occupancy"]["max"] == 3
    assert counts["occupancy"]["by_class"] == {"car": 1, "person": 1}


def test_a_lost_track_does_not_count_as_present() -> None:
    """Occupancy is what the latest frame shows; a lost track is not counted (nor exited)."""
    rule = zone()
    rule.update(boxes([(1, *IN)]), 0.0, "cam")
    rule.update(boxes([(2, *IN)]), 1.0, "cam")  # track 1 lost, track 2 arrives
    counts = rule.counts()
    assert counts["occupancy"]["current"] == 1
    assert counts["occupancy"]["max"] == 1
    assert rule.state_size() == 2  # track 1 may still come back


def test_track_ending_inside_exits_at_its_last_seen_time() -> None:
    rule = zone()
    rule.update(boxes([(1, *IN), (2, *IN)]), 0.0, "cam")
    rule.update(boxes([(1, 321.0, 181.0)]), 0.7, "cam")
    events = rule.forget([1, 2, 42])
    assert sorted(summary(events)) == [(EXIT, 0.0, 0.0), (EXIT, 0.7, 0.7)]
    assert {e.camera_id for e in events} == {"cam"}
    assert rule.state_size() == 0
    assert rule.counts()["occupancy"]["current"] == 0
    assert rule.counts()["occupancy"]["max"] == 2


def test_class_filter() -> None:
    rule = zone(labels=["car"])
    assert rule.update(boxes([(1, *IN)], class_id=0), 0.0, "cam") == []
    assert [e.label for e in rule.update(boxes([(2, *IN)], class_id=2), 0.0, "cam")] == ["car"]


@pytest.mark.parametrize(("w", "h", "entered"), [(10, 20, False), (40, 60, True)])
def test_min_size(w: float, h: float, entered: bool) -> None:
    rule = zone(min_size=0.005)
    assert bool(rule.update(boxes([(1, *IN)], w=w, h=h), 0.0, "cam")) is entered


@pytest.mark.parametrize(
    ("anchor", "entered"), [(Anchor.BOTTOM_CENTER, True), (Anchor.CENTER, False)]
)
def test_anchor_choice(anchor: Anchor, entered: bool) -> None:
    # A 100 px tall box standing just inside the top edge (y=90): feet in, centre out.
    rule = zone(anchor=anchor)
    assert bool(rule.update(boxes([(1, 320.0, 120.0)], h=100), 0.0, "cam")) is entered


def test_polygon_without_area_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no area"):
        ZoneRule("flat", ZoneConfig(polygon=[(0.1, 0.1), (0.5, 0.5), (0.9, 0.9)]), FRAME, NAMES)
