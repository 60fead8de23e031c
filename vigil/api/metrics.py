"""The Prometheus text behind ``GET /metrics`` (the route is in ``vigil.api.routes.live``).

Names follow Prometheus' conventions, and ``promtool check metrics`` passes on a live scrape
(``tests/runtime/test_metrics_scrape.py``): base units (seconds, bytes), ``_total`` on
counters, counters for what only grows. Each scrape builds its families at scrape time from
the runtime, the database and the disk, filtered to the cameras the caller sees, so nothing
is kept in sync between scrapes. The standard ``process_*``, ``python_gc_*`` and
``python_info`` collectors of ``prometheus_client`` are part of every scrape (of the main
process: worker processes, if any, are not in ``process_*``).

Camera families carry a ``camera`` label; counters of a runtime that offers them
(``MetricsView``, the ``Supervisor``) add events, line crossings and reconnects; MQTT and
webhook health and the storage figures are the whole installation's. ``docs/architecture.md``
lists every name.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from vigil import __version__
from vigil.errors import StorageError
from vigil.runtime.telemetry import DeliveryHealth, RuntimeMetrics
from vigil.store import SegmentRepo

if TYPE_CHECKING:
    from vigil.api.auth import Principal
    from vigil.api.runtime import CameraStatus
    from vigil.api.state import AppState


@runtime_checkable
class MetricsView(Protocol):
    """A runtime with counters to show (``Supervisor.metrics``); optional for a runtime."""

    def metrics(self) -> RuntimeMetrics: ...


#: The standard collectors, made once in a registry of their own that every scrape reads.
_STANDARD = CollectorRegistry()
ProcessCollector(registry=_STANDARD)
PlatformCollector(registry=_STANDARD)
GCCollector(registry=_STANDARD)


def _seconds(ms: float) -> float:
    return ms / 1000.0


#: Gauges read from each ``CameraStatus``: (attribute, name, help, conversion to base unit).
_CAMERA_GAUGES: tuple[tuple[str, str, str, Callable[[float], float]], ...] = (
    ("online", "vigil_camera_online", "1 when the camera delivers frames", float),
    ("decode_fps", "vigil_camera_decode_fps", "frames decoded per second, lately", float),
    ("detect_fps", "vigil_camera_detect_fps", "frames run through the detector per second",
     float),
    ("inference_ms", "vigil_camera_inference_seconds",
     "mean detector time per frame lately, in seconds", _seconds),
    ("queue_depth", "vigil_camera_queue_depth", "frames waiting for the shared detector",
     float),
    ("last_frame_time", "vigil_camera_last_frame_timestamp_seconds",
     "UNIX time of the last decoded frame", float),
)  # fmt: skip


def render_metrics(state: AppState, who: Principal) -> bytes:
    """Prometheus text (format 0.0.4) of everything ``who`` may see."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Scrape(state, who))
    return generate_latest(registry)


