"""`vigil analyze`: one video through the whole pipeline, results written to a folder.

Outputs (in ``out``): ``events.jsonl`` (complete events, one per line), ``counts.json`` (per
rule: totals and per-direction counts per class), ``tracks.txt`` (MOTChallenge format, one
row per tracked object per analysed frame), and on request ``annotated.mp4`` and
``snapshots/<event>.jpg``. Pixels that leave pass the Redactor first; unredacted output needs
an audited grant (see ``vigil.privacy.unredacted_access``).
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2

from vigil.annotate import Annotator
from vigil.annotate.plot import count_series, plot_counts
from vigil.config.models import ResolvedCamera
from vigil.detect.base import Detector
from vigil.errors import VigilError
from vigil.events.sinks import JsonlEventSink
from vigil.ingest import AvSource, open_source
from vigil.ingest.base import SourceInfo
from vigil.media.h264 import H264File
from vigil.privacy import Redactor, build_redactor
from vigil.privacy.audit import UnredactedGrant
from vigil.privacy.changes import Decided, thumbnail
from vigil.runtime.pipeline import CameraPipeline, FrameResult
from vigil.track.mot import MotWriter
from vigil.types import Detections, Event, EventState, Frame, ImageArray

ProgressFn = Callable[[int, int | None], None]


@dataclass(slots=True)
class AnalyzeOptions:
    out_dir: Path
    annotate: bool = False
    snapshots: bool = False
    plot: bool = False
    max_seconds: float | None = None
    grant: UnredactedGrant | None = None
    #: Leave undecoded the frames the sampler drops and no other frame needs (no effect
    #: with ``annotate``: the annotated video has every frame).
    skip_decode: bool = True
    #: Decode in a thread of its own, a few frames ahead of the analysis, so that decoding
    #: overlaps the pipeline's Python and the detector's waits (bench/pipeline.py).
    decode_thread: bool = True
    #: That thread also runs the sampler and the motion gate (``CameraPipeline.prepare``);
    #: None: when the frames are at most ``GATE_AHEAD_MAX_PIXELS`` (``gate_ahead``).
    gate_ahead: bool | None = None


#: The largest frames whose motion gate runs in the decode thread by default. It helps where
#: the analysis thread is the slower of the two and hurts where decoding is: on 2 cores
#: (bench/pipeline.py, one quiet run) x4.04 -> (ahead) vs x3.73 at 768x432, but x2.98 vs
#: x3.24 at 1080p, whose decoding alone (343 frames/s) is the wall. The gate's cost grows
#: with the frame, the analysis thread's (the network's input) does not.
GATE_AHEAD_MAX_PIXELS = 1280 * 720


def gate_ahead(options: AnalyzeOptions, size: tuple[int, int]) -> bool:
    """Whether the decode thread runs the sampler and the motion gate for ``size`` frames."""
    if options.gate_ahead is not None:
        return options.gate_ahead
    return size[0] * size[1] <= GATE_AHEAD_MAX_PIXELS


@dataclass(slots=True)
class AnalyzeSummary:
    source: str
    frames: int = 0
    analysed: int = 0
    inferences: int = 0
    images_inferred: int = 0
    stationary_skips: int = 0
    moving_carries: int = 0
    seconds: float = 0.0
    events: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, Any] = field(default_factory=dict)
    outputs: list[Path] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def analyze(
    url: str,
    camera: ResolvedCamera,
    detector: Detector | None,
    options: AnalyzeOptions,
    progress: ProgressFn | None = None,
) -> AnalyzeSummary:
    """Run the pipeline over ``url`` and write the outputs; returns what was found.

    ``detector=None`` uses the model-free motion detector. Raises ``SourceError`` for an
    unreadable source and ``PrivacyError`` when a pixel output was asked for and redaction
    cannot be guaranteed, before any frame is processed.
    """
    out = options.out_dir
    out.mkdir(parents=True, exist_ok=True)
    summary = AnalyzeSummary(source=url)
    if not options.snapshots and camera.events.snapshots:
        # No snapshot is written: keeping each event's best frame would only copy a full
        # frame per better score, and events.jsonl would say has_snapshot for no file.
        events = camera.events.model_copy(update={"snapshots": False})
        camera = camera.model_copy(update={"events": events})
    source = open_source(url, camera.name)
    with ExitStack() as stack:
        stack.callback(source.close)
        info = source.open()
        pipeline = CameraPipeline(
            camera,
            detector,
            (info.width, info.height),
            live=info.live,
            source_fps=info.fps or None,
        )
        outputs = _Outputs(
            out, camera=camera, pipeline=pipeline, info=info, options=options, stack=stack
        )
        if options.skip_decode and not options.annotate and isinstance(source, AvSource):
            interval = 1.0 / info.fps if info.fps else 0.0
            source.skip = lambda pts: not pipeline.sampler.needed(pts, interval)
        started = time.perf_counter()
        last_time = 0.0
        frames: Iterator[Frame] = source.frames()
        if options.decode_thread:
            ahead = pipeline.prepare if gate_ahead(options, (info.width, info.height)) else None
            prefetch = stack.enter_context(closing(_Prefetch(frames, ahead)))
            frames = iter(prefetch)
        for frame in _limited(frames, options.max_seconds):
            result = pipeline.process(frame)
            outputs.frame(result)
            last_time = frame.time
            if progress is not None:
                skipped = getattr(source, "skipped_frames", 0)
                progress(pipeline.stats.frames + skipped, info.frame_count)
        outputs.events(pipeline.close(last_time))
        if options.plot:
            plot_counts(outputs.series, out / "counts.png", end=last_time, live=info.live)
            outputs.paths.append(out / "counts.png")
        summary.seconds = time.perf_counter() - started
        summary.counts = pipeline.rules.counts()
        (out / "counts.json").write_text(json.dumps(summary.counts, indent=2) + "\n")
        summary.frames = pipeline.stats.frames + getattr(source, "skipped_frames", 0)
        summary.analysed = pipeline.stats.analysed
        summary.inferences = pipeline.stats.inferences
        summary.images_inferred = pipeline.stats.images_inferred
        summary.stationary_skips = pipeline.stats.skipped_stationary
        summary.moving_carries = pipeline.stats.carried_moving
        summary.events = outputs.finished
        summary.outputs = [*outputs.paths, out / "counts.json"]
    return summary


class _Prefetch:
    """Iterates ``frames`` in a thread of its own, at most ``depth`` frames ahead.

    ``prepare`` runs on each frame in that thread before it is handed over: the work the
    pipeline can do ahead (``CameraPipeline.prepare``), which would otherwise wait in the
    analysis thread while the decode thread waits for room in the queue. Errors of the
    source and of ``prepare`` are raised in the consumer, where they would have been;
    ``close`` stops the thread (the source must be closed too when it may be waiting for
    data)."""

    _END = object()

    def __init__(
        self,
        frames: Iterator[Frame],
        prepare: Callable[[Frame], None] | None = None,
        depth: int = 8,
    ) -> None:
        self._frames = frames
        self._prepare = prepare
        self._queue: queue.Queue[object] = queue.Queue(depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vigil-decode", daemon=True)
        self._thread.start()

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for frame in self._frames:
                if self._prepare is not None:
                    self._prepare(frame)
                if not self._put(frame):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(exc)
            return
        finally:
            # The source's generator closes its container in the thread that decoded.
            close = getattr(self._frames, "close", None)
            if close is not None:
                close()
        self._put(self._END)

    def __iter__(self) -> Iterator[Frame]:
        while True:
            item = self._queue.get()
            if item is self._END:
                return
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, Frame)
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30.0)


def _limited(frames: Iterator[Frame], max_seconds: float | None) -> Iterator[Frame]:
    first: float | None = None
    for frame in frames:
        first = frame.pts if first is None else first
        if max_seconds is not None and frame.pts - first > max_seconds:
            return
        yield frame


class _Outputs:
    """The files one analysis writes; built before the first frame so errors come early."""

    def __init__(
        self,
        out: Path,
        *,
        camera: ResolvedCamera,
        pipeline: CameraPipeline,
        info: SourceInfo,
        options: AnalyzeOptions,
        stack: ExitStack,
    ) -> None:
        from vigil.events.sinks import event_to_dict

        self._to_dict = event_to_dict
        self._names = list(pipeline.class_names)
        self._person = self._names.index("person") if "person" in self._names else -1
        self._thumb: tuple[Frame, ImageArray] | None = None  # the decided frame's (_decided)
        self.sink = stack.enter_context(closing(JsonlEventSink(out / "events.jsonl")))
        self.mot = stack.enter_context(closing(MotWriter(out / "tracks.txt")))
        self.paths = [out / "events.jsonl", out / "tracks.txt"]
        self.finished: list[dict[str, Any]] = []
        size = (info.width, info.height)
        self.redactor: Redactor | None = None
        if options.annotate or options.snapshots:
            # Built first: if faces cannot be hidden, nothing with pixels is written at all.
            self.redactor = build_redactor(camera.redact, size, grant=options.grant)
        self.video: H264File | None = None
        self.annotator: Annotator | None = None
        if options.annotate:
            self.annotator = Annotator(size, self._names, camera.zones, camera.lines)
            self.video = stack.enter_context(
                H264File(out / "annotated.mp4", info.fps or 10.0, size)
            )
            self.paths.append(out / "annotated.mp4")
        self.snap_dir = out / "snapshots" if options.snapshots else None
        self._pipeline = pipeline
        self._counts: dict[str, tuple[int, int]] = {}
        self.plot = options.plot
        self.series: dict[str, list[float]] = {}

    def frame(self, result: FrameResult) -> None:
        if self.plot:
            for name, times in count_series(result.rule_events).items():
                self.series.setdefault(name, []).extend(times)
        if result.analysed:
            self.mot.write(result.frame.seq + 1, result.tracked)
            if self.video is not None:
                self._counts = self._line_counts()
        self.events(result.events)
        if self.video is not None and self.annotator is not None:
            assert self.redactor is not None
            people = self._people(result)
            image = self.redactor.process(result.frame.bgr(), people=people,
                                          decided=self._decided(result, people))  # fmt: skip
            self.video.write(self.annotator.draw(image, result.tracked, self._counts))

    def events(self, events: list[Event]) -> None:
        for event in events:
            if event.state is not EventState.END:
                continue
            self.sink.publish(event)
            self.finished.append(self._to_dict(event))
            self._snapshot(event)

    def _snapshot(self, event: Event) -> None:
        snap = event.snapshot
        if self.snap_dir is None or snap is None or snap.image is None:
            return
        assert self.redactor is not None
        self.snap_dir.mkdir(parents=True, exist_ok=True)
        image = self.redactor.redact_still(snap.image, people=None)
        path = self.snap_dir / f"{event.id}.jpg"
        if not cv2.imwrite(str(path), image):
            raise VigilError(f"cannot write snapshot {path}; check free space and permissions")

    def _people(self, result: FrameResult) -> Detections | None:
        # Without a person class (motion detector) the Redactor runs its own person detector.
        if self._person < 0:
            return None
        # The detections too: a person's first frames come before its track is confirmed.
        raw = result.detections  # without ids: no track holds them (or it holds its own box)
        both = Detections.merge([result.tracked, Detections(raw.xyxy, raw.confidence,
                                                            raw.class_id)])  # fmt: skip
        return both[both.class_id == self._person]

    def _decided(self, result: FrameResult, people: Detections | None) -> list[Decided]:
        """Between analysed frames the people boxes are those of the last analysed frame:
        what changed since then (someone coming in) is hidden too (``vigil.privacy.changes``).
        On an analysed frame, and when the Redactor detects people on every frame itself,
        there is nothing to add."""
        hides_people = self.redactor is not None and self.redactor.people
        if people is None or not hides_people or result.analysed or result.decided is None:
            return []
        cached = self._thumb
        if cached is None or cached[0] is not result.decided:
            cached = self._thumb = (result.decided, thumbnail(result.decided.bgr()))
        return [Decided(cached[1])]

    def _line_counts(self) -> dict[str, tuple[int, int]]:
        lines = self._pipeline.rules.counts().get("lines", {})
        return {
            name: (int(c["total"]["a_to_b"]), int(c["total"]["b_to_a"]))
            for name, c in lines.items()
        }
