"""LineRule: direction convention, segment-only crossings, hysteresis, filters, anchors."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from vigil.config.models import LineConfig
from vigil.errors import ConfigError
from vigil.rules.line import LineRule
from vigil.types import Anchor, Detections, Direction, RuleEvent, RuleEventKind

FRAME = (640, 360)  # diagonal 734.3 px: the default band is 7.3 px
NAMES = ["person", "bicycle", "car"]
# Horizontal line across the middle, A end at x=160, B end at x=480, y=180 (pointing right):
# side A is above it on screen, side B below.
HORIZONTAL = ((0.25, 0.5), (0.75, 0.5))


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


def run(
    rule: LineRule, path: Sequence[tuple[float, float]], track: int = 1, **kw: float
) -> list[RuleEvent]:
    events: list[RuleEvent] = []
    for i, (x, y) in enumerate(path):
        events += rule.update(boxes([(track, x, y)], **kw), float(i), "cam")  # type: ignore[arg-type]
    return events


def line(
    points: tuple[tuple[float, float], tuple[float, float]] = HORIZONTAL, **kw: object
) -> LineRule:
    return LineRule("gate", LineConfig(points=points, **kw), FRAME, NAMES)  # type: ignore[arg-type]


def totals(rule: LineRule) -> tuple[int, int]:
    t = rule.counts()["total"]
    return t["a_to_b"], t["b_to_a"]


def vertical_path(x: float, y0: float, y1: float, steps: int = 9) -> list[tuple[float, float]]:
    return [(x, float(y)) for y in np.linspace(y0, y1, steps)]


@pytest.mark.parametrize(
    ("points", "path", "expected"),
    [
        # Horizontal line pointing right: downwards on screen is A → B.
        (HORIZONTAL, vertical_path(320, 100, 260), Direction.A_TO_B),
        (HORIZONTAL, vertical_path(320, 260, 100), Direction.B_TO_A),
        # Same line drawn from right to left: the sides swap.
        ((HORIZONTAL[1], HORIZONTAL[0]), vertical_path(320, 100, 260), Direction.B_TO_A),
        # Line pointing down the screen (A at the top): the screen's right is side A, so
        # moving left to right is B → A.
        (((0.5, 0.2), (0.5, 0.8)), [(250.0 + 20 * i, 180.0) for i in range(8)], Direction.B_TO_A),
        (((0.5, 0.2), (0.5, 0.8)), [(390.0 - 20 * i, 180.0) for i in range(8)], Direction.A_TO_B),
    ],
)
def test_direction_convention(
    points: tuple[tuple[float, float], tuple[float, float]],
    path: list[tuple[float, float]],
    expected: Direction,
) -> None:
    rule = line(points)
    events = run(rule, path)
    assert [(e.kind, e.direction) for e in events] == [(RuleEventKind.CROSS, expected)]
    assert rule.counts()["total"][expected.value] == 1
    assert sum(rule.counts()["total"].values()) == 1


@pytest.mark.parametrize(
    ("x", "crossings"),
    [
        (320.0, 1),  # middle of the segment
        (480.0, 1),  # exactly through the B end
        (160.0, 1),  # exactly through the A end
        (481.0, 0),  # just beyond the B end: crosses only the infinite extension
        (600.0, 0),
        (159.0, 0),
    ],
)
def test_only_the_segment_counts(x: float, crossings: int) -> None:
    rule = line(hysteresis=0.0)
    run(rule, vertical_path(x, 100, 260))
    assert totals(rule) == (crossings, 0)


def test_diagonal_path_exactly_through_an_endpoint_counts() -> None:
    rule = line(hysteresis=0.0)
    run(rule, [(470.0, 170.0), (480.0, 180.0), (490.0, 190.0)])  # passes through (480, 180)
    assert totals(rule) == (1, 0)


def jitter(frames: int = 50, amp: float = 2.0) -> list[tuple[float, float]]:
    return [(320.0, 180.0 + (amp if i % 2 else -amp)) for i in range(frames)]


@pytest.mark.parametrize(
    ("path", "hysteresis", "expected"),
    [
        # approach from A, jitter ±2 px on the line for 50 frames, leave to B: once
        ([(320.0, 120.0), *jitter(), (320.0, 240.0)], 0.01, (1, 0)),
        # approach from A, jitter, go back to A: nothing
        ([(320.0, 120.0), *jitter(), (320.0, 120.0)], 0.01, (0, 0)),
        # the same jitter without a band counts every wobble: the band is what prevents it
        ([(320.0, 120.0), *jitter(), (320.0, 240.0)], 0.0, (25, 24)),
        # first seen on the line, then leaves: where it came from is unknown, no count
        ([*jitter(10), (320.0, 240.0)], 0.01, (0, 0)),
    ],
)
def test_hysteresis(
    path: list[tuple[float, float]], hysteresis: float, expected: tuple[int, int]
) -> None:
    rule = line(hysteresis=hysteresis)
    run(rule, path)
    assert totals(rule) == expected


def test_crossing_then_coming_back_counts_each_direction_once() -> None:
    rule = line()
    path = vertical_path(320, 100, 260) + [(320.0, 260.0)] * 5 + vertical_path(330, 260, 100)
    events = run(rule, path)
    assert [e.direction for e in events] == [Direction.A_TO_B, Direction.B_TO_A]
    assert totals(rule) == (1, 1)
    assert events[0].time < events[1].time


def test_touching_the_segment_then_going_round_its_end_does_not_count() -> None:
    # Dips over the segment from A, comes back to A, walks round the B end inside the band,
    # then settles on B across the extension: net, the segment was never crossed.
    rule = line()
    run(rule, [(470.0, 150.0), (470.0, 182.0), (470.0, 178.0), (500.0, 178.0), (500.0, 220.0)])
    assert totals(rule) == (0, 0)


def test_class_filter_and_counts_by_class() -> None:
    rule = line(labels=["car", "bicycle"])
    for i, y in enumerate(np.linspace(100, 260, 9)):
        tracked = Detections.merge(
            [
                boxes([(1, 300, y)], class_id=0),  # person: filtered out
                boxes([(2, 320, y)], class_id=2),  # car, downwards
                boxes([(3, 340, 360 - y)], class_id=1),  # bicycle, upwards
            ]
        )
        rule.update(tracked, float(i), "cam")
    counts = rule.counts()
    assert counts["total"] == {"a_to_b": 1, "b_to_a": 1}
    assert counts["by_class"] == {
        "bicycle": {"a_to_b": 0, "b_to_a": 1},
        "car": {"a_to_b": 1, "b_to_a": 0},
    }


@pytest.mark.parametrize(("w", "h", "counted"), [(10, 20, False), (40, 60, True)])
def test_min_size(w: float, h: float, counted: bool) -> None:
    rule = line(min_size=0.005)  # 0.5 % of 640x360 = 1152 px²: 10x20 is below, 40x60 above
    run(rule, vertical_path(320, 100, 260), w=w, h=h)
    assert totals(rule) == ((1, 0) if counted else (0, 0))


@pytest.mark.parametrize(
    ("anchor", "expected"),
    [(Anchor.BOTTOM_CENTER, (1, 0)), (Anchor.CENTER, (0, 0)), (Anchor.TOP_CENTER, (0, 0))],
)
def test_anchor_choice(anchor: Anchor, expected: tuple[int, int]) -> None:
    # A tall box (100 px) whose bottom moves from y=160 to y=200: its feet cross the line,
    # its centre (y 110 → 150) and its head stay on side A.
    rule = line(anchor=anchor)
    run(rule, [(320.0, 160.0), (320.0, 170.0), (320.0, 190.0), (320.0, 200.0)], h=100)
    assert totals(rule) == expected


def test_events_only_for_configured_directions_but_both_counted() -> None:
    rule = line(directions=[Direction.A_TO_B])
    events = run(rule, vertical_path(320, 260, 100))  # B → A
    assert events == []
    assert totals(rule) == (0, 1)


def test_event_fields() -> None:
    rule = line()
    (event,) = run(rule, vertical_path(320, 100, 260), track=7)
    assert event.rule_id == "gate"
    assert event.camera_id == "cam"
    assert event.track_id == 7
    assert event.label == "person"
    assert event.class_id == 0
    assert event.point[1] > 180 + rule.band  # confirmed once settled on side B
    assert event.duration is None


def test_forget_drops_state_and_untracked_rows_are_ignored() -> None:
    rule = line()
    rule.update(boxes([(1, 320, 100), (2, 330, 100), (-1, 340, 100)]), 0.0, "cam")
    assert rule.state_size() == 2
    rule.forget([1, 2, 99])
    assert rule.state_size() == 0
    assert rule.update(Detections.empty(), 1.0, "cam") == []


def test_unknown_label_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"unknown label.*'persn'.*person, bicycle, car"):
        line(labels=["persn"])