class _Scrape(Collector):
    """One scrape's families (see the module docstring)."""

    def __init__(self, state: AppState, who: Principal) -> None:
        self.state = state
        self.who = who

    def describe(self) -> list[Metric]:
        return []  # nothing to check against other collectors: it is alone in its registry

    def collect(self) -> Iterator[Metric]:
        yield from _STANDARD.collect()
        build = InfoMetricFamily("vigil_build", "the running Vigil", labels=["version"])
        build.add_metric([__version__], {})
        yield build
        statuses = [s for s in self.state.runtime.cameras() if self.who.sees(s.name)]
        yield from _camera_families(statuses)
        yield from self._storage()
        runtime = self.state.runtime
        if isinstance(runtime, MetricsView):
            yield from self._runtime(runtime.metrics())

    def _storage(self) -> Iterator[Metric]:
        used = GaugeMetricFamily("vigil_storage_used_bytes", "bytes of recorded segments",
                                 labels=["camera"])  # fmt: skip
        try:
            with self.state.db.session() as session:
                sizes = SegmentRepo(session).size_by_camera()
        except StorageError:
            # The database is down: the scrape goes on without what only it knows (a scrape
            # during an outage is what ``OUTAGE_READS`` is for), and says so.
            sizes = None
        yield GaugeMetricFamily("vigil_database_up", "1 when this scrape could read the "
                                "database, else 0", value=float(sizes is not None))  # fmt: skip
        for camera, size in (sizes or {}).items():
            if self.who.sees(camera):
                used.add_metric([camera], size)
        yield used
        yield from self._quarantine()
        folder = self.state.data_dir / "recordings"
        try:
            disk = shutil.disk_usage(folder if folder.exists() else self.state.data_dir)
        except OSError:
            return  # no data folder (yet): no figures rather than a failed scrape
        yield GaugeMetricFamily("vigil_storage_free_bytes",
                                "bytes free on the file system of the recordings",
                                value=disk.free)  # fmt: skip
        yield GaugeMetricFamily("vigil_storage_total_bytes",
                                "size of the file system of the recordings, bytes",
                                value=disk.total)  # fmt: skip

    def _quarantine(self) -> Iterator[Metric]:
        """Files that no longer play, by camera (``vigil.record.quarantine``): counted so
        that an administrator sees them before retention ages them out."""
        files = GaugeMetricFamily("vigil_quarantine_files", "segment files in quarantine (they "
                                  "do not play; deleted once older than the camera's "
                                  "record.max_age)", labels=["camera"])  # fmt: skip
        size = GaugeMetricFamily("vigil_quarantine_bytes", "bytes of the segment files in "
                                 "quarantine", labels=["camera"])  # fmt: skip
        for camera, (count, total) in sorted(self.state.media.quarantine().items()):
            if self.who.sees(camera):
                files.add_metric([camera], count)
                size.add_metric([camera], total)
        yield files
        yield size

    def _runtime(self, metrics: RuntimeMetrics) -> Iterator[Metric]:
        sees = self.who.sees
        yield GaugeMetricFamily("vigil_uptime_seconds", "seconds since the cameras started",
                                value=max(0.0, time.time() - metrics.started))  # fmt: skip
        events = CounterMetricFamily("vigil_events", "events started, by camera and label",
                                     labels=["camera", "label"])  # fmt: skip
        for (camera, label), count in sorted(metrics.events.items()):
            if sees(camera):
                events.add_metric([camera, label], count)
        yield events
        crossings = CounterMetricFamily(
            "vigil_line_crossings", "objects that crossed a line, by camera, line, direction "
            "(a_to_b, b_to_a) and label", labels=["camera", "line", "direction", "label"],
        )  # fmt: skip
        for key, count in sorted(metrics.crossings.items()):
            if sees(key[0]):
                crossings.add_metric(list(key), count)
        yield crossings
        reconnects = CounterMetricFamily(
            "vigil_source_reconnects", "times a camera stream came back after it was lost, by "
            "camera and role (detect: the analysis stream, record: the recorded one)",
            labels=["camera", "role"],
        )  # fmt: skip
        for (camera, role), count in sorted(metrics.reconnects.items()):
            if sees(camera):
                reconnects.add_metric([camera, role], count)
        yield reconnects
        if metrics.moves is not None:
            moves = CounterMetricFamily(
                "vigil_cluster_camera_moves", "times a camera's actor went to another node of "
                "the Ray cluster, by camera and kind (failover: its node or process was lost; "
                "rebalanced: moved onto a node with room), since this head started",
                labels=["camera", "kind"],
            )  # fmt: skip
            for (camera, kind), count in sorted(metrics.moves.items()):
                if sees(camera):
                    moves.add_metric([camera, kind], count)
            yield moves
        if metrics.supervising is not None:
            yield GaugeMetricFamily(
                "vigil_cluster_supervising", "1 while this server supervises the cluster's "
                "cameras (holds the supervision lock), 0 while it serves as an API replica",
                value=1.0 if metrics.supervising else 0.0,
            )  # fmt: skip
        if metrics.mqtt is not None:
            yield from _delivery(
                "mqtt",
                "messages",
                metrics.mqtt,
                "MQTT messages acknowledged by the broker, or failed (dropped from a full queue)",
            )
        if metrics.webhooks is not None:
            yield from _delivery(
                "webhook",
                "deliveries",
                metrics.webhooks,
                "webhook deliveries answered 2xx, or failed for good (dead-lettered)",
            )
        if metrics.store is not None:
            yield from _delivery(
                "store",
                "writes",
                metrics.store,
                "database writes of events "
                "and counts that failed (the database was down) and were "
                "stored on a retry (delivered), or lost for good (failed)",
            )


def _camera_families(statuses: list[CameraStatus]) -> Iterator[Metric]:
    for attr, name, doc, convert in _CAMERA_GAUGES:
        gauge = GaugeMetricFamily(name, doc, labels=["camera"])
        for status in statuses:
            value = getattr(status, attr)
            if value is not None:
                gauge.add_metric([status.name], convert(float(value)))
        yield gauge
    skipped = CounterMetricFamily(
        "vigil_camera_skipped_frames", "frames dropped unanalysed (the camera could not keep "
        "up)", labels=["camera"],
    )  # fmt: skip
    for status in statuses:
        skipped.add_metric([status.name], status.skipped_frames)
    yield skipped
    corrupt = CounterMetricFamily(
        "vigil_camera_decode_errors", "corrupt packets of the analysis stream the decoder "
        "skipped, or frames it decoded with errors (the camera goes on)", labels=["camera"],
    )  # fmt: skip
    for status in statuses:
        corrupt.add_metric([status.name], status.decode_errors)
    yield corrupt
    failing = GaugeMetricFamily(
        "vigil_camera_recording_failed", "1 while the camera's recorder cannot write (disk "
        "full, storage error), else 0; absent for cameras that are not recorded",
        labels=["camera"],
    )  # fmt: skip
    for status in statuses:
        if status.recording is not None:
            failing.add_metric([status.name], 1.0 if status.recording == "failed" else 0.0)
    yield failing
    # A gauge, not a counter: it goes down as the journal's sweep indexes them.
    unindexed = GaugeMetricFamily(
        "vigil_camera_segments_unindexed", "finished segments on disk that the database did "
        "not take (given up after repeated failures) and that are not indexed yet: unknown "
        "to retention and the API until the next sweep indexes them (at start and at each "
        "retention pass); absent for cameras that are not recorded", labels=["camera"],
    )  # fmt: skip
    for status in statuses:
        if status.recording is not None:
            unindexed.add_metric([status.name], status.segments_unindexed)
    yield unindexed


def _delivery(channel: str, what: str, health: DeliveryHealth, doc: str) -> Iterator[Metric]:
    """``vigil_<channel>_<what>_total{outcome}``, the queue, and (MQTT) the connection."""
    if health.connected is not None:
        yield GaugeMetricFamily(f"vigil_{channel}_connected", "1 while connected to the broker",
                                value=float(health.connected))  # fmt: skip
    totals = CounterMetricFamily(f"vigil_{channel}_{what}", doc, labels=["outcome"])
    totals.add_metric(["delivered"], health.delivered)
    totals.add_metric(["failed"], health.failed)
    yield totals
    yield GaugeMetricFamily(f"vigil_{channel}_queued_{what}", f"{channel} {what} waiting to be "
                            "sent", value=health.queued)  # fmt: skip
