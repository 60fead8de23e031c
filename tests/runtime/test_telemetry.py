"""``Telemetry``: the runtime's counters behind ``/metrics`` (events, crossings, reconnects)."""

from __future__ import annotations

from vigil.runtime.telemetry import DeliveryHealth, Telemetry
from vigil.types import Direction, Event, EventState, RuleEvent, RuleEventKind


def _event(state: EventState, label: str = "person", camera: str = "door") -> Event:
    return Event(id="e1", camera_id=camera, label=label, class_id=0, track_id=1, start=1.0,
                 end=None, state=state)  # fmt: skip


def _hit(kind: RuleEventKind, direction: Direction | None, label: str = "person") -> RuleEvent:
    return RuleEvent(rule_id="gate", kind=kind, camera_id="door", track_id=1, class_id=0,
                     label=label, time=1.0, point=(0.5, 0.5), direction=direction)  # fmt: skip


def test_events_are_counted_once_when_they_start() -> None:
    telemetry = Telemetry(["door"])
    for state in (EventState.START, EventState.UPDATE, EventState.END):
        telemetry.publish(_event(state))
    telemetry.publish(_event(EventState.START, "car"))
    assert telemetry.snapshot(0.0).events == {("door", "person"): 1, ("door", "car"): 1}


def test_crossings_by_line_direction_and_label() -> None:
    telemetry = Telemetry()
    telemetry.count_hits([
        _hit(RuleEventKind.CROSS, Direction.A_TO_B),
        _hit(RuleEventKind.CROSS, Direction.A_TO_B),
        _hit(RuleEventKind.CROSS, Direction.B_TO_A, "car"),
        _hit(RuleEventKind.ENTER, None),  # a zone hit is no crossing
    ])  # fmt: skip
    assert telemetry.snapshot(0.0).crossings == {
        ("door", "gate", "a_to_b", "person"): 2,
        ("door", "gate", "b_to_a", "car"): 1,
    }


def test_a_reconnect_is_coming_back_after_having_been_online() -> None:
    telemetry = Telemetry(["door", "yard"])
    assert telemetry.snapshot(0.0).reconnects == {("door", "detect"): 0, ("yard", "detect"): 0}
    telemetry.online("door", True)  # the first connection
    telemetry.online("door", False)
    telemetry.online("door", True)
    telemetry.online("door", False)
    telemetry.online("door", True)
    mqtt = DeliveryHealth(True, 5, 0, 0)
    snap = telemetry.snapshot(12.0, record_reconnects={"door": 3}, mqtt=mqtt)
    assert snap.reconnects == {("door", "detect"): 2, ("yard", "detect"): 0,
                               ("door", "record"): 3}  # fmt: skip
    assert (snap.started, snap.mqtt, snap.webhooks) == (12.0, mqtt, None)
