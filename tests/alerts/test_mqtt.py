"""MqttSink against a real Mosquitto broker, read back by a real paho subscriber."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from typing import Any

import pytest
from alert_servers import Broker, Subscriber, free_port
from pydantic import ValidationError

from vigil.alerts.mqtt import SWITCHES, CameraDiscovery, MqttSink
from vigil.config.alerts import MqttConfig
from vigil.errors import ConfigError
from vigil.events.sinks import event_to_dict
from vigil.types import Event, EventState


def event(n: int = 1, camera: str = "front door") -> Event:
    return Event(
        id=f"e{n}",
        camera_id=camera,
        label="person",
        class_id=0,
        track_id=n,
        start=float(n),
        end=None,
        state=EventState.START,
        zones=["porch"],
    )


def prefix() -> str:
    """A topic prefix of each test's own, so retained topics never leak between tests."""
    return f"t{uuid.uuid4().hex[:10]}"


def sink_for(broker: Broker, topic_prefix: str, **over: Any) -> MqttSink:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": broker.port,
        "topic_prefix": topic_prefix,
        "client_id": f"vigil-{topic_prefix}",
        "node_id": f"n{topic_prefix}",
        "discovery_prefix": f"ha{topic_prefix}",
    }
    values.update(over)
    sink = MqttSink(MqttConfig(**values))
    assert sink.wait_connected(10), sink.last_error
    return sink


def test_event_on_global_and_camera_topics(broker: Broker) -> None:
    p = prefix()
    sub = Subscriber(broker.port, [f"{p}/#"])
    with sink_for(broker, p) as sink:
        sink.publish(event(1))
        for topic in (f"{p}/events", f"{p}/front_door/events"):
            msg = sub.take(topic)
            assert json.loads(msg.payload) == event_to_dict(event(1))
            assert msg.qos == 1
            assert not msg.retain
    sub.close()


def test_availability_is_retained_for_late_subscribers(broker: Broker) -> None:
    p = prefix()
    with sink_for(broker, p) as sink:
        sink.camera_online("front door", True)
        sink.camera_online("yard", False)
        time.sleep(0.2)
        late = Subscriber(broker.port, [f"{p}/+/availability", f"{p}/availability"])
        got = {m.topic: (m.payload.decode(), m.retain) for m in late.drain()}
        assert got == {
            f"{p}/availability": ("online", True),
            f"{p}/front_door/availability": ("online", True),
            f"{p}/yard/availability": ("offline", True),
        }
        late.close()
    after = Subscriber(broker.port, [f"{p}/#"])  # close() marked everything offline
    got = {m.topic: m.payload.decode() for m in after.drain()}
    assert got == {
        f"{p}/availability": "offline",
        f"{p}/front_door/availability": "offline",
        f"{p}/yard/availability": "offline",
    }
    after.close()


def test_recording_state_is_retained_and_sent_only_on_change(broker: Broker) -> None:
    p = prefix()
    topic = f"{p}/front_door/recording/status"
    sub = Subscriber(broker.port, [f"{p}/+/recording/status"])
    with sink_for(broker, p) as sink:
        sink.camera_recording("front door", "recording")
        sink.camera_recording("front door", "failed", "recording failed: disk full")
        sink.camera_recording("front door", "failed", "recording failed: disk full")
        got = [json.loads(m.payload) for m in sub.drain() if m.topic == topic]
        assert got == [
            {"state": "recording", "error": None},
            {"state": "failed", "error": "recording failed: disk full"},
        ]
        late = Subscriber(broker.port, [f"{p}/+/recording/status"])
        [retained] = late.drain()
        assert retained.retain
        assert json.loads(retained.payload)["error"] == "recording failed: disk full"
        late.close()
        with pytest.raises(ConfigError, match="collide"):
            sink.label_topic("cam", "recording")
    sub.close()


COUNTS = {
    "lines": {"gate": {"total": {"a_to_b": 4, "b_to_a": 1}, "by_class": {}}},
    "zones": {
        "porch": {"occupancy": {"current": 2, "by_class": {"person": 2}}},
        "drive": {"occupancy": {"current": 4, "by_class": {"person": 1, "car": 3}}},
    },
}


