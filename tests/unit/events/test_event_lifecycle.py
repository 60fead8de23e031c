"""EventManager: when events start, update and end; best snapshots; bounded state."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from vigil.config.models import EventsConfig, LineConfig, ZoneConfig
from vigil.events.lifecycle import EventManager, snapshot_score
from vigil.rules.engine import RuleEngine
from vigil.types import Detections, Event, EventState, Frame, ImageArray

W, H = 640, 360
NAMES = ["person", "bicycle", "car"]
START, UPDATE, END = EventState.START, EventState.UPDATE, EventState.END


def frame(seq: int, t: float, live: bool = False, calls: list[int] | None = None) -> Frame:
    """A frame whose pixels all equal ``seq % 256``; ``calls`` counts BGR conversions."""
    image = np.full((H, W, 3), seq % 256, np.uint8)

    def load(size: tuple[int, int] | None) -> ImageArray:
        if calls is not None:
            calls.append(seq)
        return image

    return Frame(
        camera_id="cam",
        seq=seq,
        pts=t,
        wall_time=t,
        luma=image[:, :, 0].copy(),
        loader=load,
        live=live,
    )


def boxes(rows: Sequence[tuple[int, Sequence[float], float, int]]) -> Detections:
    """Rows of (track id, xyxy, confidence, class id)."""
    return Detections(
        np.array([r[1] for r in rows], np.float32).reshape(-1, 4),
        np.array([r[2] for r in rows], np.float32),
        np.array([r[3] for r in rows], np.int64),
        np.array([r[0] for r in rows], np.int64),
    )


BOX = (100.0, 100.0, 140.0, 180.0)


def manager(rules: bool = False, live: bool = False, **kw: object) -> EventManager:
    return EventManager(
        "cam",
        EventsConfig(**kw),
        NAMES,
        live=live,  # type: ignore[arg-type]
        rules_configured=rules,
    )


def life(
    mgr: EventManager, track: int, t0: float, t1: float, *, dt: float = 0.25, seq0: int = 0
) -> list[Event]:
    """A track seen every ``dt`` from t0 to t1, then reported ended on the next frame."""
    out: list[Event] = []
    times = np.arange(t0, t1 + 1e-9, dt)
    for i, t in enumerate(times):
        out += mgr.update(frame(seq0 + i, float(t)), boxes([(track, BOX, 0.8, 0)]), [], [])
    out += mgr.update(
        frame(seq0 + len(times), float(times[-1] + dt)), Detections.empty(), [], [track]
    )
    return out


@pytest.mark.parametrize(
    ("lifetime", "min_duration", "makes_event"),
    [(3.0, 1.0, True), (1.0, 1.0, True), (0.75, 1.0, False), (0.0, 0.0, True), (0.25, 0.5, False)],
)
def test_no_rules_min_duration(lifetime: float, min_duration: float, makes_event: bool) -> None:
    mgr = manager(min_duration=min_duration)
    events = life(mgr, 7, 10.0, 10.0 + lifetime)
    assert [e.state for e in events] == ([START, END] if makes_event else [])
    assert mgr.state_size() == 0


def test_one_long_lived_object_is_exactly_one_event() -> None:
    mgr = manager(min_duration=1.0)
    events = life(mgr, 7, 10.0, 30.0)
    assert [e.state for e in events] == [START, END]
    start, end = events
    assert start.id == end.id == "cam-10.000-7"
    assert start.start == end.start == 10.0  # first seen, not the time START was emitted
    assert start.end is None
    assert end.end == pytest.approx(30.0)  # last seen, not when the tracker reported it
    assert end.duration == pytest.approx(20.0)
    assert (end.label, end.class_id, end.track_id, end.live) == ("person", 0, 7, False)
    assert end.top_score == pytest.approx(0.8)


def test_several_objects_make_separate_events() -> None:
    mgr = manager(min_duration=1.0)
    events: list[Event] = []
    for i in range(20):
        t = i * 0.2
        rows = [(1, BOX, 0.9, 0), (2, (300, 100, 340, 180), 0.9, 2)]
        if i < 3:
            rows.append((3, (500, 100, 540, 180), 0.9, 0))  # 0.4 s only
        events += mgr.update(frame(i, t), boxes(rows), [], [3] if i == 3 else [])
    events += mgr.close(4.0)
    assert [(e.track_id, e.state, e.label) for e in events] == [
        (1, START, "person"),
        (2, START, "car"),
        (1, END, "person"),
        (2, END, "car"),
    ]
    assert len({e.id for e in events}) == 2


def walk_through_rules(mgr: EventManager, engine: RuleEngine) -> list[Event]:
    """Track 1 walks down through zone and line; track 2 stands still outside both."""
    out: list[Event] = []
    ys = np.linspace(20, 340, 17)
    for i, y in enumerate(ys):
        tracked = boxes([(1, (315, y - 40, 325, y), 0.9, 0), (2, (20, 20, 40, 60), 0.9, 0)])
        f = frame(i, i * 0.5)
        out += mgr.update(f, tracked, engine.update(tracked, f.time), [])
    f = frame(len(ys), len(ys) * 0.5)
    out += mgr.update(
        f, Detections.empty(), engine.update(Detections.empty(), f.time, [1, 2]), [1, 2]
    )
    return out


def test_rule_based_event_lists_zones_and_lines() -> None:
    zones = {"yard": ZoneConfig(polygon=[(0.25, 0.25), (0.75, 0.25), (0.75, 0.75), (0.25, 0.75)])}
    lines = {"gate": LineConfig(points=((0.25, 0.5), (0.75, 0.5)))}
    engine = RuleEngine("cam", zones, lines, (W, H), NAMES)
    mgr = manager(rules=True)
    events = walk_through_rules(mgr, engine)
    assert {e.track_id for e in events} == {1}  # the bystander touched no rule
    assert [(e.state, e.zones, e.lines) for e in events] == [
        (START, ["yard"], []),
        (UPDATE, ["yard"], ["gate"]),
        (UPDATE, ["yard"], ["gate"]),  # exit: counts changed
        (END, ["yard"], ["gate"]),
    ]
    assert events[-1].counts == {"yard:enter": 1, "gate:a_to_b": 1, "yard:exit": 1}
    assert events[-1].start == 0.0  # the track's first sighting, before it entered
    assert events[-1].end == 8.0
    assert mgr.state_size() == 0


def test_exit_alone_does_not_start_an_event() -> None:
    zones = {"yard": ZoneConfig(polygon=[(0.25, 0.25), (0.75, 0.25), (0.75, 0.75), (0.25, 0.75)])}
    engine = RuleEngine("cam", zones, {}, (W, H), NAMES)
    tracked = boxes([(1, (315, 140, 325, 180), 0.9, 0)])
    engine.update(tracked, 0.0)  # the rule saw the ENTER, the manager did not (e.g. restarted)
    mgr = manager(rules=True)
    hits = engine.update(boxes([(1, (15, 140, 25, 180), 0.9, 0)]), 1.0)
    assert [h.kind.value for h in hits] == ["exit"]
    assert mgr.update(frame(1, 1.0), tracked, hits, []) == []


def test_best_snapshot_is_the_highest_scoring_view() -> None:
    mgr = manager(min_duration=0.0)
    views = [
        ((100, 100, 120, 140), 0.9),  # 0.9 * sqrt(800) = 25.5
        ((100, 100, 160, 220), 0.5),  # 0.5 * sqrt(7200) = 42.4: bigger, less sure
        ((100, 100, 140, 180), 0.95),  # 0.95 * sqrt(3200) = 53.7: the best
        ((0, 100, 80, 260), 0.9),  # 0.9 * sqrt(12800) = 101.8, halved at the border: 50.9
        ((100, 100, 110, 110), 0.99),  # 9.9: surest, tiny
    ]
    scores = [snapshot_score(box, conf, (W, H)) for box, conf in views]
    best = int(np.argmax(scores))
    assert best == 2
    assert scores[3] < scores[2]  # the border penalty decides between views 2 and 3
    events: list[Event] = []
    for i, (box, conf) in enumerate(views):
        events += mgr.update(frame(10 + i, float(i)), boxes([(4, box, conf, 0)]), [], [])
    (end,) = mgr.close(100.0)
    snap = end.snapshot
    assert snap is not None
    assert snap.image is not None
    assert (snap.seq, snap.time, snap.box) == (12, 2.0, (100.0, 100.0, 140.0, 180.0))
    assert snap.score == pytest.approx(scores[2])
    assert int(snap.image[0, 0, 0]) == 12  # the pixels of that very frame
    assert end.top_score == pytest.approx(0.99)


def test_images_copied_only_when_the_best_changes() -> None:
    calls: list[int] = []
    mgr = manager(min_duration=0.0)
    for i in range(10):  # an object walking away: the first view stays the best
        s = 100 - 8 * i
        f = frame(i, i * 0.1, calls=calls)
        mgr.update(f, boxes([(1, (200, 100, 200 + s, 100 + 2 * s), 0.9, 0)]), [], [])
    (end,) = mgr.close(5.0)
    assert calls == [0]
    assert end.snapshot is not None
    assert end.snapshot.seq == 0
    image = end.snapshot.image
    assert image is not None
    assert not np.shares_memory(image, frame(0, 0.0).bgr())


def test_snapshots_off_keeps_the_choice_but_no_pixels() -> None:
    calls: list[int] = []
    mgr = manager(min_duration=0.0, snapshots=False)
    mgr.update(frame(3, 0.0, calls=calls), boxes([(1, BOX, 0.9, 0)]), [], [])
    (end,) = mgr.close(1.0)
    assert calls == []
    assert end.snapshot is not None
    assert (end.snapshot.seq, end.snapshot.image) == (3, None)


def test_close_ends_open_events_only() -> None:
    mgr = manager(min_duration=1.0)
    for i in range(10):
        rows = [(1, BOX, 0.9, 0)] + ([(2, BOX, 0.9, 0)] if i >= 8 else [])
        mgr.update(frame(i, i * 0.2), boxes(rows), [], [])
    ended = mgr.close(1.7)
    assert [(e.track_id, e.state, e.end) for e in ended] == [(1, END, 1.7)]  # capped at 1.7
    assert mgr.state_size() == 0
    assert mgr.close(2.0) == []


def test_debounce_ends_a_vanished_track_and_it_may_come_back_as_a_new_event() -> None:
    mgr = manager(min_duration=0.0, debounce=2.0)
    events = mgr.update(frame(0, 0.0), boxes([(1, BOX, 0.9, 0)]), [], [])
    events += mgr.update(frame(1, 0.5), boxes([(1, BOX, 0.9, 0)]), [], [])
    events += mgr.update(frame(2, 2.5), Detections.empty(), [], [])  # gone 2.0 s: not yet
    assert [e.state for e in events] == [START]
    events += mgr.update(frame(3, 2.6), Detections.empty(), [], [])  # gone 2.1 s
    assert [(e.state, e.end) for e in events] == [(START, None), (END, 0.5)]
    again = mgr.update(frame(4, 3.0), boxes([(1, BOX, 0.9, 0)]), [], [])
    assert [e.state for e in again] == [START]
    assert again[0].id != events[0].id
    assert again[0].start == 3.0


def test_label_follows_the_class_with_the_most_confidence() -> None:
    mgr = manager(min_duration=0.0)
    changes: list[Event] = []
    for i, (cls, conf) in enumerate([(2, 0.5), (2, 0.3), (0, 0.9), (0, 0.8), (2, 0.4)]):
        changes += mgr.update(frame(i, float(i)), boxes([(1, BOX, conf, cls)]), [], [])
    changes += mgr.close(9.0)
    # car 0.5, car 0.8, person 0.9 (UPDATE), person 1.7, car 1.2: one relabel, same event
    assert [(e.state, e.label, e.class_id) for e in changes] == [
        (START, "car", 2),
        (UPDATE, "person", 0),
        (END, "person", 0),
    ]
    assert len({e.id for e in changes}) == 1


def test_live_flag_and_state_bounded() -> None:
    mgr = manager(live=True, min_duration=0.5)
    base = 1_700_000_000.0
    events: list[Event] = []
    for k in range(200):  # 200 tracks, one after another
        events += life(mgr, k, base + k * 3.0, base + k * 3.0 + 1.0, seq0=k * 10)
        assert mgr.state_size() == 0
    assert len(events) == 400
    assert all(e.live for e in events)
    assert len({e.id for e in events}) == 200
