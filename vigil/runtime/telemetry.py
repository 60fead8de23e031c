"""Counters of the running cameras for ``/metrics``: events, line crossings, reconnects.

``Telemetry`` is fed by the supervisor (it sits behind the ``FanoutSink`` as one more event
sink, and the supervisor hands it each frame's rule hits and every online/offline change);
``RuntimeMetrics`` is the snapshot the API renders (``vigil.api.metrics``). Plain integers
under one lock, not Prometheus objects: the API filters them per caller (a viewer sees only
its cameras), which a process-wide Prometheus registry could not do.

The counters only grow while the process runs; Prometheus' ``rate()`` copes with the reset
of a restart. This module imports nothing heavy: the API reads it too.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from vigil.types import Event, EventState, RuleEvent, RuleEventKind

#: ``(camera, label)``.
EventKey = tuple[str, str]
#: ``(camera, line, direction, label)``.
CrossingKey = tuple[str, str, str, str]
#: ``(camera, role)``, role ``detect`` (the analysis stream) or ``record``.
SourceKey = tuple[str, str]
#: (camera, "failover" | "rebalanced")
MoveKey = tuple[str, str]


@dataclass(frozen=True, slots=True)
class DeliveryHealth:
    """How an alert channel delivers: ``connected`` (None where the channel has no standing
    connection, as webhooks), messages ``delivered`` and ``failed`` for good since start,
    and those ``queued`` now."""

    connected: bool | None
    delivered: int
    failed: int
    queued: int


@dataclass(frozen=True, slots=True)
class RuntimeMetrics:
    """A snapshot of the runtime's counters (see the module docstring).

    ``started``: UNIX time the cameras were started. ``events``: events *started*, by camera
    and label. ``crossings``: line crossings by camera, line, direction and label.
    ``reconnects``: times a camera's stream came back after it was lost, by camera and
    role. ``mqtt``/``webhooks``: None when not configured. ``store``: the database writes
    of events and counts that failed and were stored on a retry (``delivered``), lost for
    good (``failed``) and waiting now (``queued``); None without a database.
    ``moves``: on a Ray cluster, the times each camera failed over (``failover``: its actor
    lost and restarted elsewhere) or was moved by rebalancing (``rebalanced``), by camera and
    kind, every camera from 0; None off a cluster.
    """

    started: float
    events: Mapping[EventKey, int] = field(default_factory=dict)
    crossings: Mapping[CrossingKey, int] = field(default_factory=dict)
    reconnects: Mapping[SourceKey, int] = field(default_factory=dict)
    mqtt: DeliveryHealth | None = None
    webhooks: DeliveryHealth | None = None
    store: DeliveryHealth | None = None
    moves: Mapping[MoveKey, int] | None = None
    #: On a cluster: whether this server supervises (holds the supervision lock); None on
    #: a single host.
    supervising: bool | None = None


class Telemetry:
    """Thread-safe counters of events, crossings and analysis-stream reconnects.

    An ``EventSink`` (``publish``/``close``): put it behind the ``FanoutSink``.
    """

    def __init__(self, cameras: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._events: Counter[EventKey] = Counter()
        self._crossings: Counter[CrossingKey] = Counter()
        # Every camera from the start at 0: a series that appears only on the first
        # reconnect would hide that one from ``increase()``.
        self._reconnects: Counter[SourceKey] = Counter(dict.fromkeys(
            ((name, "detect") for name in cameras), 0))  # fmt: skip
        self._was_online: set[str] = set()

    def publish(self, event: Event) -> None:
        if event.state is EventState.START:
            with self._lock:
                self._events[(event.camera_id, event.label)] += 1

    def close(self) -> None:
        """Nothing to release (the ``EventSink`` protocol asks for it)."""

    def count_hits(self, hits: Iterable[RuleEvent]) -> None:
        """Count the line crossings among one frame's rule hits."""
        with self._lock:
            for hit in hits:
                if hit.kind is RuleEventKind.CROSS and hit.direction is not None:
                    key = (hit.camera_id, hit.rule_id, hit.direction.value, hit.label)
                    self._crossings[key] += 1

    def online(self, camera: str, online: bool) -> None:
        """The analysis stream of ``camera`` came (back) or went: coming back after having
        been online once is a reconnect."""
        if not online:
            return
        with self._lock:
            if camera in self._was_online:
                self._reconnects[(camera, "detect")] += 1
            self._was_online.add(camera)

    def snapshot(
        self,
        started: float,
        *,
        record_reconnects: Mapping[str, int] | None = None,
        mqtt: DeliveryHealth | None = None,
        webhooks: DeliveryHealth | None = None,
    ) -> RuntimeMetrics:
        """The counters now, with the recorders' reconnects (by camera) and the alert
        channels' health, which their owners count themselves."""
        with self._lock:
            reconnects = dict(self._reconnects)
            events, crossings = dict(self._events), dict(self._crossings)
        for camera, count in (record_reconnects or {}).items():
            reconnects[(camera, "record")] = count
        return RuntimeMetrics(started, events, crossings, reconnects, mqtt, webhooks)