def test_discovery_configs_and_states(broker: Broker) -> None:
    p = prefix()
    with sink_for(broker, p) as sink:
        sink.announce(
            {
                "front door": CameraDiscovery(
                    labels=["person", "dog"], lines=["gate"], name="Front door"
                )
            }
        )
        sink.publish_counts("front door", COUNTS)
        time.sleep(0.2)
        late = Subscriber(broker.port, [f"ha{p}/#", f"{p}/#"])
        got = {m.topic: m for m in late.drain()}
        late.close()
    assert all(m.retain for m in got.values())
    node = f"n{p}"
    configs = {t: json.loads(m.payload) for t, m in got.items() if t.startswith(f"ha{p}/")}
    assert sorted(configs) == [
        f"ha{p}/sensor/{node}/front_door_dog_occupancy/config",
        f"ha{p}/sensor/{node}/front_door_gate_a_to_b/config",
        f"ha{p}/sensor/{node}/front_door_gate_b_to_a/config",
        f"ha{p}/sensor/{node}/front_door_person_occupancy/config",
    ]
    person = configs[f"ha{p}/sensor/{node}/front_door_person_occupancy/config"]
    assert person["unique_id"] == f"{node}_front_door_person_occupancy"
    assert person["state_topic"] == f"{p}/front_door/person"
    assert person["state_class"] == "measurement"
    assert person["availability"] == [
        {"topic": f"{p}/availability"},
        {"topic": f"{p}/front_door/availability"},
    ]
    assert person["availability_mode"] == "all"
    assert person["device"]["identifiers"] == [f"{node}_front_door"]
    assert person["device"]["name"] == "Front door"
    gate = configs[f"ha{p}/sensor/{node}/front_door_gate_a_to_b/config"]
    assert gate["state_topic"] == f"{p}/front_door/line/gate/a_to_b"
    assert gate["state_class"] == "total_increasing"
    states = {t: m.payload.decode() for t, m in got.items() if t.startswith(f"{p}/front_door/")}
    assert states == {
        f"{p}/front_door/person": "2",  # the busiest zone: an object is never counted twice
        f"{p}/front_door/dog": "0",  # announced, not seen: zero, not missing
        f"{p}/front_door/car": "3",
        f"{p}/front_door/line/gate/a_to_b": "4",
        f"{p}/front_door/line/gate/b_to_a": "1",
        # Each zone's own figures (entries absent from these counts read 0).
        f"{p}/front_door/zone/porch/occupancy": "2",
        f"{p}/front_door/zone/porch/occupancy/person": "2",
        f"{p}/front_door/zone/porch/entries": "0",
        f"{p}/front_door/zone/drive/occupancy": "4",
        f"{p}/front_door/zone/drive/occupancy/person": "1",
        f"{p}/front_door/zone/drive/occupancy/car": "3",
        f"{p}/front_door/zone/drive/entries": "0",
    }


#: A traffic camera's counts, as `RuleEngine.counts()` writes them (see vigil.rules.engine).
ROAD_COUNTS = {
    "lines": {"stop line": {"total": {"a_to_b": 5, "b_to_a": 1},
                            "by_class": {"car": {"a_to_b": 4, "b_to_a": 1},
                                         "bus": {"a_to_b": 1, "b_to_a": 0}}}},
    "zones": {"lane": {
        "entries": {"total": 6, "by_class": {"car": 5, "truck": 1}},
        "occupancy": {"current": 1, "max": 2, "by_class": {"car": 1, "truck": 0},
                      "max_by_class": {"car": 2, "truck": 1}},
        "dwell_events": 0, "loiter_events": 0,
        "events_by_class": {"speeding": {"car": 2}, "stopped": {"truck": 1}},
        "speed": {"unit": "km/h", "tracks": 5, "mean": 47.25, "max": 71.0,
                  "by_class": {"car": {"tracks": 4, "mean": 49.123, "max": 71.0},
                               "truck": {"tracks": 1, "mean": 40.0, "max": 42.0}}},
        "speeding_events": 2, "stopped_events": 1,
        "stopped": {"current": 0, "by_class": {"truck": 0}},
    }},
}  # fmt: skip


