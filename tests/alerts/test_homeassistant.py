"""Home Assistant over MQTT, on a real Mosquitto: every discovery payload is checked against
the keys Home Assistant documents for its platform, and a real Supervisor (a synthetic
camera, the motion detector) drives the states, the event entities, the redacted snapshot
camera and the detection/recording switches."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import paho.mqtt.client as mqtt
import pytest
from alert_servers import Broker, Subscriber

from vigil.alerts.mqtt import CameraDiscovery, MqttSink
from vigil.config.alerts import MqttConfig
from vigil.config.models import VigilConfig
from vigil.ingest import Backoff
from vigil.runtime.serve import SnapshotPublisher, Supervisor
from vigil.types import Direction, Event, EventState, RuleEvent, RuleEventKind, Snapshot

# -- Home Assistant's documented MQTT discovery keys ------------------------------------------
# From the "Configuration Variables" of each platform's page (home-assistant.io/integrations/
# <platform>.mqtt) and the discovery page (home-assistant.io/integrations/mqtt, "device" and
# "origin"); full names only (a payload may abbreviate them, Vigil does not).

#: Keys every MQTT entity platform takes.
COMMON = frozenset(
    {
        "availability",
        "availability_mode",
        "availability_template",
        "availability_topic",
        "default_entity_id",
        "device",
        "enabled_by_default",
        "encoding",
        "entity_category",
        "entity_picture",
        "icon",
        "json_attributes_template",
        "json_attributes_topic",
        "name",
        "object_id",
        "origin",
        "payload_available",
        "payload_not_available",
        "platform",
        "qos",
        "unique_id",
    }
)
PLATFORM_KEYS: dict[str, frozenset[str]] = {
    "sensor": frozenset(
        {
            "device_class",
            "expire_after",
            "force_update",
            "last_reset_value_template",
            "options",
            "state_class",
            "state_topic",
            "suggested_display_precision",
            "unit_of_measurement",
            "value_template",
        }
    ),
    "binary_sensor": frozenset(
        {
            "device_class",
            "expire_after",
            "force_update",
            "off_delay",
            "payload_off",
            "payload_on",
            "state_topic",
            "value_template",
        }
    ),
    "event": frozenset({"device_class", "event_types", "state_topic", "value_template"}),
    "camera": frozenset({"image_encoding", "topic"}),
    "switch": frozenset(
        {
            "command_template",
            "command_topic",
            "device_class",
            "optimistic",
            "payload_off",
            "payload_on",
            "retain",
            "state_off",
            "state_on",
            "state_topic",
            "value_template",
        }
    ),
}
REQUIRED: dict[str, frozenset[str]] = {
    "sensor": frozenset({"state_topic"}),
    "binary_sensor": frozenset({"state_topic"}),
    "event": frozenset({"state_topic", "event_types"}),
    "camera": frozenset({"topic"}),
    "switch": frozenset({"command_topic"}),
}
DEVICE_KEYS = frozenset(
    {
        "configuration_url",
        "connections",
        "hw_version",
        "identifiers",
        "manufacturer",
        "model",
        "model_id",
        "name",
        "serial_number",
        "suggested_area",
        "sw_version",
        "via_device",
    }
)
ORIGIN_KEYS = frozenset({"name", "sw_version", "support_url"})
#: Values Home Assistant accepts for the device classes Vigil uses.
BINARY_SENSOR_CLASSES = frozenset({"motion", "occupancy", "presence", "moving"})
SENSOR_STATE_CLASSES = frozenset({"measurement", "total", "total_increasing"})


def check_discovery(topic: str, config: dict[str, Any], discovery_prefix: str) -> str:
    """Fail unless ``config`` (published on ``topic``) uses only documented keys of its
    platform, has the required ones, and the documented shapes; returns the platform."""
    parts = topic.split("/")
    assert (parts[0], parts[-1], len(parts)) == (discovery_prefix, "config", 5), topic
    platform = parts[1]
    assert platform in PLATFORM_KEYS, f"{topic}: platform {platform} is not one Vigil should use"
    allowed = COMMON | PLATFORM_KEYS[platform]
    assert not set(config) - allowed, f"{topic}: undocumented keys {set(config) - allowed}"
    assert REQUIRED[platform] <= set(config), f"{topic}: missing {REQUIRED[platform]}"
    assert set(config["device"]) <= DEVICE_KEYS
    assert config["device"]["identifiers"]
    assert set(config["origin"]) <= ORIGIN_KEYS
    assert config["origin"]["name"]
    assert isinstance(config["unique_id"], str)
    assert config["unique_id"]
    assert config["availability_mode"] in ("all", "any", "latest")
    assert all(set(a) <= {"topic", "payload_available", "payload_not_available",
                          "value_template"} for a in config["availability"])  # fmt: skip
    for key in ("state_topic", "command_topic", "topic"):
        if key in config:
            assert not {"+", "#"} & set(config[key]), (topic, key)
    if platform == "binary_sensor" and "device_class" in config:
        assert config["device_class"] in BINARY_SENSOR_CLASSES
    if platform == "sensor" and "state_class" in config:
        assert config["state_class"] in SENSOR_STATE_CLASSES
    if platform == "event":
        types = config["event_types"]
        assert isinstance(types, list)
        assert types
        assert all(isinstance(t, str) for t in types)
    return platform


def test_the_checker_refuses_what_home_assistant_does_not_document() -> None:
    good = {"state_topic": "v/c/activity", "unique_id": "u", "device": {"identifiers": ["d"]},
            "origin": {"name": "Vigil"}, "availability": [{"topic": "v/availability"}],
            "availability_mode": "all"}  # fmt: skip
    assert check_discovery("ha/binary_sensor/n/o/config", good, "ha") == "binary_sensor"
    with pytest.raises(AssertionError, match="undocumented"):
        check_discovery("ha/binary_sensor/n/o/config", {**good, "state_class": "x"}, "ha")
    with pytest.raises(AssertionError, match="missing"):
        check_discovery("ha/event/n/o/config", good, "ha")


# -- the sink on its own ----------------------------------------------------------------------


def prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


def mqtt_config(broker: Broker, p: str) -> MqttConfig:
    return MqttConfig(host="127.0.0.1", port=broker.port, topic_prefix=p, client_id=f"v-{p}",
                      node_id=f"n{p}", discovery_prefix=f"ha{p}", reconnect_min_s=1,
                      reconnect_max_s=1)  # fmt: skip


FULL = CameraDiscovery(
    labels=["person", "car"],
    lines=["gate"],
    zones=["porch"],
    name="Door",
    activity=True,
    snapshot=True,
    switches=("detection", "recording"),
)


def test_every_discovery_payload_is_documented_and_complete(broker: Broker) -> None:
    p = prefix()
    with MqttSink(mqtt_config(broker, p)) as sink:
        assert sink.wait_connected(10), sink.last_error
        sink.announce({"front door": FULL})
        time.sleep(0.2)
        late = Subscriber(broker.port, [f"ha{p}/#", f"{p}/#"])
        got = {m.topic: m for m in late.drain()}
        late.close()
    configs = {t: json.loads(m.payload) for t, m in got.items() if t.startswith(f"ha{p}/")}
    platforms = {t: check_discovery(t, c, f"ha{p}") for t, c in configs.items()}
    node = f"n{p}"
    assert sorted(t.removeprefix(f"ha{p}/").removesuffix("/config") for t in configs) == sorted([
        f"sensor/{node}/front_door_person_occupancy", f"sensor/{node}/front_door_car_occupancy",
        f"sensor/{node}/front_door_gate_a_to_b", f"sensor/{node}/front_door_gate_b_to_a",
        f"binary_sensor/{node}/front_door_activity",
        f"binary_sensor/{node}/front_door_person_present",
        f"binary_sensor/{node}/front_door_car_present",
        f"binary_sensor/{node}/front_door_zone_porch_occupied",
        f"event/{node}/front_door_line_crossing", f"event/{node}/front_door_zone_entry",
        f"camera/{node}/front_door_snapshot",
        f"switch/{node}/front_door_detection", f"switch/{node}/front_door_recording",
    ])  # fmt: skip
    assert len({c["unique_id"] for c in configs.values()}) == len(configs)
    by_id = {c["unique_id"].removeprefix(f"{node}_"): c for c in configs.values()}
    assert by_id["front_door_line_crossing"]["event_types"] == ["gate_a_to_b", "gate_b_to_a"]
    assert by_id["front_door_zone_entry"]["event_types"] == ["porch"]
    assert by_id["front_door_snapshot"]["topic"] == f"{p}/front_door/snapshot"
    assert by_id["front_door_detection"]["command_topic"] == f"{p}/front_door/detection/set"
    assert by_id["front_door_activity"]["device_class"] == "motion"
    assert set(platforms.values()) == set(PLATFORM_KEYS)
    # The binary sensors start OFF (retained), not "unknown".
    states = {t: m.payload for t, m in got.items() if t.startswith(f"{p}/front_door/")}
    for level in ("activity", "present/person", "present/car", "zone/porch"):
        assert states[f"{p}/front_door/{level}"] == b"OFF", level


def _event(state: EventState, n: int, label: str, zones_now: list[str]) -> Event:
    return Event(
        id=f"e{n}",
        camera_id="front door",
        label=label,
        class_id=0,
        track_id=n,
        start=1.0,
        end=None,
        state=state,
        zones=list(zones_now),
        zones_now=zones_now,
    )


def test_presence_follows_open_events_and_hits_become_ha_events(broker: Broker) -> None:
    p = prefix()
    sub = Subscriber(broker.port, [f"{p}/front_door/#"])
    with MqttSink(mqtt_config(broker, p)) as sink:
        assert sink.wait_connected(10), sink.last_error
        sink.announce({"front door": FULL})
        sink.publish(_event(EventState.START, 1, "person", ["porch"]))
        sink.publish(_event(EventState.START, 2, "car", []))
        sink.publish(_event(EventState.END, 1, "person", []))
        hit = RuleEvent(rule_id="gate", kind=RuleEventKind.CROSS, camera_id="front door",
                        track_id=2, class_id=2, label="car", time=5.0, point=(0.5, 0.5),
                        direction=Direction.B_TO_A)  # fmt: skip
        entry = RuleEvent(
            rule_id="porch",
            kind=RuleEventKind.ENTER,
            camera_id="front door",
            track_id=1,
            class_id=0,
            label="person",
            time=4.0,
            point=(0.2, 0.8),
        )
        sink.publish_rule_hits("front door", [hit, entry])
        msgs = sub.drain(0.5)
    sub.close()
    seen: dict[str, list[bytes]] = {}
    for m in msgs:
        seen.setdefault(m.topic.removeprefix(f"{p}/front_door/"), []).append(m.payload)
    assert seen["present/person"] == [b"OFF", b"ON", b"OFF"]
    assert seen["present/car"] == [b"OFF", b"ON"]
    assert seen["zone/porch"] == [b"OFF", b"ON", b"OFF"]
    assert seen["activity"] == [b"OFF", b"ON"]  # the car is still there
    crossing = json.loads(seen["crossing"][0])
    assert crossing == {"event_type": "gate_b_to_a", "rule": "gate", "label": "car",
                        "track_id": 2, "time": 5.0, "direction": "b_to_a"}  # fmt: skip
    assert json.loads(seen["zone_entry"][0])["event_type"] == "porch"
    ha_events = [m for m in msgs if m.topic.endswith(("/crossing", "/zone_entry"))]
    assert not any(m.retain for m in ha_events), "a retained event would fire on HA restart"


def test_commands_reach_the_handler_and_bad_ones_do_not(broker: Broker) -> None:
    p = prefix()
    calls: list[tuple[str, str, bool]] = []
    with MqttSink(mqtt_config(broker, p)) as sink:
        sink.on_command = lambda *args: calls.append(args)
        assert sink.wait_connected(10), sink.last_error
        sink.announce({"front door": FULL, "yard": CameraDiscovery(switches=("detection",))})
        time.sleep(0.3)  # the subscription is made on connect; give it its SUBACK
        pub = _publisher(broker)
        for topic, payload in [(f"{p}/front_door/recording/set", "off"),
                               (f"{p}/yard/recording/set", "OFF"),  # yard has no such switch
                               (f"{p}/front_door/detection/set", "maybe"),
                               (f"{p}/nobody/detection/set", "ON"),
                               (f"{p}/yard/detection/set", "ON")]:  # fmt: skip
            pub.publish(topic, payload, qos=1).wait_for_publish(5)
        _wait(lambda: len(calls) >= 2, 10, "commands did not arrive")
        time.sleep(0.3)
        pub.disconnect()
    assert calls == [("front door", "recording", False), ("yard", "detection", True)]


def _publisher(broker: Broker) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    return client


def _wait(what: Callable[[], bool], timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} within {timeout} s")
        time.sleep(0.05)


# -- a running Supervisor ---------------------------------------------------------------------

SCENE = "synthetic://?width=640&height=360&fps=10&duration=600"
LEFT_HALF = [[0, 0], [0.5, 0], [0.5, 1], [0, 1]]


def supervisor_config(tmp: Path, mqtt_cfg: MqttConfig, cameras: dict[str, Any]) -> VigilConfig:
    return VigilConfig.model_validate({
        "detect": {"model": "motion", "fps": 10},
        "tracker": {"new_track_threshold": 0.5, "high_threshold": 0.4},
        "data_dir": str(tmp / "data"),
        "redact": {"masks": [LEFT_HALF]},
        "mqtt": mqtt_cfg.model_dump(mode="json"),
        "cameras": cameras,
    })  # fmt: skip


def fast_backoff() -> Backoff:
    return Backoff(initial=0.2, factor=1.5, max=0.5, jitter=0.0)


@pytest.fixture
def running(broker: Broker, tmp_path: Path) -> Iterator[tuple[Supervisor, str, Subscriber]]:
    p = prefix()
    config = supervisor_config(tmp_path, mqtt_config(broker, p), {"cam": {
        "sources": [{"url": SCENE}],
        "lines": {"middle": {"points": [[0.05, 0.5], [0.95, 0.5]]}},
        "zones": {"lower": {"polygon": [[0, 0.55], [1, 0.55], [1, 1], [0, 1]]}},
    }})  # fmt: skip
    sub = Subscriber(broker.port, [f"{p}/#", f"ha{p}/#"])
    supervisor = Supervisor(config, backoff=fast_backoff, worker_processes=0)
    supervisor.start()
    try:
        yield supervisor, p, sub
    finally:
        supervisor.stop()
        sub.close()


def _collect(
    sub: Subscriber,
    until: Callable[[dict[str, list[bytes]]], bool],
    seen: dict[str, list[bytes]],
    timeout: float,
    message: str,
) -> None:
    deadline = time.monotonic() + timeout
    while not until(seen):
        assert time.monotonic() < deadline, f"{message} within {timeout} s: {sorted(seen)}"
        for m in sub.drain(0.2):
            seen.setdefault(m.topic, []).append(m.payload)


def test_a_running_camera_drives_states_events_and_a_redacted_snapshot(
    running: tuple[Supervisor, str, Subscriber],
) -> None:
    _supervisor, p, sub = running
    seen: dict[str, list[bytes]] = {}
    need = [f"{p}/cam/crossing", f"{p}/cam/zone_entry", f"{p}/cam/snapshot"]
    _collect(sub, lambda s: all(t in s for t in need) and b"ON" in s.get(f"{p}/cam/activity",
             []), seen, 90, "no crossing, zone entry, snapshot and activity")  # fmt: skip
    configs = {t: json.loads(v[-1]) for t, v in seen.items() if t.startswith(f"ha{p}/") and v[-1]}
    platforms = {check_discovery(t, c, f"ha{p}") for t, c in configs.items()}
    # A synthetic scene is rendered, not encoded: nothing to record, so no recording switch.
    assert platforms == {"sensor", "binary_sensor", "event", "camera", "switch"}
    crossing_types = next(c["event_types"] for c in configs.values()
                          if c["unique_id"].endswith("cam_line_crossing"))  # fmt: skip
    for raw in seen[f"{p}/cam/crossing"]:
        body = json.loads(raw)
        assert body["event_type"] in crossing_types
        assert body["rule"] == "middle"
    assert {json.loads(raw)["event_type"] for raw in seen[f"{p}/cam/zone_entry"]} == {"lower"}
    assert seen[f"{p}/cam/detection"][-1] == b"ON"
    image = cv2.imdecode(np.frombuffer(seen[f"{p}/cam/snapshot"][-1], np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "the camera entity gets a JPEG"
    middle = image.shape[1] // 2
    left, right = float(image[:, : middle - 4].mean()), float(image[:, middle + 4 :].mean())
    assert left < 3.0, f"the masked half is not black in the snapshot (mean {left:.1f})"
    assert right > 20.0, "the rest of the picture is there"


def test_the_detection_switch_stops_and_restarts_analysis(
    running: tuple[Supervisor, str, Subscriber],
    broker: Broker,
) -> None:
    supervisor, p, sub = running
    worker = supervisor.workers["cam"]
    _wait(lambda: worker.analysed > 5, 60, "the camera did not analyse frames")
    pub = _publisher(broker)
    try:
        pub.publish(f"{p}/cam/detection/set", "OFF", qos=1).wait_for_publish(5)
        seen: dict[str, list[bytes]] = {}
        _collect(sub, lambda s: s.get(f"{p}/cam/detection", [])[-1:] == [b"OFF"], seen, 30,
                 "the detection state did not turn OFF")  # fmt: skip
        assert not worker.detection
        analysed, frames = worker.analysed, worker.frames
        _wait(lambda: worker.frames > frames + 10, 30, "frames stopped arriving")
        assert worker.analysed == analysed, "frames were analysed while detection was off"
        _collect(sub, lambda s: s.get(f"{p}/cam/activity", [])[-1:] == [b"OFF"], seen, 30,
                 "open events did not end when detection was switched off")  # fmt: skip
        pub.publish(f"{p}/cam/detection/set", "ON", qos=1).wait_for_publish(5)
        _collect(sub, lambda s: s.get(f"{p}/cam/detection", [])[-1:] == [b"ON"], seen, 30,
                 "the detection state did not turn ON")  # fmt: skip
        _wait(lambda: worker.analysed > analysed, 30, "analysis did not resume")
    finally:
        pub.disconnect()


def test_the_recording_switch_pauses_the_recorder(broker: Broker, tmp_path: Path) -> None:
    p = prefix()
    # A file camera records (stream copy); it need not exist for the switch to work.
    config = supervisor_config(tmp_path, mqtt_config(broker, p), {
        "door": {"sources": [{"url": str(tmp_path / "missing.mp4")}], "record": {"mode":
                 "continuous"}},
    })  # fmt: skip
    sub = Subscriber(broker.port, [f"{p}/door/recording", f"ha{p}/switch/#"])
    supervisor = Supervisor(config, backoff=fast_backoff, worker_processes=0)
    supervisor.start()
    pub = _publisher(broker)
    try:
        recorder = supervisor.recorders["door"]
        assert sub.take(f"{p}/door/recording", 10).payload == b"ON"
        pub.publish(f"{p}/door/recording/set", "OFF", qos=1).wait_for_publish(5)
        assert sub.take(f"{p}/door/recording", 10).payload == b"OFF"
        assert not recorder.enabled
        assert not recorder.recording_at(time.time())
        pub.publish(f"{p}/door/recording/set", "ON", qos=1).wait_for_publish(5)
        assert sub.take(f"{p}/door/recording", 10).payload == b"ON"
        assert recorder.recording_at(time.time())
    finally:
        pub.disconnect()
        supervisor.stop()
        sub.close()


def test_snapshots_are_redacted_at_full_size_and_sent_at_most_1280_wide(tmp_path: Path) -> None:
    config = VigilConfig.model_validate({
        "detect": {"model": "motion"}, "data_dir": str(tmp_path), "redact": {"masks": [LEFT_HALF]},
        "cameras": {"cam": {"sources": [{"url": SCENE}]}},
    })  # fmt: skip
    sent: list[tuple[str, bytes]] = []
    publisher = SnapshotPublisher(config, lambda camera, jpeg: sent.append((camera, jpeg)))
    try:
        publisher.publish(
            Event(
                id="e1",
                camera_id="cam",
                label="motion",
                class_id=0,
                track_id=1,
                start=1.0,
                end=None,
                state=EventState.START,
                snapshot=Snapshot(
                    seq=1,
                    time=1.0,
                    box=(0, 0, 10, 10),
                    score=1.0,
                    image=np.full((1000, 2000, 3), 200, np.uint8),
                ),
            )
        )
        _wait(lambda: bool(sent), 60, "no snapshot sent")
    finally:
        publisher.close()
    image = cv2.imdecode(np.frombuffer(sent[0][1], np.uint8), cv2.IMREAD_COLOR)
    assert image.shape[:2] == (640, 1280)
    assert float(image[:, :630].mean()) < 3.0, "the mask is black"
    assert float(image[:, 650:].mean()) > 190.0
