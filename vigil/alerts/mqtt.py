"""MQTT: events, availability, counters and Home Assistant discovery, on paho-mqtt 2.

Topics (``vigil`` is `MqttConfig.topic_prefix`; camera, label and line names are turned into
one topic level each by `topic_level`: runs of characters other than letters, digits, ``_``,
``.`` and ``-`` become ``_``, so ``"traffic light"`` is ``traffic_light``)::

    vigil/availability                   online | offline   retained; offline is the Last Will
    vigil/events                         every lifecycle change of every event (JSON, QoS 1)
    vigil/<camera>/events                the same, for one camera
    vigil/<camera>/availability          online | offline   retained
    vigil/<camera>/recording             {"state": "failed", "error": "recording failed:
                                         disk full"} (JSON, retained; state recording,
                                         reconnecting, failed or stopped)
    vigil/<camera>/<label>               objects of that label in the camera's zones (an int)
    vigil/<camera>/line/<line>/<dir>     crossings of a line, dir a_to_b | b_to_a (an int)
    vigil/<camera>/line/<line>/<dir>/<label>          the same, for one class
    vigil/<camera>/zone/<zone>/occupancy[/<label>]    objects inside a zone now (an int)
    vigil/<camera>/zone/<zone>/entries[/<label>]      entries of a zone (an int)
    vigil/<camera>/zone/<zone>/events/<kind>[/<label>]  a zone's dwell, loiter, speeding,
                                         wrong_way and stopped events (an int)
    vigil/<camera>/zone/<zone>/stopped   vehicles stopped in the zone now (zones with `stopped`)
    vigil/<camera>/zone/<zone>/speed[/<label>]        mean speed of the visits that ended, in
                                         the zone's unit, km/h or mph (calibrated zones)

Event payloads are `vigil.events.sinks.event_to_dict` as compact JSON: no pixels. Counter
states are retained so a subscriber that starts later (Home Assistant after a restart) reads
the current value at once. ``<label>`` occupancy is the *largest* occupancy of that label
among the camera's zones: an object standing where two zones overlap is counted once, and with
one zone (the usual "whole view" setup) it is exact; the ``zone/...`` topics give each zone's
own figures, per class. Per-class topics appear once that class has been seen there.

Home Assistant discovery (`MqttSink.announce`): one retained ``sensor`` config per camera and
label (occupancy, ``state_class: measurement``) and per camera, line and direction (crossings,
``state_class: total_increasing``) at ``homeassistant/sensor/<node_id>/<object_id>/config``,
each with ``unique_id``, a ``device`` block per camera and ``availability`` listing *both* the
process topic (whose Last Will marks every sensor unavailable when Vigil dies) and the
camera's topic (``availability_mode: all``). A sensor that disappears from a later
announcement is removed from Home Assistant (an empty retained config).

Connection: the network loop runs on paho's background thread, connects asynchronously and
reconnects with exponential backoff (``reconnect_min_s`` doubling to ``reconnect_max_s``).
Nothing here waits on the network: while disconnected, events wait in a bounded queue (the
oldest are dropped beyond ``queue_size`` and counted), and states (availability, discovery,
counters) are kept as latest values and sent again on every connection, so a broker that
restarted without persistence still ends up with the right retained topics.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

from vigil.config.alerts import MqttConfig
from vigil.errors import ConfigError, VigilError
from vigil.events.sinks import event_to_dict
from vigil.types import Direction, Event

log = logging.getLogger(__name__)

ONLINE = "online"
OFFLINE = "offline"

#: Topic levels under a camera that labels must not take.
_RESERVED = frozenset({"events", "availability", "line", "zone", "recording"})
#: Zone event counters of `RuleEngine.counts()` and their topic level under ``events/``.
_ZONE_EVENTS = ("dwell", "loiter", "speeding", "wrong_way", "stopped")
_NOT_LEVEL = re.compile(r"[^A-Za-z0-9_.-]+")


def topic_level(name: str, what: str = "name") -> str:
    """``name`` as one MQTT topic level and Home Assistant id part (see the module docstring).

    Raises `ConfigError` when nothing usable is left (a name made only of symbols).
    """
    level = _NOT_LEVEL.sub("_", name.strip()).strip("_")
    if not level:
        raise ConfigError(
            f"{what} {name!r} has no letters or digits to build an MQTT topic from; rename it"
        )
    return level


@dataclass(frozen=True, slots=True)
class CameraDiscovery:
    """What Home Assistant should show for one camera: an occupancy sensor per label and a
    crossing counter per line and direction. ``name`` is the device's display name (the
    camera id when None)."""

    labels: Sequence[str] = ()
    lines: Sequence[str] = ()
    name: str | None = None


@dataclass(frozen=True, slots=True)
class MqttStats:
    """Counters since the sink started: ``published`` messages handed to the client,
    ``delivered`` those the broker acknowledged (QoS 1/2) or that went out on the socket
    (QoS 0), ``dropped`` those lost to a full queue."""

    connected: bool
    connections: int
    published: int
    delivered: int
    queued: int
    dropped: int


class MqttSink:
    """An `EventSink` publishing to an MQTT broker; thread-safe; never blocks the pipeline.

    Construction starts the background connection and returns at once (the broker may be down:
    the sink keeps trying). Call `close` at shutdown: it marks Vigil and its cameras offline and
    disconnects cleanly (a clean disconnect does not fire the Last Will, hence the explicit
    ``offline``).
    """

    def __init__(self, config: MqttConfig) -> None:
        self.config = config
        self._prefix = config.topic_prefix
        self._lock = threading.RLock()
        self._connected_event = threading.Event()
        self._queue: deque[tuple[str, bytes]] = deque()
        self._online: dict[str, bool] = {}
        self._discovery: dict[str, bytes] = {}
        self._states: dict[str, bytes] = {}
        self._announced: dict[str, CameraDiscovery] = {}
        self._connected = False
        self._closed = False
        self._connections = 0
        self._published = 0
        self._delivered = 0
        self._delivered_lock = threading.Lock()
        self._dropped = 0
        #: Why the last connection attempt failed, for status pages (None when connected).
        self.last_error: str | None = None
        self._client = self._make_client()
        self._client.connect_async(config.host, config.port, keepalive=config.keepalive_s)
        self._client.loop_start()

    # ----------------------------------------------------------------- topics

    @property
    def availability_topic(self) -> str:
        return f"{self._prefix}/availability"

    @property
    def events_topic(self) -> str:
        return f"{self._prefix}/events"

    def camera_topic(self, camera: str, *levels: str) -> str:
        """``<prefix>/<camera>/<levels...>`` with every name made a topic level."""
        parts = [topic_level(camera, "camera"), *(topic_level(x) for x in levels)]
        return "/".join([self._prefix, *parts])

    def label_topic(self, camera: str, label: str) -> str:
        level = topic_level(label, "label")
        if level in _RESERVED:
            raise ConfigError(
                f"label {label!r} would collide with the topic {self._prefix}/<camera>/{level}; "
                "rename the class"
            )
        return self.camera_topic(camera, level)

    def line_topic(
        self, camera: str, line: str, direction: Direction, label: str | None = None
    ) -> str:
        levels = [direction.value] if label is None else [direction.value, label]
        return self.camera_topic(camera, "line", line, *levels)

    def zone_topic(self, camera: str, zone: str, *levels: str) -> str:
        return self.camera_topic(camera, "zone", zone, *levels)

    # ----------------------------------------------------------------- client

    def _make_client(self) -> mqtt.Client:
        cfg = self.config
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=cfg.client_id, protocol=mqtt.MQTTv311
        )
        # Paho's own queue holds messages handed to it and not yet acknowledged. It is bounded
        # too, with room for one flush of our queue (events held while the connection was
        # known to be down) plus the retained states sent again on every connection.
        client.max_queued_messages_set(2 * cfg.queue_size + 1000)
        client.reconnect_delay_set(cfg.reconnect_min_s, cfg.reconnect_max_s)
        client.will_set(self.availability_topic, OFFLINE, qos=1, retain=True)
        if cfg.username is not None:
            password = None if cfg.password is None else cfg.password.get_secret_value()
            client.username_pw_set(cfg.username, password)
        if cfg.tls is not None:
            tls = cfg.tls
            try:
                client.tls_set(
                    ca_certs=None if tls.ca_file is None else str(tls.ca_file),
                    certfile=None if tls.cert_file is None else str(tls.cert_file),
                    keyfile=None if tls.key_file is None else str(tls.key_file),
                )
            except (OSError, ValueError) as exc:
                raise ConfigError(
                    f"cannot set up MQTT TLS: {exc}; check mqtt.tls.ca_file, cert_file and "
                    "key_file (readable PEM files)"
                ) from exc
            client.tls_insecure_set(tls.insecure)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        return client

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        properties: Any,
    ) -> None:
        if reason.is_failure:
            self.last_error = f"broker refused the connection: {reason}"
            log.error(
                "MQTT broker %s:%d refused Vigil: %s; check mqtt.username/password and the "
                "broker's ACL", self.config.host, self.config.port, reason,
            )
            return
        with self._lock:
            self._connected = True
            self._connections += 1
            self.last_error = None
            self._resync()
        self._connected_event.set()
        log.info("MQTT connected to %s:%d", self.config.host, self.config.port)

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        properties: Any,
    ) -> None:
        with self._lock:
            was = self._connected
            self._connected = False
            self._connected_event.clear()
        if was and not self._closed:
            self.last_error = f"connection lost: {reason}"
            log.warning("MQTT connection to %s:%d lost (%s); reconnecting",
                        self.config.host, self.config.port, reason)

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason: ReasonCode, properties: Any
    ) -> None:
        # Its own lock: paho calls this holding its callback lock, and ``self._lock`` is held
        # around calls into paho, so taking ``self._lock`` here could deadlock.
        with self._delivered_lock:
            self._delivered += 1

    def _resync(self) -> None:
        """On every connection: Vigil online, every retained state again, then queued events."""
        self._send(self.availability_topic, ONLINE.encode(), retain=True)
        for topic, payload in self._discovery.items():
            self._send(topic, payload, retain=True)
        for camera, online in self._online.items():
            self._send(self._camera_availability(camera), _availability(online), retain=True)
        for topic, payload in self._states.items():
            self._send(topic, payload, retain=True)
        while self._queue and self._connected:
            topic, payload = self._queue.popleft()
            self._send(topic, payload, retain=False)

    def _send(self, topic: str, payload: bytes, *, retain: bool) -> mqtt.MQTTMessageInfo:
        info = self._client.publish(topic, payload, qos=self.config.qos, retain=retain)
        if info.rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:
            self._dropped += 1
            log.warning("MQTT outgoing queue full; dropped a message to %s", topic)
        else:
            self._published += 1
        return info

    # ----------------------------------------------------------------- public API

    @property
    def connected(self) -> bool:
        return self._connected

    def wait_connected(self, timeout: float) -> bool:
        """Block up to ``timeout`` seconds until connected (startup checks, tests)."""
        return self._connected_event.wait(timeout)

    @property
    def stats(self) -> MqttStats:
        with self._lock:
            return MqttStats(
                connected=self._connected,
                connections=self._connections,
                published=self._published,
                delivered=self._read_delivered(),
                queued=len(self._queue),
                dropped=self._dropped,
            )

    def _read_delivered(self) -> int:
        with self._delivered_lock:
            return self._delivered

    def publish(self, event: Event) -> None:
        """Send one lifecycle change to ``<prefix>/events`` and ``<prefix>/<camera>/events``."""
        payload = json.dumps(event_to_dict(event), separators=(",", ":")).encode("utf-8")
        topics = (self.events_topic, self.camera_topic(event.camera_id, "events"))
        with self._lock:
            self._check_open()
            for topic in topics:
                if self._connected:
                    self._send(topic, payload, retain=False)
                else:
                    self._enqueue(topic, payload)

    def _enqueue(self, topic: str, payload: bytes) -> None:
        if len(self._queue) >= self.config.queue_size:
            self._queue.popleft()  # the oldest goes: recent events matter more to automations
            self._dropped += 1
        self._queue.append((topic, payload))

    def camera_online(self, camera: str, online: bool) -> None:
        """Set ``<prefix>/<camera>/availability`` (retained) to ``online`` or ``offline``."""
        with self._lock:
            self._check_open()
            self._online[camera] = online
            if self._connected:
                self._send(self._camera_availability(camera), _availability(online), retain=True)

    def camera_recording(self, camera: str, state: str, error: str | None = None) -> None:
        """Set ``<prefix>/<camera>/recording`` (retained): the recorder's state and, while it
        fails, why (``{"state": "failed", "error": "recording failed: disk full"}``)."""
        payload = json.dumps({"state": state, "error": error}, separators=(",", ":")).encode()
        topic = self.camera_topic(camera, "recording")
        with self._lock:
            self._check_open()
            if self._states.get(topic) == payload:
                return
            self._states[topic] = payload
            if self._connected:
                self._send(topic, payload, retain=True)

    def publish_counts(self, camera: str, counts: Mapping[str, Any]) -> None:
        """Publish a camera's counters from `RuleEngine.counts()` (retained; only changes).

        Labels of announced cameras that are absent from ``counts`` read 0, so a sensor falls
        back to zero when the last object leaves. Cheap to call every frame: unchanged values
        are not sent again.
        """
        states = self._count_states(camera, counts)
        with self._lock:
            self._check_open()
            for topic, payload in states.items():
                if self._states.get(topic) == payload:
                    continue
                self._states[topic] = payload
                if self._connected:
                    self._send(topic, payload, retain=True)

    def announce(self, cameras: Mapping[str, CameraDiscovery]) -> None:
        """Publish Home Assistant discovery configs for ``cameras`` (retained).

        The set replaces the previous announcement: configs no longer present are removed from
        Home Assistant. No-op when ``config.discovery`` is off.
        """
        with self._lock:
            self._announced = dict(cameras)
        if not self.config.discovery:
            return
        configs: dict[str, bytes] = {}
        for camera, info in cameras.items():
            for topic, payload in self._discovery_configs(camera, info).items():
                if topic in configs:
                    raise ConfigError(
                        f"two names of camera {camera!r} map to the same MQTT topic {topic}; "
                        "rename one of them"
                    )
                configs[topic] = json.dumps(payload, separators=(",", ":")).encode("utf-8")
        with self._lock:
            self._check_open()
            removed = [t for t in self._discovery if t not in configs]
            self._discovery = configs
            if self._connected:
                for topic in removed:
                    self._send(topic, b"", retain=True)
                for topic, payload in configs.items():
                    self._send(topic, payload, retain=True)

    def close(self, timeout: float = 5.0) -> None:
        """Mark Vigil and its cameras offline, wait up to ``timeout`` s for the broker to
        acknowledge, disconnect and stop the network thread. Idempotent."""
        with self._lock:
            if self._closed:
                return
            infos: list[mqtt.MQTTMessageInfo] = []
            if self._connected:
                for camera in self._online:
                    infos.append(
                        self._send(self._camera_availability(camera), b"offline", retain=True)
                    )
                infos.append(self._send(self.availability_topic, OFFLINE.encode(), retain=True))
            elif self._queue:
                log.warning("MQTT closing while disconnected: %d queued event message(s) lost",
                            len(self._queue))
            self._closed = True
        for info in infos:
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError):
                break  # the connection went away meanwhile: nothing more can be confirmed
        self._client.disconnect()
        self._client.loop_stop()

    def __enter__(self) -> MqttSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- helpers

    def _check_open(self) -> None:
        if self._closed:
            raise VigilError("MQTT sink is closed; publish before close()")

    def _camera_availability(self, camera: str) -> str:
        return self.camera_topic(camera, "availability")

    def _count_states(self, camera: str, counts: Mapping[str, Any]) -> dict[str, bytes]:
        occupancy: dict[str, int] = {}
        with self._lock:
            announced = self._announced.get(camera)
        for label in announced.labels if announced else ():
            occupancy[label] = 0
        for zone in counts.get("zones", {}).values():
            for label, n in zone.get("occupancy", {}).get("by_class", {}).items():
                occupancy[label] = max(occupancy.get(label, 0), int(n))
        states = {
            self.label_topic(camera, label): str(n).encode() for label, n in occupancy.items()
        }
        lines = dict.fromkeys(announced.lines if announced else (), None)
        for name, line in counts.get("lines", {}).items():
            lines[name] = line
        for name, line in lines.items():
            totals = (line or {}).get("total", {})
            for direction in Direction:
                topic = self.line_topic(camera, name, direction)
                states[topic] = str(int(totals.get(direction.value, 0))).encode()
            for label, by_dir in ((line or {}).get("by_class") or {}).items():
                for direction in Direction:
                    topic = self.line_topic(camera, name, direction, label)
                    states[topic] = str(int(by_dir.get(direction.value, 0))).encode()
        for name, zone in counts.get("zones", {}).items():
            states.update(self._zone_states(camera, name, zone or {}))
        return states

    def _zone_states(self, camera: str, name: str, zone: Mapping[str, Any]) -> dict[str, bytes]:
        """One zone's counters (see the module docstring), from its `RuleEngine.counts()`."""
        out: dict[str, bytes] = {}

        def put(value: float | None, *levels: str) -> None:
            if value is not None:
                text = str(int(value)) if isinstance(value, int) else str(round(value, 2))
                out[self.zone_topic(camera, name, *levels)] = text.encode()

        occupancy = zone.get("occupancy") or {}
        put(occupancy.get("current", 0), "occupancy")
        for label, n in (occupancy.get("by_class") or {}).items():
            put(int(n), "occupancy", label)
        entries = zone.get("entries") or {}
        put(entries.get("total", 0), "entries")
        for label, n in (entries.get("by_class") or {}).items():
            put(int(n), "entries", label)
        by_class = zone.get("events_by_class") or {}
        for kind in _ZONE_EVENTS:
            if f"{kind}_events" in zone:
                put(int(zone[f"{kind}_events"]), "events", kind)
            for label, n in (by_class.get(kind) or {}).items():
                put(int(n), "events", kind, label)
        if "stopped" in zone:
            put(int(zone["stopped"].get("current", 0)), "stopped")
        speed = zone.get("speed")
        if speed:
            put(speed.get("mean"), "speed")
            for label, stats in (speed.get("by_class") or {}).items():
                put(stats.get("mean"), "speed", label)
        return out

    def _discovery_configs(self, camera: str, info: CameraDiscovery) -> dict[str, Any]:
        node = self.config.node_id
        cam = topic_level(camera, "camera")
        device = {
            "identifiers": [f"{node}_{cam}"],
            "name": info.name or camera,
            "manufacturer": "Vigil",
            "model": "Vigil camera analytics",
        }
        availability = [
            {"topic": self.availability_topic},
            {"topic": self._camera_availability(camera)},
        ]
        common = {
            "availability": availability,
            "availability_mode": "all",
            "payload_available": ONLINE,
            "payload_not_available": OFFLINE,
            "device": device,
            "origin": {"name": "Vigil"},
        }
        out: dict[str, Any] = {}

        def add(object_id: str, payload: dict[str, Any]) -> None:
            topic = self._discovery_topic(object_id)
            if topic in out:
                raise ConfigError(
                    f"two names of camera {camera!r} map to the same MQTT topic {topic}; "
                    "rename one of them"
                )
            out[topic] = payload

        for label in info.labels:
            object_id = f"{cam}_{topic_level(label, 'label')}_occupancy"
            add(object_id, {
                "name": f"{label} occupancy",
                "unique_id": f"{node}_{object_id}",
                "state_topic": self.label_topic(camera, label),
                "state_class": "measurement",
                "icon": "mdi:account-group",
                **common,
            })
        for line in info.lines:
            for direction in Direction:
                object_id = f"{cam}_{topic_level(line, 'line')}_{direction.value}"
                add(object_id, {
                    "name": f"{line} {direction.value.replace('_', ' ')}",
                    "unique_id": f"{node}_{object_id}",
                    "state_topic": self.line_topic(camera, line, direction),
                    "state_class": "total_increasing",
                    "icon": "mdi:counter",
                    **common,
                })
        return out

    def _discovery_topic(self, object_id: str) -> str:
        return f"{self.config.discovery_prefix}/sensor/{self.config.node_id}/{object_id}/config"


def _availability(online: bool) -> bytes:
    return (ONLINE if online else OFFLINE).encode()