def test_per_class_line_and_zone_counters(broker: Broker) -> None:
    p = prefix()
    with sink_for(broker, p) as sink:
        sink.publish_counts("road", ROAD_COUNTS)
        time.sleep(0.2)
        late = Subscriber(broker.port, [f"{p}/road/line/#", f"{p}/road/zone/#"])
        got = {m.topic.removeprefix(f"{p}/road/"): m.payload.decode() for m in late.drain()}
        late.close()
    assert got == {
        "line/stop_line/a_to_b": "5", "line/stop_line/b_to_a": "1",
        "line/stop_line/a_to_b/car": "4", "line/stop_line/b_to_a/car": "1",
        "line/stop_line/a_to_b/bus": "1", "line/stop_line/b_to_a/bus": "0",
        "zone/lane/occupancy": "1",
        "zone/lane/occupancy/car": "1", "zone/lane/occupancy/truck": "0",
        "zone/lane/entries": "6", "zone/lane/entries/car": "5", "zone/lane/entries/truck": "1",
        "zone/lane/events/dwell": "0", "zone/lane/events/loiter": "0",
        "zone/lane/events/speeding": "2", "zone/lane/events/speeding/car": "2",
        "zone/lane/events/stopped": "1", "zone/lane/events/stopped/truck": "1",
        "zone/lane/stopped": "0",
        "zone/lane/speed": "47.25", "zone/lane/speed/car": "49.12", "zone/lane/speed/truck": "40.0",
    }  # fmt: skip


def test_counts_sent_only_on_change_and_stale_discovery_removed(broker: Broker) -> None:
    p = prefix()
    sub = Subscriber(broker.port, [f"{p}/+/+", f"ha{p}/#"])
    with sink_for(broker, p) as sink:
        sink.announce({"cam": CameraDiscovery(labels=["person"])})
        sink.publish_counts("cam", COUNTS)
        sink.publish_counts("cam", COUNTS)
        sink.announce({"cam": CameraDiscovery(labels=[])})
        msgs = sub.drain()
    person = [m for m in msgs if m.topic == f"{p}/cam/person"]
    assert [m.payload for m in person] == [b"2"]
    config = [m.payload for m in msgs if m.topic.endswith("cam_person_occupancy/config")]
    assert len(config) == 2
    assert config[-1] == b""  # an empty retained config removes the sensor from HA
    sub.close()


