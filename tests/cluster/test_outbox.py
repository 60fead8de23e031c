"""The head's side of a camera actor, without a cluster: the outbox's acknowledgements and
bound, and what the handle does when an actor answers as a new incarnation."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.alerts.alert_servers import free_port
from vigil.alerts.fanout import FanoutSink
from vigil.alerts.mqtt import MqttSink
from vigil.cluster.backend import RayCamera
from vigil.cluster.camera import CameraSpec, Drained, EventOut, OnlineOut, _Outbox
from vigil.config.alerts import MqttConfig
from vigil.config.models import ClusterConfig, VigilConfig, ZoneConfig
from vigil.events.sinks import EventSink
from vigil.runtime.backend import BackendHooks
from vigil.runtime.messages import CameraReport
from vigil.runtime.view import CameraStatus
from vigil.types import Event, EventState, RuleEvent


def test_the_outbox_keeps_what_was_not_acknowledged() -> None:
    box = _Outbox(10)
    for online in (True, False, True):
        box.put(OnlineOut(online))
    first = box.after(0)
    assert [seq for seq, _ in first] == [1, 2, 3]
    assert [seq for seq, _ in box.after(0)] == [1, 2, 3], "an answer lost: sent again"
    assert [seq for seq, _ in box.after(2)] == [3]
    assert box.after(3) == ()


def test_what_the_drainer_has_seen_is_kept_but_not_sent_again() -> None:
    """A head whose sinks have not settled items 2 and 3 acknowledges 1 and has seen 3: the
    actor keeps 2 and 3 (for the next head) and sends only what came after."""
    box = _Outbox(10)
    for online in (True, False, True, False):
        box.put(OnlineOut(online))
    assert [seq for seq, _ in box.after(1, 3)] == [4]
    assert [seq for seq, _ in box.after(0)] == [2, 3, 4], "the next head gets them again"
    assert [seq for seq, _ in box.after(3, 1)] == [4], "never below the acknowledgement"


def test_a_full_outbox_drops_the_oldest_and_counts_them() -> None:
    box = _Outbox(2)
    for online in (True, False, True):
        box.put(OnlineOut(online))
    assert [seq for seq, _ in box.after(0)] == [2, 3]
    assert box.dropped == 1


@dataclass
class Heard:
    events: list[Event] = field(default_factory=list)
    online: list[bool] = field(default_factory=list)

    def publish(self, event: Event) -> None:
        self.events.append(event)

    def close(self) -> None:
        pass

    def on_online(self, _camera: str, online: bool) -> None:
        self.online.append(online)


class _Method:
    def __init__(self, calls: list[tuple[str, Any]], name: str) -> None:
        self.calls, self.name = calls, name

    def remote(self, *args: Any) -> None:
        self.calls.append((self.name, args))


class FakeActor:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def __getattr__(self, name: str) -> _Method:
        return _Method(self.calls, name)


@dataclass
class FakeBackend:
    hooks: BackendHooks
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    failovers: list[Any] = field(default_factory=list)
    rebalanced: list[Any] = field(default_factory=list)


def _handle(
    sinks: Sequence[EventSink] = (), outbox_size: int = 2000
) -> tuple[RayCamera, Heard, FakeActor]:
    """A head's handle of camera ``door``; with ``sinks``, its events go to them too, and
    their settling holds back its acknowledgements (as the ``Supervisor``'s FanoutSink)."""
    config = VigilConfig.model_validate({"detect": {"model": "motion"}, "cameras": {
        "door": {"sources": [{"url": "synthetic://?fps=10"}]}}})  # fmt: skip
    heard = Heard()

    def counts(_hits: list[RuleEvent]) -> None:
        pass

    def on_counts(_camera: str, _counts: Mapping[str, Any]) -> None:
        pass

    fanout = FanoutSink([heard, *sinks])
    hooks = BackendHooks(detectors={}, sink=fanout, counts=counts, on_counts=on_counts,
                         on_online=heard.on_online, recorders={},
                         queue_depth=lambda _camera: 0, delivery=fanout)  # fmt: skip
    spec = CameraSpec(config, config.camera("door"), "postgresql://x@y/z", None,
                      outbox_size=outbox_size)  # fmt: skip
    camera = RayCamera(spec, FakeBackend(hooks))  # type: ignore[arg-type]
    actor = FakeActor()
    camera.actor = actor
    return camera, heard, actor


def _report(online: bool = True) -> CameraReport:
    status = CameraStatus(name="door", online=online, state="running", last_frame_time=50.0)
    return CameraReport(status, 10, 5, 0, 1, None)


def _event(state: EventState) -> Event:
    return Event(id="e1", camera_id="door", label="person", class_id=0, track_id=1,
                 start=40.0, end=None, state=state, live=True)  # fmt: skip


def test_a_new_incarnation_ends_the_events_the_lost_one_left_open() -> None:
    camera, heard, actor = _handle()
    camera.take(Drained("one", "node-1", "id1", _report(),
                        ((1, OnlineOut(True)), (2, EventOut(_event(EventState.START)))), 0,
                        ({}, {})))  # fmt: skip
    assert camera.acked == 2
    assert heard.online == [True]
    camera.lost("ActorDiedError")
    assert heard.online == [True, False]
    assert camera.state == "restarting"
    assert camera.status().node == "node-1"
    # Back on another node: a fresh outbox numbered from 1 again.
    camera.take(Drained("two", "node-2", "id2", _report(), ((1, OnlineOut(True)),), 0,
                        ({}, {})))  # fmt: skip
    ended = [e for e in heard.events if e.state is EventState.END]
    assert [e.id for e in ended] == ["e1"]
    assert ended[0].end == 50.0, "ended at the camera's last frame"
    assert camera.acked == 1
    assert heard.online == [True, False, True]
    assert camera.status().node == "node-2"
    assert camera.restarts == 1
    assert [(f.before, f.after) for f in camera._backend.failovers] == [("node-1", "node-2")]
    assert actor.calls == [], "its rules were those in force: nothing to hand over"


def test_a_restarted_actor_gets_the_rules_in_force() -> None:
    camera, _, actor = _handle()
    zone = ZoneConfig.model_validate({"polygon": [[0, 0], [1, 0], [1, 1]]})
    camera._zones = {"yard": zone}  # edited on the head while the actor was away
    camera.take(Drained("two", "node-2", "id2", _report(), (), 0, ({}, {})))
    assert actor.calls == [("update_rules", ({"yard": zone}, {}))]


def _zone(name: str) -> dict[str, ZoneConfig]:
    return {name: ZoneConfig.model_validate({"polygon": [[0, 0], [1, 0], [1, 1]]})}


def test_once_an_actor_has_the_rules_in_force_the_head_follows_its_changes() -> None:
    """An API replica edits a camera's rules in its actor: the head, whose rules the actor
    had, takes the new ones at its next drain instead of handing its old ones back."""
    camera, _, actor = _handle()
    camera.take(Drained("one", "node-1", "id1", _report(), (), 0, ({}, {})))
    assert camera.synced == "one"
    edited = _zone("from-a-replica")
    camera.take(Drained("one", "node-1", "id1", _report(), (), 0, (edited, {}), False))
    assert actor.calls == [], "nothing handed back"
    assert camera.rules() == (edited, {})
    assert camera.detection is False, "the switch a replica turned off, followed"
    # Restarted (a failover): the new incarnation gets what is in force, the edit included.
    camera.take(Drained("two", "node-2", "id2", _report(), (), 0, ({}, {})))
    assert actor.calls == [("update_rules", (edited, {})), ("set_detection", (False,))]
    assert camera.synced == "one", "not yet in force in the new incarnation"


def test_a_drain_asked_before_an_edit_does_not_undo_it() -> None:
    """The head edits a camera's rules and switch while a drain is in flight: that drain
    answers with the actor's settings from before the edit, which the handle does not
    follow; a drain asked after the edit is followed again (another server's change)."""
    camera, _, actor = _handle()
    camera.take(Drained("one", "node-1", "id1", _report(), (), 0, ({}, {})))
    assert camera.synced == "one"
    camera.pending_since = time.monotonic()  # a drain asked now ...
    camera._call = lambda call, wait=0.0: call(actor)  # type: ignore[method-assign]
    edited = _zone("yard")
    camera.update_rules(edited, {})  # ... then the edit, applied by the actor
    camera.set_detection(False)
    camera.take(Drained("one", "node-1", "id1", _report(), (), 0, ({}, {}), True))
    assert camera.rules() == (edited, {}), "the edit undone by an answer from before it"
    assert camera.detection is False
    camera.pending_since = time.monotonic()  # asked after the edit: the actor's are the truth
    camera.take(Drained("one", "node-1", "id1", _report(), (), 0, (_zone("other"), {}), True))
    assert camera.rules() == (_zone("other"), {})
    assert camera.detection is True


def test_an_adopted_actor_keeps_the_rules_it_runs_with() -> None:
    """A head that adopts an actor an earlier head left running takes its rules (edited at
    run time) instead of handing it those of the configuration."""
    camera, _, actor = _handle()
    camera.adopt_rules = True
    edited = _zone("edited-before-the-restart")
    camera.take(Drained("one", "node-1", "id1", _report(), (), 0, (edited, {})))
    assert actor.calls == []
    assert camera.rules() == (edited, {})
    assert camera.synced == "one"


def test_a_replica_s_handle_never_hands_the_actor_its_settings() -> None:
    camera, _, actor = _handle()
    camera.follow = True
    camera.detection = False  # e.g. restored from the database before the actor answered
    camera.take(Drained("one", "node-1", "id1", _report(), (), 0, (_zone("z"), {}), True))
    assert actor.calls == []
    assert camera.rules() == (_zone("z"), {})
    assert camera.detection is True


def test_a_change_the_actor_did_not_get_is_handed_at_its_next_drain() -> None:
    camera, _, actor = _handle()
    camera.take(Drained("one", "node-1", "id1", _report(), (), 0, ({}, {})))
    camera.actor = None  # its call fails: no answer from the actor
    camera.update_rules(_zone("late"), {})
    assert camera.synced is None
    camera.actor = actor
    camera.take(Drained("one", "node-1", "id1", _report(), (), 0, ({}, {})))
    assert actor.calls == [("update_rules", (_zone("late"), {}))], "handed, not followed"


def test_a_peek_leaves_the_outbox_to_the_head_s_drains() -> None:
    box = _Outbox(10)
    for online in (True, False):
        box.put(OnlineOut(online))
    assert [seq for seq, _ in box.since(0)] == [1, 2]
    assert [seq for seq, _ in box.since(1)] == [2]
    assert [seq for seq, _ in box.after(0)] == [1, 2], "nothing dropped by a peek"


def test_a_moved_camera_counts_a_move_not_a_restart_and_starts_with_the_rules_in_force() -> None:
    """What ``RayBackend.move_group`` leaves a handle with: the new group's first answer is a
    move (``rebalanced``), no failover and no restart; the new group's spec carries the rules
    and the recording switch in force on the head."""
    camera, heard, _actor = _handle()
    camera.take(Drained("one", "node-1", "id1", _report(), ((1, OnlineOut(True)),), 0,
                        ({}, {})))  # fmt: skip
    zone = _zone("yard")
    camera._zones, camera.recording = zone, False  # edited on the head at run time
    spec = camera.in_force()
    assert (spec.camera.zones, spec.recording) == (zone, False)
    assert spec.camera.sources == camera.spec.camera.sources
    camera.moved_from, camera.move_started = "node-1", 0.0  # the move switched the handle
    camera.take(Drained("two", "node-2", "id2", _report(), ((1, OnlineOut(True)),), 0,
                        (zone, {}), recording=False))  # fmt: skip
    backend = camera._backend
    assert [(m.camera, m.before, m.after) for m in backend.rebalanced] == [
        ("door", "node-1", "node-2")]  # fmt: skip
    assert backend.failovers == []
    assert (camera.restarts, camera.moves, camera.moved_from) == (0, 1, None)
    assert camera.status().node == "node-2"
    # A later loss of the new node is a failover again.
    camera.lost("ActorDiedError")
    camera.take(Drained("three", "node-3", "id3", _report(), (), 0, (zone, {}),
                        recording=False))  # fmt: skip
    assert [(f.before, f.after) for f in backend.failovers] == [("node-2", "node-3")]
    assert camera.restarts == 1
    assert heard.online[-1] is False


def test_an_event_drained_but_not_published_goes_to_the_next_head() -> None:
    """The head's MQTT broker is unreachable: the event waits in the sink's queue, so the
    head does not acknowledge it; the head dies; the next one drains the outbox from the
    start and gets the event again (and acknowledges it once its sinks have it)."""
    box = _Outbox(10)
    box.put(EventOut(_event(EventState.START)))
    mqtt = MqttSink(MqttConfig(host="127.0.0.1", port=free_port()))
    try:
        head, heard, _ = _handle([mqtt])
        head.take(Drained("one", "node-1", "id1", _report(), box.after(head.acked), 0))
        assert [e.id for e in heard.events] == ["e1"]
        assert mqtt.stats.queued == 2, "both topics' messages wait for the broker"
        assert (head.acked, head.seen) == (0, 1), "seen, not acknowledged"
        head.take(Drained("one", "node-1", "id1", _report(), box.after(head.acked, head.seen), 0))
        assert [e.id for e in heard.events] == ["e1"], "not delivered twice to this head"
        assert head.acked == 0
    finally:
        mqtt.close()  # the head dies: what its sink queued is gone with it
    following, heard_next, _ = _handle()
    following.take(Drained("one", "node-1", "id1", _report(), box.after(following.acked), 0))
    assert [e.id for e in heard_next.events] == ["e1"], "delivered again after the hand-over"
    assert following.acked == 1, "its sinks settle at once: acknowledged"
    assert box.after(following.acked) == ()


@dataclass
class Stuck:
    """A settling sink that never settles (a broker down for good)."""

    count: int = 0

    def publish(self, event: Event) -> None:
        self.count += 1

    def close(self) -> None:
        pass

    def handed(self) -> int:
        return self.count

    def settled(self) -> int:
        return 0


def test_what_never_settles_is_held_back_no_further_than_the_outbox_keeps() -> None:
    head, _, _ = _handle([Stuck()], outbox_size=2)
    events = tuple((n, EventOut(_event(EventState.UPDATE))) for n in (1, 2, 3))
    head.take(Drained("one", "node-1", "id1", _report(), events, 0))
    assert (head.acked, head.seen) == (1, 3), "item 1 is gone from a 2-item outbox anyway"
    assert len(head.unsettled) == 2


def test_a_camera_s_counters_go_on_across_its_actor_s_incarnations() -> None:
    """A new actor (failover or move) counts from zero: the handle adds what the earlier
    ones counted, so frames, restarts, skipped frames and decode errors never go back (a
    moved group's reconnections were lost, and the Prometheus counters fell to zero)."""

    def report(frames: int, restarts: int, skipped: int, errors: int) -> CameraReport:
        status = CameraStatus(name="door", online=True, state="running", last_frame_time=50.0,
                              skipped_frames=skipped, decode_errors=errors)  # fmt: skip
        return CameraReport(status, frames, frames // 2, restarts, restarts + 1, None)

    camera, _, _ = _handle()
    camera.take(Drained("one", "node-1", "id1", report(100, 2, 3, 1), (), 0, ({}, {})))
    camera.lost("ActorDiedError")
    down = camera.status()
    assert (down.skipped_frames, down.decode_errors) == (3, 1), "kept while it is away"
    camera.take(Drained("two", "node-2", "id2", report(10, 0, 1, 0), (), 0, ({}, {})))
    camera.moved_from, camera.move_started = "node-2", 0.0
    camera.take(Drained("three", "node-3", "id3", report(5, 1, 0, 2), (), 0, ({}, {})))
    assert (camera.frames, camera.analysed, camera.sessions) == (115, 57, 6)
    # 2 + 0 + 1 reconnections of the three actors, and 1 failover (the move is none).
    assert (camera.restarts, camera.moves) == (4, 1)
    status = camera.status()
    assert (status.skipped_frames, status.decode_errors) == (4, 3)
    assert camera.skipped_frames == 4
