"""MQTT: events, availability, counters and Home Assistant discovery, on paho-mqtt 2.

Topics (``vigil`` is `MqttConfig.topic_prefix`; camera, label and line names are turned into
one topic level each by `topic_level`: runs of characters other than letters, digits, ``_``,
``.`` and ``-`` become ``_``, so ``"traffic light"`` is ``traffic_light``)::

    vigil/availability                   online | offline   retained; offline is the Last Will
    vigil/events                         every lifecycle change of every event (JSON, QoS 1)
    vigil/<camera>/events                the same, for one camera
    vigil/<camera>/availability          online | offline   retained
    vigil/<camera>/recording/status      {"state": "failed", "error": "recording failed:
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
    vigil/<camera>/activity              ON | OFF: an event of the camera is open (retained)
    vigil/<camera>/present/<label>       ON | OFF: an open event of that label (retained)
    vigil/<camera>/zone/<zone>           ON | OFF: an object of an open event is in the zone
    vigil/<camera>/crossing              {"event_type": "<line>_<dir>", ...} per crossing
    vigil/<camera>/zone_entry            {"event_type": "<zone>", ...} per zone entry
    vigil/<camera>/snapshot              the latest *redacted* snapshot, JPEG (retained)
    vigil/<camera>/detection             ON | OFF: analysis runs (retained)
    vigil/<camera>/recording             ON | OFF: the recorder writes segments (retained)
    vigil/<camera>/<detection|recording>/set   commands: ON or OFF (from Home Assistant)

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

With `CameraDiscovery.activity`, a camera also gets ``binary_sensor`` entities (``activity``,
``device_class: motion``; ``<label> present`` and ``<zone> occupied``, ``occupancy``) and
``event`` entities (``Line crossing``, with an event type per line and direction, and ``Zone
entry``, one per zone) that automations trigger on; with ``snapshot`` a ``camera`` entity
whose picture is the latest redacted snapshot; with ``switches`` a ``switch`` entity per
switch. Commands arrive on ``<prefix>/<camera>/<switch>/set`` and go to `MqttSink.on_command`;
the state topic changes only when the owner reports the new state (`switch_state`), so Home
Assistant shows what is in force, not what was asked. Anyone who may publish there can stop
analysis or recording: restrict ``<prefix>/+/+/set`` with the broker's ACL.

The client id is ``mqtt.client_id`` or one of the process's own (`default_client_id`), so
two Vigil processes on one broker (a cluster's head and replicas) never drop each other. The
sink subscribes to its own availability topic: an ``offline`` there while it is up is the
Last Will of a process before it (a supervisor before a hand-over, noticed dead by the broker
late), and it answers ``online`` again.

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
import os
import re
import secrets
import socket
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

from vigil.config.alerts import MqttConfig
from vigil.errors import ConfigError, VigilError
from vigil.events.sinks import event_to_dict
from vigil.types import Direction, Event, EventState, RuleEvent, RuleEventKind

log = logging.getLogger(__name__)

ONLINE = "online"
OFFLINE = "offline"

#: Topic levels under a camera that labels must not take.
_RESERVED = frozenset(
    {
        "events",
        "availability",
        "line",
        "activity",
        "present",
        "zone",
        "crossing",
        "zone_entry",
        "snapshot",
        "detection",
        "recording",
    }
)
#: Zone event counters of `RuleEngine.counts()` and their topic level under ``events/``.
_ZONE_EVENTS = ("dwell", "loiter", "speeding", "wrong_way", "stopped")
#: The per-camera switches Home Assistant may flip (``<prefix>/<camera>/<switch>/set``).
SWITCHES = ("detection", "recording")
ON, OFF = "ON", "OFF"
#: Called (on paho's network thread) with camera, switch and the wanted state.
CommandHandler = Callable[[str, str, bool], None]
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


def default_client_id(node_id: str) -> str:
    """A client id of this process's own: ``<node_id>-<host>-<pid>-<4 hex>``.

    A broker drops the older of two connections with one client id, so one fixed default
    (the old ``vigil``) had a cluster's head and its replicas, or the supervisors before and
    after a hand-over, drop each other. Host and pid name the process in the broker's log;
    the random part keeps two sinks of one process (and pid 1 in two containers with one
    host name) apart. Home Assistant's ids do not depend on it (they use ``node_id``).
    """
    host = _NOT_LEVEL.sub("-", socket.gethostname().split(".")[0]).strip("-")[:24] or "host"
    return f"{node_id}-{host}-{os.getpid()}-{secrets.token_hex(2)}"


@dataclass(frozen=True, slots=True)
class CameraDiscovery:
    """What Home Assistant should show for one camera: an occupancy sensor per label and a
    crossing counter per line and direction, and the entities the flags below ask for.
    ``name`` is the device's display name (the camera id when None)."""

    labels: Sequence[str] = ()
    lines: Sequence[str] = ()
    name: str | None = None
    #: Zones of the camera: a binary sensor each (something is in it) and the zone-entry
    #: event entity's event types (with ``activity``).
    zones: Sequence[str] = ()
    #: Binary sensors (activity, presence per label and zone) and event entities (line
    #: crossings, zone entries), fed by `MqttSink.publish` and `MqttSink.publish_rule_hits`.
    activity: bool = False
    #: A ``camera`` entity showing the latest redacted snapshot (`MqttSink.publish_snapshot`).
    snapshot: bool = False
    #: Switches (of `SWITCHES`) Home Assistant may flip; see `MqttSink.on_command`.
    switches: Sequence[str] = ()


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
        #: Event messages waiting for a connection: (topic, payload, ordinal).
        self._queue: deque[tuple[str, bytes, int]] = deque()
        #: Event messages handed so far (``handed``), and those sent and not yet confirmed
        #: (``settled``): (ordinal, paho's message info), in the order sent.
        self._ordinal = 0
        self._inflight: deque[tuple[int, mqtt.MQTTMessageInfo]] = deque()
        self._online: dict[str, bool] = {}
        self._discovery: dict[str, bytes] = {}
        self._states: dict[str, bytes] = {}
        self._announced: dict[str, CameraDiscovery] = {}
        #: Open events per camera: id -> (label, zones now), for the binary sensors.
        self._open: dict[str, dict[str, tuple[str, tuple[str, ...]]]] = {}
        #: Called when Home Assistant flips a switch (see `on_command`); None: ignored.
        self.on_command: CommandHandler | None = None
        self._connected = False
        self._closed = False
        self._connections = 0
        self._published = 0
        self._delivered = 0
        self._delivered_lock = threading.Lock()
        self._dropped = 0
        #: Why the last connection attempt failed, for status pages (None when connected).
        self.last_error: str | None = None
        #: ``config.client_id``, or one of this sink's own (``default_client_id``).
        self.client_id = config.client_id or default_client_id(config.node_id)
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
            CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv311
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
        client.on_message = self._on_message
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
                "broker's ACL",
                self.config.host,
                self.config.port,
                reason,
            )
            return
        with self._lock:
            self._connected = True
            self._connections += 1
            self.last_error = None
            # Commands from Home Assistant's switches; subscribed on every connection
            # because a clean session forgets subscriptions.
            client.subscribe(self.command_filter, qos=1)
            # And our own availability: see ``_reassert``.
            client.subscribe(self.availability_topic, qos=1)
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
            log.warning(
                "MQTT connection to %s:%d lost (%s); reconnecting",
                self.config.host,
                self.config.port,
                reason,
            )

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
            topic, payload, ordinal = self._queue.popleft()
            self._send_event(topic, payload, ordinal)

    def _send_event(self, topic: str, payload: bytes, ordinal: int) -> None:
        info = self._send(topic, payload, retain=False)
        if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._inflight.append((ordinal, info))
        # Refused (paho's queue full): given up, so settled.
        self._prune()

    def _prune(self) -> None:
        """Forget the confirmed messages at the front, and beyond paho's own bound the
        oldest (given up): the list stays bounded where nobody asks ``settled``."""
        while self._inflight and self._inflight[0][1].is_published():
            self._inflight.popleft()
        while len(self._inflight) > 2 * self.config.queue_size + 1000:
            self._inflight.popleft()

    def _event_message(self, topic: str, payload: bytes) -> None:
        """Send one event message now, or queue it while disconnected (``self._lock`` held)."""
        self._ordinal += 1
        if self._connected:
            self._send_event(topic, payload, self._ordinal)
        else:
            self._enqueue(topic, payload, self._ordinal)

    def handed(self) -> int:
        """Event messages (events, rule hits) handed to this sink so far."""
        with self._lock:
            return self._ordinal

    def settled(self) -> int:
        """How many of the first event messages handed are settled: confirmed by the broker
        (QoS 1: its PUBACK; QoS 0: written to the connection), or given up (a full queue's
        oldest, refused by paho). One waiting in the queue or unconfirmed stops the count,
        however many after it are confirmed (``vigil.alerts.fanout.Settling``)."""
        with self._lock:
            if self._closed:
                return self._ordinal  # nothing more will happen to them
            self._prune()
            waiting: list[int] = []
            if self._inflight:
                waiting.append(self._inflight[0][0])
            if self._queue:
                waiting.append(self._queue[0][2])
            return min(waiting) - 1 if waiting else self._ordinal

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
        """Send one lifecycle change to ``<prefix>/events`` and ``<prefix>/<camera>/events``,
        and update the camera's activity binary sensors (when announced with ``activity``)."""
        payload = json.dumps(event_to_dict(event), separators=(",", ":")).encode("utf-8")
        topics = (self.events_topic, self.camera_topic(event.camera_id, "events"))
        with self._lock:
            self._check_open()
            for topic in topics:
                self._event_message(topic, payload)
            self._track_open(event)
            self._set_states(self._activity_states(event.camera_id))

    def _enqueue(self, topic: str, payload: bytes, ordinal: int) -> None:
        if len(self._queue) >= self.config.queue_size:
            self._queue.popleft()  # the oldest goes: recent events matter more to automations
            self._dropped += 1
        self._queue.append((topic, payload, ordinal))

    def camera_online(self, camera: str, online: bool) -> None:
        """Set ``<prefix>/<camera>/availability`` (retained) to ``online`` or ``offline``."""
        with self._lock:
            self._check_open()
            self._online[camera] = online
            if self._connected:
                self._send(self._camera_availability(camera), _availability(online), retain=True)

    def camera_recording(self, camera: str, state: str, error: str | None = None) -> None:
        """Set ``<prefix>/<camera>/recording/status`` (retained): the recorder's state and,
        while it fails, why (``{"state": "failed", "error": "recording failed: disk full"}``).
        (``<prefix>/<camera>/recording`` itself is the recording switch's ON/OFF.)"""
        payload = json.dumps({"state": state, "error": error}, separators=(",", ":")).encode()
        topic = self.camera_topic(camera, "recording", "status")
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
            self._set_states(states)

    def announce(self, cameras: Mapping[str, CameraDiscovery]) -> None:
        """Publish Home Assistant discovery configs for ``cameras`` (retained).

        The set replaces the previous announcement: configs no longer present are removed from
        Home Assistant. No-op when ``config.discovery`` is off.
        """
        with self._lock:
            self._check_open()
            self._announced = dict(cameras)
            # Binary sensors start OFF rather than "unknown" in Home Assistant.
            for camera in cameras:
                self._set_states(self._activity_states(camera))
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

    def close(self, timeout: float = 5.0, *, offline: bool = True) -> None:
        """Mark Vigil and its cameras offline (unless ``offline`` is False: another Vigil
        publishes for them now), wait up to ``timeout`` s for the broker to acknowledge,
        disconnect and stop the network thread. Idempotent."""
        with self._lock:
            if self._closed:
                return
            infos: list[mqtt.MQTTMessageInfo] = []
            if self._connected and offline:
                for camera in self._online:
                    infos.append(
                        self._send(self._camera_availability(camera), b"offline", retain=True)
                    )
                infos.append(self._send(self.availability_topic, OFFLINE.encode(), retain=True))
            elif self._queue:
                log.warning(
                    "MQTT closing while disconnected: %d queued event message(s) lost",
                    len(self._queue),
                )
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

    # ----------------------------------------------------------------- Home Assistant entities

    @property
    def command_filter(self) -> str:
        """The topic filter of switch commands: ``<prefix>/<camera>/<switch>/set``."""
        return f"{self._prefix}/+/+/set"

    def publish_rule_hits(self, camera: str, hits: Sequence[RuleEvent]) -> None:
        """Line crossings and zone entries as Home Assistant ``event`` entity messages.

        ``<prefix>/<camera>/crossing`` gets ``{"event_type": "<line>_<a_to_b|b_to_a>", ...}``
        and ``<prefix>/<camera>/zone_entry`` ``{"event_type": "<zone>", ...}``, with the
        rule, label, track id and time as event attributes. Not retained (an event is a
        moment, not a state: a retained one would fire again whenever Home Assistant
        restarts); queued like events while disconnected. Only for cameras announced with
        ``activity``.
        """
        with self._lock:
            info = self._announced.get(camera)
        if info is None or not info.activity:
            return
        messages = [m for m in (self._hit_message(camera, hit) for hit in hits) if m]
        with self._lock:
            self._check_open()
            for topic, payload in messages:
                self._event_message(topic, payload)

    def _hit_message(self, camera: str, hit: RuleEvent) -> tuple[str, bytes] | None:
        if hit.kind is RuleEventKind.CROSS and hit.direction is not None:
            topic = self.camera_topic(camera, "crossing")
            event_type = crossing_type(hit.rule_id, hit.direction)
        elif hit.kind is RuleEventKind.ENTER:
            topic = self.camera_topic(camera, "zone_entry")
            event_type = topic_level(hit.rule_id, "zone")
        else:
            return None
        body: dict[str, Any] = {
            "event_type": event_type,
            "rule": hit.rule_id,
            "label": hit.label,
            "track_id": hit.track_id,
            "time": hit.time,
        }
        if hit.direction is not None:
            body["direction"] = hit.direction.value
        return topic, json.dumps(body, separators=(",", ":")).encode("utf-8")

    def publish_snapshot(self, camera: str, jpeg: bytes) -> None:
        """The camera entity's picture: ``jpeg`` (already redacted: this sink never sees
        pixels otherwise) to ``<prefix>/<camera>/snapshot``, retained."""
        with self._lock:
            self._check_open()
            self._set_states({self.camera_topic(camera, "snapshot"): bytes(jpeg)})

    def switch_state(self, camera: str, switch: str, on: bool) -> None:
        """Report a switch's state (``ON``/``OFF``, retained) at ``<prefix>/<camera>/<switch>``."""
        with self._lock:
            self._check_open()
            self._set_states({self.camera_topic(camera, switch): (ON if on else OFF).encode()})

    def _reassert(self, payload: bytes | bytearray) -> None:
        """``offline`` on our availability topic while we are up: the Last Will of a
        process that published here before us (the supervisor before a hand-over, whose
        connection the broker notices dead only now: with client ids of their own, the
        broker no longer drops it when we connect). Send ``online`` again, or Home
        Assistant shows every Vigil entity unavailable while we run."""
        if payload.decode("utf-8", "replace").strip() != OFFLINE:
            return
        with self._lock:
            if self._closed or not self._connected:
                return  # our own close() says offline; a reconnection resyncs anyway
            self._send(self.availability_topic, ONLINE.encode(), retain=True)
        log.info("MQTT: %s said offline (another process's Last Will); online again",
                 self.availability_topic)  # fmt: skip

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        """A command from a switch: find the camera and call `on_command`. Anything else
        (unknown camera or switch, a payload other than ON/OFF) is logged and ignored."""
        if msg.topic == self.availability_topic:
            self._reassert(msg.payload)
            return
        parts = msg.topic.split("/")
        if len(parts) != 4 or parts[0] != self._prefix or parts[3] != "set":
            return
        level, switch = parts[1], parts[2]
        with self._lock:
            cameras = [
                c
                for c, info in self._announced.items()
                if switch in info.switches and topic_level(c, "camera") == level
            ]
        word = msg.payload.decode("utf-8", "replace").strip().upper()
        if not cameras or word not in (ON, OFF):
            log.warning("MQTT command %r on %s ignored: send ON or OFF to "
                        "<prefix>/<camera>/<detection|recording>/set of an announced camera",
                        word[:20], msg.topic)  # fmt: skip
            return
        handler = self.on_command
        if handler is None:
            return
        try:
            handler(cameras[0], switch, word == ON)
        except Exception:  # a faulty handler must not stop the network thread
            log.exception("MQTT command %s %s for %s failed", switch, word, cameras[0])

    def _set_states(self, states: Mapping[str, bytes]) -> None:
        """Keep and send (retained) the states that changed; call with the lock held."""
        for topic, payload in states.items():
            if self._states.get(topic) == payload:
                continue
            self._states[topic] = payload
            if self._connected:
                self._send(topic, payload, retain=True)

    def _track_open(self, event: Event) -> None:
        open_events = self._open.setdefault(event.camera_id, {})
        if event.state is EventState.END:
            open_events.pop(event.id, None)
        else:
            open_events[event.id] = (event.label, tuple(event.zones_now))

    def _activity_states(self, camera: str) -> dict[str, bytes]:
        """Activity, presence per label and occupancy per zone from the open events (ON
        while one is open), for announced labels and zones and for any seen."""
        info = self._announced.get(camera)
        if info is None or not info.activity:
            return {}
        open_events = list(self._open.get(camera, {}).values())
        labels = dict.fromkeys(info.labels, False)
        zones = dict.fromkeys(info.zones, False)
        for label, now_in in open_events:
            labels[label] = True
            for zone in now_in:
                zones[zone] = True
        states = {self.camera_topic(camera, "activity"): _on_off(bool(open_events))}
        for label, on in labels.items():
            states[self.camera_topic(camera, "present", label)] = _on_off(on)
        for zone, on in zones.items():
            states[self.camera_topic(camera, "zone", zone)] = _on_off(on)
        return states

    def _entity_configs(
        self, camera: str, info: CameraDiscovery, common: Mapping[str, Any]
    ) -> list[tuple[str, str, dict[str, Any]]]:
        """(platform, object id, config) of the binary sensors, event entities, camera and
        switches of ``camera``: see the module docstring."""
        node, cam = self.config.node_id, topic_level(camera, "camera")
        out: list[tuple[str, str, dict[str, Any]]] = []

        def add(platform: str, object_id: str, **config: Any) -> None:
            out.append(
                (platform, object_id, {**config, "unique_id": f"{node}_{object_id}", **common})
            )

        if info.activity:
            add("binary_sensor", f"{cam}_activity", name="Activity", device_class="motion",
                state_topic=self.camera_topic(camera, "activity"), payload_on=ON,
                payload_off=OFF)  # fmt: skip
            for label in info.labels:
                add("binary_sensor", f"{cam}_{topic_level(label, 'label')}_present",
                    name=f"{label} present", device_class="occupancy",
                    state_topic=self.camera_topic(camera, "present", label), payload_on=ON,
                    payload_off=OFF)  # fmt: skip
            for zone in info.zones:
                add("binary_sensor", f"{cam}_zone_{topic_level(zone, 'zone')}_occupied",
                    name=f"{zone} occupied", device_class="occupancy",
                    state_topic=self.camera_topic(camera, "zone", zone), payload_on=ON,
                    payload_off=OFF)  # fmt: skip
            if info.lines:
                add("event", f"{cam}_line_crossing", name="Line crossing",
                    state_topic=self.camera_topic(camera, "crossing"),
                    event_types=[crossing_type(line, d) for line in info.lines
                                 for d in Direction],
                    icon="mdi:transit-connection-horizontal")  # fmt: skip
            if info.zones:
                add("event", f"{cam}_zone_entry", name="Zone entry",
                    state_topic=self.camera_topic(camera, "zone_entry"),
                    event_types=[topic_level(z, "zone") for z in info.zones],
                    icon="mdi:location-enter")  # fmt: skip
        if info.snapshot:
            add(
                "camera",
                f"{cam}_snapshot",
                name="Snapshot",
                topic=self.camera_topic(camera, "snapshot"),
            )
        for switch in info.switches:
            if switch not in SWITCHES:
                raise ConfigError(f"unknown switch {switch!r}; use one of {SWITCHES}")
            add(
                "switch",
                f"{cam}_{switch}",
                name=switch.capitalize(),
                command_topic=self.camera_topic(camera, switch, "set"),
                state_topic=self.camera_topic(camera, switch),
                payload_on=ON,
                payload_off=OFF,
                icon="mdi:motion-sensor" if switch == "detection" else "mdi:record-rec",
            )
        return out

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

        def add(object_id: str, payload: dict[str, Any], platform: str = "sensor") -> None:
            topic = self._discovery_topic(object_id, platform)
            if topic in out:
                raise ConfigError(
                    f"two names of camera {camera!r} map to the same MQTT topic {topic}; "
                    "rename one of them"
                )
            out[topic] = payload

        for label in info.labels:
            object_id = f"{cam}_{topic_level(label, 'label')}_occupancy"
            add(
                object_id,
                {
                    "name": f"{label} occupancy",
                    "unique_id": f"{node}_{object_id}",
                    "state_topic": self.label_topic(camera, label),
                    "state_class": "measurement",
                    "icon": "mdi:account-group",
                    **common,
                },
            )
        for line in info.lines:
            for direction in Direction:
                object_id = f"{cam}_{topic_level(line, 'line')}_{direction.value}"
                add(
                    object_id,
                    {
                        "name": f"{line} {direction.value.replace('_', ' ')}",
                        "unique_id": f"{node}_{object_id}",
                        "state_topic": self.line_topic(camera, line, direction),
                        "state_class": "total_increasing",
                        "icon": "mdi:counter",
                        **common,
                    },
                )
        for platform, object_id, payload in self._entity_configs(camera, info, common):
            add(object_id, payload, platform)
        return out

    def _discovery_topic(self, object_id: str, platform: str = "sensor") -> str:
        prefix, node = self.config.discovery_prefix, self.config.node_id
        return f"{prefix}/{platform}/{node}/{object_id}/config"


def _availability(online: bool) -> bytes:
    return (ONLINE if online else OFFLINE).encode()


def _on_off(on: bool) -> bytes:
    return (ON if on else OFF).encode()


def crossing_type(line: str, direction: Direction) -> str:
    """The line-crossing event type of ``line`` and ``direction``: ``<line>_<direction>``."""
    return f"{topic_level(line, 'line')}_{direction.value}"