def test_last_will_when_vigil_dies(broker: Broker) -> None:
    p = prefix()
    sub = Subscriber(broker.port, [f"{p}/availability"])
    script = (
        "import sys, time\n"
        "from vigil.alerts.mqtt import MqttSink\n"
        "from vigil.config.alerts import MqttConfig\n"
        f"s = MqttSink(MqttConfig(host='127.0.0.1', port={broker.port}, topic_prefix='{p}',"
        f" client_id='will-{p}'))\n"
        "assert s.wait_connected(10)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == b"ready"
        assert sub.take(f"{p}/availability").payload == b"online"
        os.kill(child.pid, signal.SIGKILL)  # no DISCONNECT: the socket just closes
    finally:
        child.wait(10)
        if child.stdout is not None:
            child.stdout.close()
    will = sub.take(f"{p}/availability", timeout=10)
    assert will.payload == b"offline"
    sub.close()


def test_reconnect_after_broker_restart_delivers_bounded_queue(
    restartable_broker: Broker,
) -> None:
    broker = restartable_broker
    p = prefix()
    # A persistent session: the broker keeps the subscription and queues for it over restarts.
    sub = Subscriber(broker.port, [f"{p}/events"], client_id=f"sub-{p}", persistent=True)
    sink = sink_for(broker, p, queue_size=5)
    sink.publish(event(0))
    assert (
        sub.take(f"{p}/events").payload
        == json.dumps(event_to_dict(event(0)), separators=(",", ":")).encode()
    )
    broker.stop()
    deadline = time.monotonic() + 10
    while sink.connected and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not sink.connected
    started = time.monotonic()
    for n in range(1, 9):
        sink.publish(event(n))
    assert time.monotonic() - started < 0.5  # never blocks while the broker is down
    stats = sink.stats
    assert stats.queued == 5  # two topics per event: the oldest messages went first
    assert stats.dropped == 11
    broker.start()
    got = []
    for _ in range(2):
        got.append(json.loads(sub.take(f"{p}/events", timeout=15).payload)["id"])
    # The 5 newest messages survived, in order: e6 on the camera topic, e7 and e8 on both.
    assert got == ["e7", "e8"]
    assert sink.stats.connections == 2
    sink.close()
    sub.close()


def _wait(check: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_settled_counts_only_what_the_broker_confirmed(restartable_broker: Broker) -> None:
    """``handed``/``settled``: an event message waiting for the broker is not settled (a
    cluster head does not acknowledge its camera's outbox item); confirmed, or dropped from
    a full queue, it is."""
    broker = restartable_broker
    sink = sink_for(broker, prefix(), qos=1, queue_size=3)
    try:
        sink.publish(event(0))
        assert sink.handed() == 2, "two topics"
        _wait(lambda: sink.settled() == 2, "the broker's PUBACKs settle both")
        broker.stop()
        _wait(lambda: not sink.connected, "the sink sees the broker gone")
        sink.publish(event(1))
        sink.publish_counts("front door", COUNTS)  # a retained state: not counted
        assert (sink.handed(), sink.settled()) == (4, 2)
        sink.publish(event(2))  # five messages for a queue of three: the oldest two dropped
        assert (sink.handed(), sink.settled()) == (6, 3), "a dropped one is given up"
        broker.start()
        _wait(lambda: sink.settled() == 6, "sent after the reconnection and confirmed")
    finally:
        sink.close()


def test_unreachable_broker_never_blocks() -> None:
    cfg = MqttConfig(host="127.0.0.1", port=free_port(), queue_size=3)
    sink = MqttSink(cfg)
    started = time.monotonic()
    for n in range(10):
        sink.publish(event(n))
        sink.publish_counts("front door", COUNTS)
    assert time.monotonic() - started < 0.5
    assert not sink.wait_connected(0.2)
    assert (sink.stats.queued, sink.stats.dropped) == (3, 17)
    sink.close()


def test_password_auth(auth_broker: Broker) -> None:
    p = prefix()
    sub = Subscriber(
        auth_broker.port, [f"{p}/events"], username="vigil", password="correct horse battery"
    )
    with sink_for(auth_broker, p, username="vigil", password="correct horse battery") as sink:
        sink.publish(event(1))
        assert json.loads(sub.take(f"{p}/events").payload)["id"] == "e1"
    sub.close()

    bad = MqttSink(
        MqttConfig(
            host="127.0.0.1",
            port=auth_broker.port,
            username="vigil",
            password="wrong",
            client_id=f"bad-{p}",
        )
    )
    try:
        assert not bad.wait_connected(1.5)
        assert bad.last_error is not None
        assert "refused" in bad.last_error
    finally:
        bad.close()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"topic_prefix": "vigil/x"}, "cannot be used in an MQTT topic"),
        ({"topic_prefix": "#"}, "cannot be used in an MQTT topic"),
        ({"password": "x"}, "username is not"),
        ({"reconnect_min_s": 10, "reconnect_max_s": 5}, "reconnect_max_s"),
        ({"tls": {"cert_file": "a.pem"}}, "together"),
        ({"qos": 3}, "qos"),
        ({"hostname": "x"}, "Extra inputs"),
    ],
)
def test_config_errors(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        MqttConfig(**values)


def test_unusable_names_are_config_errors() -> None:
    sink = MqttSink(MqttConfig(host="127.0.0.1", port=free_port()))
    try:
        assert sink.label_topic("Front Door", "traffic light") == "vigil/Front_Door/traffic_light"
        with pytest.raises(ConfigError, match="no letters or digits"):
            sink.camera_topic("///")
        with pytest.raises(ConfigError, match="collide"):
            sink.label_topic("cam", "events")
        with pytest.raises(ConfigError, match="collide"):
            sink.label_topic("cam", "zone")  # the level of the per-zone counters
        with pytest.raises(ConfigError, match="same MQTT topic"):
            sink.announce({"cam": CameraDiscovery(labels=["a b", "a_b"])})
    finally:
        sink.close()


def test_delivered_counts_broker_acknowledgements(broker: Broker) -> None:
    """``stats.delivered`` (``vigil_mqtt_messages_total{outcome="delivered"}``) grows with the
    broker's PUBACKs, and not for messages that only wait in the queue."""
    p = prefix()
    sink = sink_for(broker, p)
    try:
        deadline = time.monotonic() + 10
        while sink.stats.delivered < sink.stats.published and time.monotonic() < deadline:
            time.sleep(0.02)  # the availability sent on connecting
        before = sink.stats.delivered
        assert before == sink.stats.published >= 1
        for n in range(3):
            sink.publish(event(n))  # two messages each: global and camera topic
        while sink.stats.delivered < before + 6 and time.monotonic() < deadline + 10:
            time.sleep(0.02)
        assert sink.stats.delivered == before + 6
    finally:
        sink.close()
    unreachable = MqttSink(MqttConfig(host="127.0.0.1", port=free_port()))
    try:
        unreachable.publish(event(1))
        assert not unreachable.wait_connected(0.3)
        assert (unreachable.stats.delivered, unreachable.stats.queued) == (0, 2)
    finally:
        unreachable.close()


def test_default_client_ids_are_each_sinks_own_so_no_sink_drops_another(broker: Broker) -> None:
    """A cluster's head and replica (one configuration, no ``client_id``) on one broker:
    each connection gets an id of its own, so the broker drops neither (with one id it drops
    the older connection at each connect, and the two then take turns)."""
    p = prefix()
    sub = Subscriber(broker.port, [f"{p}/events"])
    head = sink_for(broker, p, client_id=None)
    replica = sink_for(broker, p, client_id=None)
    try:
        assert head.client_id != replica.client_id
        for sink in (head, replica):
            assert sink.client_id.startswith(f"n{p}-"), "named after node_id, then the host"
            assert f"-{os.getpid()}-" in sink.client_id
        for n in range(1, 4):  # in turns: a drop of either shows before the last one arrives
            (head if n % 2 else replica).publish(event(n))
            assert json.loads(sub.take(f"{p}/events", timeout=10).payload)["id"] == f"e{n}"
        assert (head.stats.connections, replica.stats.connections) == (1, 1), "never dropped"
        assert head.connected
        assert replica.connected
    finally:
        head.close()
        replica.close()
        sub.close()


def test_a_client_id_set_in_the_configuration_is_used_as_given() -> None:
    sink = MqttSink(MqttConfig(host="127.0.0.1", port=free_port(), client_id="vigil-hall"))
    try:
        assert sink.client_id == "vigil-hall"
    finally:
        sink.close()


def test_the_last_will_of_the_process_before_is_answered_online(broker: Broker) -> None:
    """The supervisor before a hand-over dies (kill -9) after its successor connected: the
    broker publishes its Last Will (``offline``) on the availability both share, and the
    successor, which is up, answers ``online`` again, so Home Assistant keeps its entities."""
    p = prefix()
    script = (
        "import time\n"
        "from vigil.alerts.mqtt import MqttSink\n"
        "from vigil.config.alerts import MqttConfig\n"
        f"s = MqttSink(MqttConfig(host='127.0.0.1', port={broker.port}, topic_prefix='{p}'))\n"
        "assert s.wait_connected(10)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    sub: Subscriber | None = None
    successor: MqttSink | None = None
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == b"ready"
        successor = sink_for(broker, p, client_id=None)
        sub = Subscriber(broker.port, [f"{p}/availability"])
        assert sub.take(f"{p}/availability").payload == b"online"
        os.kill(child.pid, signal.SIGKILL)  # no DISCONNECT: the broker sends the Will
        # The successor's own ``online`` may still be on its way (after the retained one):
        # passed over until the Will arrives.
        deadline = time.monotonic() + 10
        while sub.take(f"{p}/availability", timeout=10).payload != b"offline":
            assert time.monotonic() < deadline, "no Last Will on the availability topic"
        assert sub.take(f"{p}/availability", timeout=10).payload == b"online"
        late = Subscriber(broker.port, [f"{p}/availability"])
        assert late.take(f"{p}/availability").payload == b"online", "what stays retained"
        late.close()
        assert successor.stats.connections == 1
    finally:
        child.kill()
        child.wait(10)
        if child.stdout is not None:
            child.stdout.close()
        if successor is not None:
            successor.close()
        if sub is not None:
            sub.close()


def test_home_assistant_ids_do_not_depend_on_the_client_id(broker: Broker) -> None:
    """Two processes (ids of their own) announce the same cameras: the same discovery topics
    and the same configs (``unique_id`` from ``node_id``), so a hand-over or a restart makes
    no new entities in Home Assistant."""
    p = prefix()
    sub = Subscriber(broker.port, [f"ha{p}/#"])
    cameras = {"cam": CameraDiscovery(labels=["person"], activity=True, switches=SWITCHES)}
    announced: list[dict[str, bytes]] = []
    for _ in range(2):
        sink = sink_for(broker, p, client_id=None)
        try:
            sink.announce(cameras)
            got = {m.topic: m.payload for m in sub.drain()}
        finally:
            sink.close()
        assert got, "discovery configs were published"
        announced.append(got)
    assert announced[0] == announced[1]
    assert all(b'"unique_id":"n' + p.encode() + b"_" in v for v in announced[0].values())
    sub.close()
