"""The per-camera analysis loop: one call per stage, one page long.

::

    Frame ─► sampler ─► motion gate ─► regions ─► detector ─► tracker ─► rules ─► events

Contract: call :meth:`CameraPipeline.process` with **every** decoded frame of the camera, in
order. Frames the sampler does not take (above the detect fps) cost nothing but a comparison;
they come back with the last tracked boxes so annotators and redactors can still draw on every
frame. Taken frames always reach the tracker, rules and events, with empty detections when
the gate found nothing to look at, because the tracker's clock must advance. A decode thread
may run the sampler and the gate ahead with :meth:`CameraPipeline.prepare` (``vigil
analyze`` does): then every frame goes through ``prepare`` first, in order.

The detector is anything with ``detect_batch`` (``vigil.detect.Detector``); ``None`` selects
the model-free motion-blob detector, so Vigil is useful before any model is present.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from vigil.boxes import nms
from vigil.config.models import LineConfig, ResolvedCamera, ZoneConfig
from vigil.detect.base import Detector
from vigil.detect.motion import MotionBlobDetector
from vigil.errors import VigilError
from vigil.events.lifecycle import EventManager
from vigil.ingest import FrameSampler
from vigil.motion import MotionGate, MotionResult, detection_regions
from vigil.rules.engine import RuleEngine
from vigil.runtime.carry import MovingCarry
from vigil.runtime.stationary import StationaryTracks
from vigil.track.bytetrack import ByteTracker
from vigil.types import Detections, Event, Frame, ImageArray, RuleEvent

Region = tuple[int, int, int, int]


@dataclass(slots=True)
class FrameResult:
    """What the pipeline made of one frame."""

    frame: Frame
    analysed: bool
    tracked: Detections
    regions: list[Region] = field(default_factory=list)
    rule_events: list[RuleEvent] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    ended_ids: list[int] = field(default_factory=list)
    #: The motion gate saw motion in this (analysed) frame.
    moving: bool = False
    #: The detector's boxes behind ``tracked`` (of the last analysed frame, like it): they
    #: include objects that no confirmed track holds yet (a track needs ``min_hits``), which
    #: people-hiding redaction must hide too.
    detections: Detections = field(default_factory=Detections.empty)
    #: The analysed frame ``tracked`` and ``detections`` come from (this frame when analysed;
    #: None before the first): what changed since then may be someone new, which redaction
    #: between analysed frames hides too (``vigil.privacy.changes``).
    decided: Frame | None = None


@dataclass(slots=True)
class PipelineStats:
    frames: int = 0
    analysed: int = 0
    inferences: int = 0
    images_inferred: int = 0
    skipped_quiet: int = 0
    skipped_stationary: int = 0
    #: Analysed frames whose moving tracks were carried without the detector.
    carried_moving: int = 0


class CameraPipeline:
    """Sampler, motion gate, detector, tracker, rules and events of one camera.

    ``frame_size`` is ``(width, height)`` of the frames that will be processed; ``live`` sets
    the time base of events (UTC for live sources, media seconds for files).
    """

    def __init__(
        self,
        camera: ResolvedCamera,
        detector: Detector | None,
        frame_size: tuple[int, int],
        *,
        live: bool = False,
        source_fps: float | None = None,
    ) -> None:
        self.camera = camera
        self.frame_size = frame_size
        self.detector = detector
        self._blobs = MotionBlobDetector() if detector is None else None
        self.class_names: Sequence[str] = (
            detector.class_names if detector is not None else MotionBlobDetector.class_names
        )
        self.sampler = FrameSampler(camera.detect.fps)
        # The motion detector needs the gate even when gating is switched off.
        self.gate = MotionGate(camera.motion, frame_size)
        # The tracker's nominal frame interval is the rate frames really reach it: the detect
        # rate, unless the source is slower (it then sees every frame).
        rate = min(camera.detect.fps, source_fps) if source_fps else camera.detect.fps
        self.tracker = ByteTracker(camera.tracker, frame_rate=rate)
        self.rules = RuleEngine(
            camera.name, camera.zones, camera.lines, frame_size, self.class_names
        )
        self.events = EventManager(
            camera.name,
            camera.events,
            self.class_names,
            live=live,
            rules_configured=self.rules.configured,
        )
        self.stationary = StationaryTracks(
            camera.motion.stationary_seconds, camera.motion.stationary_recheck
        )
        self.moving = MovingCarry(camera.motion.carry_frames)
        self.stats = PipelineStats()
        self._last_full_frame = -np.inf
        self._last = Detections.empty()
        self._last_detections = Detections.empty()
        self._decided: Frame | None = None
        # Frames `prepare` ran the sampler and gate on (another thread appends), in order.
        self._ahead: deque[tuple[Frame, MotionResult | None]] = deque()
        self._ahead_used = False

    def process(self, frame: Frame) -> FrameResult:
        """Advance by one decoded frame (see the module docstring for the contract)."""
        self.stats.frames += 1
        motion = self._front(frame)
        if motion is None:
            return FrameResult(frame, analysed=False, tracked=self._last,
                               detections=self._last_detections, decided=self._decided)  # fmt: skip
        self.stats.analysed += 1
        detections, regions = self._detect(frame, motion)
        tracked = self._inside_frame(self.tracker.update(detections, frame.time))
        ended = list(self.tracker.ended_ids)
        # A moving carry repeats boxes: no evidence that they stayed put.
        carried = self.moving.in_row > 0
        self.stationary.observe(Detections.empty() if carried else tracked, frame.time, ended)
        # The carry repeats what the detector saw, not the tracker's filtered box: a carried
        # filtered box lags the person and, fed back, holds the track back (a lost line
        # crossing on the people clip).
        self.moving.observe(self.tracker.detected(), frame.time, ended)
        rule_events = self.rules.update(tracked, frame.time, ended)
        events = self.events.update(frame, tracked, rule_events, ended)
        self._last, self._last_detections, self._decided = tracked, detections, frame
        return FrameResult(frame, True, tracked, regions, rule_events, events, ended,
                           moving=len(motion.boxes) > 0, detections=detections,
                           decided=frame)  # fmt: skip

    def prepare(self, frame: Frame) -> None:
        """Run the sampler and the motion gate on ``frame`` ahead of :meth:`process`.

        For a decode thread running a few frames ahead of the analysis: those two stages
        depend on nothing but the frames, so they can run there, off the analysis thread (the
        critical path while the detector runs on it). Once called, it must be called on every
        frame, in order, each before :meth:`process` gets it: both stages are stateful and
        from then on run here only. The results are those of :meth:`process` alone."""
        self._ahead_used = True
        motion = self.gate.update(frame) if self.sampler.take(frame) else None
        self._ahead.append((frame, motion))

    def _front(self, frame: Frame) -> MotionResult | None:
        """The sampler's and the gate's verdict on ``frame``: None when it is not taken."""
        if not self._ahead_used:
            return self.gate.update(frame) if self.sampler.take(frame) else None
        if not self._ahead or self._ahead[0][0] is not frame:
            raise VigilError(
                f"frame {frame.seq} reached CameraPipeline.process without prepare(); once "
                "prepare() is used, call it on every frame, in order, before process()"
            )
        return self._ahead.popleft()[1]

    def _inside_frame(self, tracked: Detections) -> Detections:
        """``tracked`` with its boxes clipped to the picture.

        The tracker reports each track's filtered box, which can reach a little past the
        frame's edge where a person walks in or out; a zone drawn to the edge would then see
        its anchor point (bottom centre) leave and re-enter (measured on the people clip: two
        extra table visits). The detector's own boxes never leave the picture.
        """
        width, height = self.frame_size
        np.clip(tracked.xyxy[:, 0::2], 0.0, float(width), out=tracked.xyxy[:, 0::2])
        np.clip(tracked.xyxy[:, 1::2], 0.0, float(height), out=tracked.xyxy[:, 1::2])
        return tracked

    def close(self, time: float) -> list[Event]:
        """End every open event (end of file, shutdown).

        Objects still inside a zone have had no EXIT to carry their visit's speed and heading,
        so those are folded into their events first; the rules' per-track state is left as is
        (a pipeline is not used after `close`)."""
        for tid in self.events.open_track_ids():
            self.events.add_measures(tid, self.rules.measures_of(tid))
        return self.events.close(time)

    def update_rules(
        self, zones: Mapping[str, ZoneConfig], lines: Mapping[str, LineConfig]
    ) -> None:
        """Replace zones and lines (call between two frames); a ``ConfigError`` changes
        nothing. With rules, events start on rule hits; without, on every confirmed object,
        so the event manager follows whether any rule is configured now."""
        self.rules.update_rules(zones, lines)
        self.events.rules_configured = self.rules.configured

    # -- detection -------------------------------------------------------------------------

    def _detect(self, frame: Frame, motion: MotionResult) -> tuple[Detections, list[Region]]:
        if self._blobs is not None:
            return self._blobs.detect(motion), []
        if self.camera.motion.enabled:
            live = self.tracker.predicted()
            carried = self.stationary.carry(frame.time, motion.boxes, live.tracker_id)
            if carried is not None:
                self.stats.skipped_stationary += 1
                return carried, []
            carried = self._carry_moving(frame, motion, live)
            if carried is not None:
                self.stats.carried_moving += 1
                return carried, []
        regions = self._regions(frame, motion)
        if not regions:
            self.stats.skipped_quiet += 1
            return Detections.empty(), []
        self.stationary.looked(frame.time)
        found = self._infer(frame, regions)
        self.moving.looked(motion.boxes, found)
        return found, regions

    def _carry_moving(
        self, frame: Frame, motion: MotionResult, live: Detections
    ) -> Detections | None:
        # The periodic full-frame look is never carried: it is what finds still objects.
        if frame.time - self._last_full_frame >= self.camera.motion.full_frame_interval:
            return None
        sizes = self.tracker.state_sizes()
        others = sizes["tracks"] != sizes["confirmed"] or sizes["lost"] > 0
        return self.moving.carry(frame.time, motion.boxes, live.tracker_id, others=others)

    def _regions(self, frame: Frame, motion: MotionResult) -> list[Region]:
        full: Region = (0, 0, frame.width, frame.height)
        cfg = self.camera.motion
        if not cfg.enabled:
            return [full]
        # A periodic full-frame look finds objects that were already still when the camera
        # started (a parked car), which the motion gate alone would never show the detector.
        if frame.time - self._last_full_frame >= cfg.full_frame_interval:
            self._last_full_frame = frame.time
            return [full]
        assert self.detector is not None
        return detection_regions(
            frame.size,
            motion.boxes,
            self.tracker.predicted().xyxy,
            margin=cfg.track_margin,
            min_side=min(self.detector.input_size),
            merge_gap=max(8, frame.width // 50),
        )

    def _infer(self, frame: Frame, regions: list[Region]) -> Detections:
        assert self.detector is not None
        images, offsets, scales = self._crops(frame, regions)
        results = self.detector.detect_batch(images)
        self.stats.inferences += 1
        self.stats.images_inferred += len(images)
        parts = []
        for dets, (ox, oy), (sx, sy) in zip(results, offsets, scales, strict=True):
            if len(dets):
                dets.xyxy = dets.xyxy * np.array([sx, sy, sx, sy], np.float32) + np.array(
                    [ox, oy, ox, oy], np.float32
                )
                parts.append(dets)
        merged = Detections.merge(parts)
        if len(regions) > 1 and len(merged):
            # Regions may overlap at their margins; one object must stay one box.
            keep = nms(merged.xyxy, merged.confidence, self.camera.detect.nms_iou, merged.class_id)
            merged = merged[keep]
        return merged

    def _crops(
        self, frame: Frame, regions: list[Region]
    ) -> tuple[list[ImageArray], list[tuple[int, int]], list[tuple[float, float]]]:
        """Images for the detector, with their offsets and scales back to frame pixels.

        A full-frame region is converted and scaled to the network's size in one decoder
        call (colour conversion of the full frame is the costliest step we can avoid);
        smaller regions are converted alone, at full resolution (``Frame.bgr_region``: a
        416-pixel crop of a 1080p frame costs 0.4 ms against 3.2 ms for the whole frame).
        """
        side = max(self.detector.input_size) if self.detector is not None else 416
        if len(regions) == 1 and regions[0] == (0, 0, frame.width, frame.height):
            scale = min(1.0, side / max(frame.width, frame.height))
            size = (max(2, round(frame.width * scale)), max(2, round(frame.height * scale)))
            image = frame.bgr(size)
            return [image], [(0, 0)], [(frame.width / size[0], frame.height / size[1])]
        images = [frame.bgr_region(region) for region in regions]
        return images, [(x1, y1) for x1, y1, _, _ in regions], [(1.0, 1.0)] * len(regions)
