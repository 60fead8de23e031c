"""RuleEngine: all rules per frame, counts.json shape, bounded state, runtime rule changes."""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pytest

from vigil.config.models import LineConfig, ZoneConfig
from vigil.errors import ConfigError
from vigil.rules.engine import RuleEngine
from vigil.types import Detections, RuleEventKind

FRAME = (640, 360)
NAMES = ["person", "bicycle", "car"]
ZONES = {"yard": ZoneConfig(polygon=[(0.25, 0.25), (0.75, 0.25), (0.75, 0.75), (0.25, 0.75)])}
LINES = {"gate": LineConfig(points=((0.25, 0.5), (0.75, 0.5)))}


def boxes(rows: Sequence[tuple[int, float, float]], class_id: int = 0) -> Detections:
    xyxy = [(x - 5, y - 20, x + 5, y) for _, x, y in rows]
    return Detections(
        np.array(xyxy, dtype=np.float32).reshape(-1, 4),
        np.full(len(rows), 0.9, np.float32),
        np.full(len(rows), class_id, np.int64),
        np.array([t for t, _, _ in rows], np.int64),
    )


def walk(engine: RuleEngine, track: int, t0: float = 0.0, x: float = 320.0) -> None:
    """One track walking straight down through the yard and the gate, then ending."""
    ys = np.linspace(20, 340, 17)
    for i, y in enumerate(ys):
        engine.update(boxes([(track, x, float(y))]), t0 + i * 0.2)
    engine.update(Detections.empty(), t0 + len(ys) * 0.2, ended_ids=[track])


def test_counts_shape_is_json_ready() -> None:
    engine = RuleEngine("cam", ZONES, LINES, FRAME, NAMES)
    walk(engine, 1)
    counts = json.loads(json.dumps(engine.counts()))
    assert counts == {
        "lines": {
            "gate": {
                "total": {"a_to_b": 1, "b_to_a": 0},
                "by_class": {"person": {"a_to_b": 1, "b_to_a": 0}},
            }
        },
        "zones": {
            "yard": {
                "entries": {"total": 1, "by_class": {"person": 1}},
                "occupancy": {
                    "current": 0,
                    "max": 1,
                    "by_class": {"person": 0},
                    "max_by_class": {"person": 1},
                },
                "dwell_events": 0,
                "loiter_events": 0,
                "events_by_class": {},
            }
        },
    }


def test_events_from_all_rules_and_touched_rules() -> None:
    engine = RuleEngine("cam", ZONES, LINES, FRAME, NAMES)
    kinds = []
    for i, y in enumerate([60.0, 120.0, 200.0]):
        kinds += [(e.rule_id, e.kind) for e in engine.update(boxes([(5, 320, y)]), float(i))]
    assert kinds == [("yard", RuleEventKind.ENTER), ("gate", RuleEventKind.CROSS)]
    assert engine.zones_of(5) == ["yard"]
    assert engine.lines_of(5) == ["gate"]
    ended = engine.update(Detections.empty(), 3.0, ended_ids=[5])
    assert [(e.kind, e.time, e.camera_id) for e in ended] == [(RuleEventKind.EXIT, 2.0, "cam")]
    assert engine.zones_of(5) == []
    assert engine.lines_of(5) == []


def test_state_is_bounded_over_a_long_run() -> None:
    engine = RuleEngine("cam", ZONES, LINES, FRAME, NAMES)
    rng = np.random.default_rng(0)
    live: dict[int, float] = {}  # track id → y
    next_id = 0
    for frame in range(10_000):
        if rng.random() < 0.05:
            live[next_id] = 20.0
            next_id += 1
        for tid in live:
            live[tid] += float(rng.normal(8, 4))
        ended = [tid for tid, y in live.items() if y > 340]
        rows = [(tid, 200 + (tid % 5) * 50, y) for tid, y in live.items() if tid not in ended]
        for tid in ended:
            del live[tid]
        engine.update(boxes(rows), frame * 0.1, ended_ids=ended)
        # Per-track state only for tracks alive now: one line entry, at most one zone entry.
        assert engine.state_size() <= 2 * len(rows)
    engine.update(Detections.empty(), 1e6, ended_ids=list(live))
    assert next_id > 450
    assert engine.state_size() == 0
    assert engine.counts()["lines"]["gate"]["total"]["a_to_b"] >= next_id - len(live) - 5


def test_update_rules_keeps_unchanged_rules() -> None:
    engine = RuleEngine("cam", ZONES, LINES, FRAME, NAMES)
    walk(engine, 1)
    moved = LineConfig(points=((0.2, 0.5), (0.8, 0.5)))
    extra = {"door": ZoneConfig(polygon=[(0, 0), (0.1, 0), (0.1, 0.1)])}
    engine.update_rules({**ZONES, **extra}, {"gate": moved})
    counts = engine.counts()
    assert counts["zones"]["yard"]["entries"]["total"] == 1  # unchanged: kept
    assert counts["zones"]["door"]["entries"]["total"] == 0  # new
    assert counts["lines"]["gate"]["total"] == {"a_to_b": 0, "b_to_a": 0}  # changed: reset
    engine.update_rules({}, {})
    assert engine.counts() == {"lines": {}, "zones": {}}
    assert not engine.configured


def test_bad_new_rule_leaves_engine_unchanged() -> None:
    engine = RuleEngine("cam", ZONES, LINES, FRAME, NAMES)
    walk(engine, 1)
    bad = {"gate2": LineConfig(points=((0.2, 0.5), (0.8, 0.5)), labels=["unicorn"])}
    with pytest.raises(ConfigError, match="unicorn"):
        engine.update_rules(ZONES, bad)
    assert engine.counts()["lines"]["gate"]["total"]["a_to_b"] == 1
