"""``CameraWorker``: one camera's analysis loop in its own thread, with status for the API.

::

    source (detect role) ─► CameraPipeline (shared detector) ─► events ─► sink
                                   │                                 └─► recorder activity
                                   └─► rule hits ─► counts

:meth:`CameraWorker.run` is one *session*: open the source, process its frames until the
source ends or :meth:`stop` is called, then close the events still open (so a crash, an
ended file or a shutdown never leaves an open event behind). It raises what went wrong
(``SourceError`` when the camera cannot be opened, anything else is a crash); the
``Supervisor`` decides to retry with backoff. Network sources reconnect by themselves once
they have worked (``AvSource``), reporting through ``on_status``, which feeds the status here.

Thread-safety: ``status``, ``latest_frame``, ``rules``, ``update_rules`` and ``stop`` may be
called from any thread. Rule changes and frame processing exclude each other through one
lock, so a change applies between two frames.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from vigil import clock
from vigil.config.models import LineConfig, ResolvedCamera, SourceConfig, ZoneConfig
from vigil.detect.base import Detector
from vigil.detect.labels import class_ids
from vigil.errors import ConfigError, SourceError
from vigil.events.sinks import EventSink
from vigil.ingest import Backoff, Source, SourceState, SourceStatus, StatusCallback, open_source
from vigil.ingest.base import is_network_url
from vigil.ingest.pacing import loop_backoff
from vigil.privacy.changes import thumbnail
from vigil.record import Recorder
from vigil.runtime.pipeline import CameraPipeline, FrameResult
from vigil.runtime.view import CameraStatus, TrackSnapshot
from vigil.types import Detections, Event, EventState, Frame, ImageArray, RuleEvent

log = logging.getLogger(__name__)

#: ``(source, camera, on_status) -> Source``: how a worker opens its analysis stream.
SourceFactory = Callable[[SourceConfig, str, StatusCallback], Source]

_STATES = {
    SourceState.CONNECTING: "connecting",
    SourceState.STREAMING: "running",
    SourceState.STALLED: "stalled",
    SourceState.RECONNECTING: "reconnecting",
    SourceState.FAILED: "offline",
    SourceState.ENDED: "ended",
}


def default_source(
    source: SourceConfig, camera: str, on_status: StatusCallback, *,
    stall_timeout: float = 10.0,
) -> Source:  # fmt: skip
    """A camera's analysis source: network streams reconnect for ever and report status;
    ``synthetic://`` scenes and files are paced in real time with wall-clock times, like a
    camera, and a file with ``loop`` starts again at its end."""
    url = source.url
    if url.lower().startswith("synthetic:"):
        return open_source(url, camera, live=True)
    options = dict(source.options)
    if is_network_url(url):
        return open_source(url, camera, on_status=on_status, stall_timeout=stall_timeout,
                           options=options)  # fmt: skip
    return open_source(url, camera, on_status=on_status, options=options, live=True,
                       realtime=True, reconnect=source.loop, backoff=loop_backoff())  # fmt: skip


class _Rate:
    """Events per second over the last ``window`` seconds (0 when none came lately, or when
    those that came span less than ``min_span`` seconds: three frames 0.1 s apart just after
    a connection read as 20 fps for a 10 fps camera, and the live encoder and the UI took it
    for the camera's rate)."""

    def __init__(self, window: float = 5.0, min_span: float = 1.0) -> None:
        self.window = window
        self.min_span = min_span
        self._times: deque[float] = deque(maxlen=512)

    def tick(self, now: float) -> None:
        self._times.append(now)

    def value(self, now: float) -> float:
        # Called from other threads (API status) while the camera thread ticks: copy the deque
        # in one C-level call (atomic under the GIL) before iterating in Python.
        times = [t for t in tuple(self._times) if now - t <= self.window]
        if len(times) < 2 or times[-1] - times[0] < self.min_span:
            return 0.0
        return (len(times) - 1) / (times[-1] - times[0])


class CameraDetector:
    """The shared detector as seen by one camera: keeps the camera's own labels and
    confidence, and times the camera's calls (EWMA, ms).

    The shared model runs with the union of every camera's labels and the lowest of their
    confidences, so one batch stays one model call; each camera then drops what its own
    ``detect.labels`` / ``detect.confidence`` exclude. ``labels`` empty: every class.
    """

    def __init__(
        self, inner: Detector, labels: Sequence[str] = (), confidence: float = 0.0
    ) -> None:
        self.inner = inner
        self.confidence = float(confidence)
        self.keep: np.ndarray | None = (
            np.asarray(class_ids(labels, inner.class_names), np.int64) if labels else None
        )
        self.ms = 0.0

    @property
    def class_names(self) -> Sequence[str]:
        return self.inner.class_names

    @property
    def input_size(self) -> tuple[int, int]:
        return self.inner.input_size

    def detect_batch(self, images: Sequence[ImageArray]) -> list[Detections]:
        started = time.perf_counter()
        results = self.inner.detect_batch(images)
        ms = 1000.0 * (time.perf_counter() - started)
        self.ms = ms if self.ms == 0.0 else 0.9 * self.ms + 0.1 * ms
        return [self._filter(dets) for dets in results]

    def _filter(self, dets: Detections) -> Detections:
        if not len(dets):
            return dets
        mask = dets.confidence >= self.confidence
        if self.keep is not None:
            mask &= np.isin(dets.class_id, self.keep)
        return dets if bool(mask.all()) else dets[mask]


class CameraWorker:
    """The analysis of one camera (see the module docstring).

    Args:
        camera: the resolved camera; its first source with the ``detect`` role is analysed.
        detector: the shared (batching) detector, or None for the motion-blob detector.
        sink: receives every lifecycle change of every event.
        counts: called with each frame's rule hits (non-empty lists only).
        on_counts: called with ``RuleEngine.counts()`` when they may have changed (rule hits,
            a new session), at most once per ``counts_interval`` seconds.
        on_online: called with True/False when the camera comes online or drops out.
        recorder: told of activity in ``motion``/``events`` recording modes.
        source_factory: opens the analysis source (tests inject failing ones).
        preview_side: the long side of ``latest_frame`` images, in pixels.
        max_lag: a live frame older than this (s) when it arrives is dropped unprocessed
            and counted in ``skipped_frames``: a camera that cannot keep up falls back to
            fewer frames, never to growing latency.
    """

    def __init__(
        self,
        camera: ResolvedCamera,
        detector: Detector | None,
        sink: EventSink,
        *,
        counts: Callable[[list[RuleEvent]], None] | None = None,
        on_counts: Callable[[str, Mapping[str, Any]], None] | None = None,
        on_online: Callable[[str, bool], None] | None = None,
        recorder: Recorder | None = None,
        source_factory: SourceFactory = default_source,
        preview_side: int = 640,
        max_lag: float = 2.0,
        counts_interval: float = 1.0,
    ) -> None:
        inputs = [s for s in camera.sources if "detect" in s.roles]
        if not inputs:
            raise ConfigError(
                f"camera {camera.name!r} has no source with the 'detect' role; add "
                "`roles: [detect]` to the input to analyse"
            )
        self.camera = camera
        self.name = camera.name
        self.input = inputs[0]
        self.detector = (
            CameraDetector(detector, camera.detect.labels, camera.detect.confidence)
            if detector is not None
            else None
        )
        self.sink = sink
        self._counts, self._on_counts, self._on_online = counts, on_counts, on_online
        self.recorder = recorder
        self._factory = source_factory
        self.preview_side = preview_side
        self.max_lag = max_lag
        self._lock = threading.RLock()
        self._zones: dict[str, ZoneConfig] = dict(camera.zones)
        self._lines: dict[str, LineConfig] = dict(camera.lines)
        self.pipeline: CameraPipeline | None = None
        self._source: Source | None = None
        self._stopping = False
        self._open_events: set[str] = set()
        self._last_frame: Frame | None = None
        self._last_result: tuple[FrameResult, CameraPipeline] | None = None
        self._thumb: tuple[Frame, ImageArray] | None = None  # see _decided_thumb
        self._last_frame_wall: float | None = None
        self._decode, self._detect = _Rate(), _Rate()
        self.state = "starting"
        self.online = False
        self.last_error: str | None = None
        self.restarts = 0
        #: Times the camera's picture changed size mid-stream (a new pipeline each time).
        self.resolution_changes = 0
        self._decode_errors_before = 0  # corrupt packets of the sessions that ended
        self.sessions = 0
        self.frames = 0
        self.skipped_frames = 0
        self.analysed = 0
        # (when, latency s, emitted events) per analysed frame, latency from capture
        # (``Frame.wall_time``) to hand-over to the sinks: for status and the capacity bench.
        self.latencies: deque[tuple[float, float, bool]] = deque(maxlen=4096)
        self.queue_depth: Callable[[], int] = lambda: 0
        self.counts_interval = counts_interval
        self._counts_pending = False
        self._counts_sent = -float("inf")
        self._counted_pipeline: CameraPipeline | None = None
        #: False while analysis is switched off (``set_detection``): frames still arrive
        #: for the live view, nothing is analysed, open events were ended.
        self.detection = True
        self._retired: CameraPipeline | None = None

    # -- the session ------------------------------------------------------------------------

    def run(self) -> None:
        """One session: open, process until the source ends or ``stop()``; see module doc."""
        self.sessions += 1
        source = self._factory(self.input, self.name, self._on_status)
        with self._lock:
            self._source = source
            if self._stopping:
                source.close()
        last_time: float | None = None
        try:
            info = source.open()
            pipeline: CameraPipeline | None = None
            for frame in source.frames():
                if not self.detection:
                    self._idle_frame(frame)
                    continue
                if pipeline is not None and pipeline.frame_size != frame.size:
                    pipeline = self._resized(pipeline, frame, last_time)
                if pipeline is None or pipeline is self._retired:
                    # Sized by the first frame: an RTSP stream may open before its size is
                    # known (``info`` reports 0 x 0), and frames are what the stages see.
                    size = (frame.width, frame.height)
                    pipeline = self._new_pipeline(size, info.live, info.fps)
                self._on_frame(pipeline, frame, info.live)
                last_time = frame.time
            if not self._stopping:
                self.set_state("ended")
        finally:
            with self._lock:
                self._source = None
                self._decode_errors_before += getattr(source, "decode_errors", 0)
            source.close()
            self._close_events(last_time)
            self._flush_counts()

    def stop(self) -> None:
        """Make ``run`` return (from any thread); the source stops at its next frame."""
        with self._lock:
            self._stopping = True
            source = self._source
        if source is not None:
            source.close()

    @property
    def stopping(self) -> bool:
        return self._stopping

    def _resized(
        self, pipeline: CameraPipeline, frame: Frame, last_time: float | None
    ) -> CameraPipeline | None:
        """The camera changed its resolution mid-stream (reconfigured, or a sub-stream that
        adapts): the rules are in pixels of the old picture and the tracks' boxes too, so
        the open events end and the caller starts a pipeline at the new size (None)."""
        old_w, old_h = pipeline.frame_size
        log.warning("%s: the picture changed from %dx%d to %dx%d; analysis goes on at the new "
                    "size (open events ended, tracks start afresh)", self.name, old_w, old_h,
                    frame.width, frame.height)  # fmt: skip
        self.resolution_changes += 1
        self._close_events(last_time)
        self._flush_counts()
        return None

    def _new_pipeline(self, size: tuple[int, int], live: bool, fps: float) -> CameraPipeline:
        # A new session starts a new pipeline (a crash may have left the old one in any
        # state), with the rules in force now rather than those of the config file.
        camera = self.camera.model_copy(update={"zones": self._zones, "lines": self._lines})
        pipeline = CameraPipeline(camera, self.detector, size, live=live, source_fps=fps or None)
        with self._lock:
            self.pipeline = pipeline
        return pipeline

    def _on_frame(self, pipeline: CameraPipeline, frame: Frame, live: bool) -> None:
        now = clock.now()
        self.frames += 1
        self._decode.tick(now)
        self._last_frame, self._last_frame_wall = frame, now
        if not self.online:
            self.set_state("running")
        if live and now - frame.wall_time > self.max_lag:
            self.skipped_frames += 1
            return
        with self._lock:
            result = pipeline.process(frame)
            counts = self._due_counts(pipeline, result, now)
        self._last_result = (result, pipeline)  # one reference swap: read by latest_tracks
        if result.analysed:
            self._detect.tick(now)
        self._publish(result.events)
        if result.rule_events and self._counts is not None:
            self._counts(result.rule_events)
        if self._on_counts is not None and counts is not None:
            self._on_counts(self.name, counts)
        self._mark_activity(result)
        if result.analysed:
            self.analysed += 1
            done = clock.now()
            self.latencies.append((done, done - frame.wall_time, bool(result.events)))

    def set_detection(self, on: bool) -> None:
        """Switch analysis on or off (from any thread), from the next frame. Off ends the
        open events; on starts a fresh pipeline (tracks and counts from zero)."""
        self.detection = bool(on)

    def _idle_frame(self, frame: Frame) -> None:
        """A frame while detection is off: kept for the live view, not analysed."""
        self.frames += 1
        self._decode.tick(clock.now())
        self._last_frame, self._last_frame_wall = frame, clock.now()
        if not self.online:
            self.set_state("running")
        pipeline = self.pipeline
        if pipeline is not None and pipeline is not self._retired:
            self._retired = pipeline
            self._last_result = None  # its tracks are no longer being followed
            self._close_events(frame.time)
            self._flush_counts()

    def _due_counts(
        self, pipeline: CameraPipeline, result: FrameResult, now: float
    ) -> dict[str, Any] | None:
        """``RuleEngine.counts()`` when they may have changed (a rule hit, or a new session)
        and ``counts_interval`` has passed since the last report; else None. A change inside
        the interval stays pending and goes out with a later frame, so the latest counts
        always arrive, at most once per interval."""
        if result.rule_events or pipeline is not self._counted_pipeline:
            self._counts_pending = True
            self._counted_pipeline = pipeline
        if not self._counts_pending or now - self._counts_sent < self.counts_interval:
            return None
        self._counts_pending = False
        self._counts_sent = now
        return pipeline.rules.counts()

    def _flush_counts(self) -> None:
        """Report counts still pending at the end of a session (the interval had not
        passed), so the last values are never lost."""
        pipeline = self._counted_pipeline
        if self._on_counts is None or pipeline is None or not self._counts_pending:
            return
        with self._lock:
            counts = pipeline.rules.counts()
            self._counts_pending = False
        try:
            self._on_counts(self.name, counts)
        except Exception:  # an alert sink must not turn a clean end into a crash
            log.exception("%s: final counts not reported", self.name)

    def _publish(self, events: list[Event]) -> None:
        for event in events:
            if event.state is EventState.END:
                self._open_events.discard(event.id)
            else:
                self._open_events.add(event.id)
            self.sink.publish(event)

    def _mark_activity(self, result: FrameResult) -> None:
        """Recording in motion mode follows moving objects (tracked boxes or rule hits);
        in events mode it follows open events. Pre/post-roll are the recorder's."""
        recorder = self.recorder
        if recorder is None or not result.analysed:
            return
        if result.moving:  # the motion gate saw motion: the timeline's motion lane
            recorder.note_motion(result.frame.wall_time)
        if recorder.mode == "motion":
            active = len(result.tracked) > 0 or bool(result.rule_events)
        elif recorder.mode == "events":
            active = bool(self._open_events)
        else:
            return
        if active:
            recorder.mark_activity(result.frame.wall_time)

    def _close_events(self, last_time: float | None) -> None:
        pipeline = self.pipeline
        if pipeline is None:
            return
        when = last_time if last_time is not None else clock.now()
        with self._lock:
            closed = pipeline.close(when)
        self._publish(closed)

    # -- status -----------------------------------------------------------------------------

    def _on_status(self, status: SourceStatus) -> None:
        self.set_state(_STATES.get(status.state, str(status.state)), status.last_error)

    def set_state(self, state: str, error: str | None = None) -> None:
        """Record a state change; tells ``on_online`` when online-ness flips."""
        online = state == "running"
        changed = online != self.online
        self.state, self.online = state, online
        if error is not None:
            self.last_error = error
        if changed and self._on_online is not None:
            try:
                self._on_online(self.name, online)
            except Exception:  # an alert sink must not take the camera down
                log.exception("%s: availability callback failed", self.name)

    def status(self) -> CameraStatus:
        """A snapshot of the camera's health for the API (cheap, no I/O)."""
        now = clock.now()
        return CameraStatus(
            name=self.name, online=self.online, state=self.state,
            decode_fps=round(self._decode.value(now), 2),
            detect_fps=round(self._detect.value(now), 2),
            last_frame_time=self._last_frame_wall, skipped_frames=self.skipped_frames,
            inference_ms=round(self.detector.ms, 2) if self.detector is not None else 0.0,
            queue_depth=self.queue_depth(), decode_errors=self.decode_errors,
        )  # fmt: skip

    @property
    def decode_errors(self) -> int:
        """Corrupt packets the decoder skipped since start, all sessions."""
        with self._lock:
            source = self._source
            before = self._decode_errors_before
        return before + (getattr(source, "decode_errors", 0) if source is not None else 0)

    def latest_frame(self) -> ImageArray | None:
        """The newest frame as BGR, long side at most ``preview_side``; a fresh array."""
        frame = self._last_frame
        return None if frame is None else self._preview(frame)

    def _preview(self, frame: Frame) -> ImageArray:
        """``frame`` as ``latest_frame`` gives it."""
        scale = min(1.0, self.preview_side / max(frame.width, frame.height))
        size = (max(2, round(frame.width * scale)), max(2, round(frame.height * scale)))
        if size == (frame.width, frame.height):
            return frame.bgr().copy()
        return frame.bgr(size)

    def latest_tracks(self) -> TrackSnapshot:
        """The tracks of the newest processed frame, boxes normalised (see ``TrackSnapshot``)."""
        last = self._last_result
        if last is None:
            return TrackSnapshot()
        result, pipeline = last
        frame = result.frame
        return TrackSnapshot.of(result.tracked, pipeline.class_names, frame.wall_time,
                                (frame.width, frame.height), result.detections,
                                decided=self._decided_thumb(result.decided))  # fmt: skip

    def _decided_thumb(self, decided: Frame | None) -> ImageArray | None:
        """The ``vigil.privacy.changes`` thumbnail of the analysed frame behind the newest
        tracks, made from it as ``latest_frame`` gives frames (so that live video compares
        like with like); made once per analysed frame, whoever asks."""
        if decided is None:
            return None
        cached = self._thumb
        if cached is not None and cached[0] is decided:
            return cached[1]
        thumb = thumbnail(self._preview(decided))
        self._thumb = (decided, thumb)  # one reference swap: callers may be many threads
        return thumb

    def counts(self) -> dict[str, Any]:
        """``RuleEngine.counts()`` of the live pipeline; ``{}`` before the first frame."""
        with self._lock:
            return {} if self.pipeline is None else self.pipeline.rules.counts()

    # -- rules ------------------------------------------------------------------------------

    def rules(self) -> tuple[dict[str, ZoneConfig], dict[str, LineConfig]]:
        with self._lock:
            return dict(self._zones), dict(self._lines)

    def update_rules(
        self, zones: Mapping[str, ZoneConfig], lines: Mapping[str, LineConfig]
    ) -> None:
        """Replace zones and lines between two frames; a ``ConfigError`` changes nothing."""
        with self._lock:
            if self.pipeline is not None:
                self.pipeline.update_rules(zones, lines)
            self._zones, self._lines = dict(zones), dict(lines)


def run_supervised(worker: CameraWorker, stop: threading.Event, backoff: Backoff) -> None:
    """Run ``worker``'s sessions until ``stop`` is set or its source ended: a session that
    failed (``SourceError``) or crashed is retried after the next ``backoff`` delay, reported
    in the worker's state; the delays start over once a session delivered frames."""
    while not stop.is_set():
        frames = worker.frames
        try:
            worker.run()
        except SourceError as exc:
            worker.set_state("offline", str(exc))
            log.warning("%s: %s; retrying", worker.name, exc)
        except Exception as exc:
            worker.restarts += 1
            worker.set_state("restarting", f"{type(exc).__name__}: {exc}")
            log.exception("%s: worker crashed (restart %d)", worker.name, worker.restarts)
        else:
            if stop.is_set() or worker.state == "ended":
                break
        if worker.frames > frames:
            backoff.reset()  # it worked for a while: start the delays again
        if stop.wait(backoff.next()):
            break
    if worker.state != "ended":
        worker.set_state("stopped")
