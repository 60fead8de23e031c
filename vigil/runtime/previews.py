"""``PreviewTaker``: the redacted preview thumbnails of the recording cameras, at record time.

One thread for all recording cameras of a process (the Supervisor's, or one camera actor's on
a cluster node). Every ``record.preview_interval`` seconds per camera it takes the camera's
latest analysed frame (``CameraHandle.latest_frame``: the worker thread's frame, or a worker
process's preview slot; the same frame the live view redacts), redacts it with the camera's
own settings (``VigilConfig.redact_for``: CenterFace on this frame for faces, the camera's
person tracks for people, or the person detector on this frame when its detector tracks no
people, the static masks) at the frame's size, scales it to
``PREVIEW_WIDTH`` and keeps the JPEG in the camera's ``PreviewBuffer``. When the recorder
finishes a segment, ``save(info)`` writes the previews taken during it beside the segment
(``vigil.record.previews``) and returns what the segment's row lists.

Why the analysed frame and not the recording: the recorder stream-copies and never decodes
(decoding the main stream for a thumbnail would cost more than recording it), and the
analysis decodes the sub-stream anyway. Why a thread of its own: face detection must not
delay the pipeline; when the CPU is short the thread falls behind and the previews thin out,
nothing else slows down. Fail closed: a preview whose redaction fails is not kept.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np

from vigil import clock
from vigil.config.models import RedactConfig, VigilConfig
from vigil.privacy.changes import Decided
from vigil.record.previews import PreviewBuffer, PreviewSet, save_previews
from vigil.record.recorder import Recorder
from vigil.record.segmenter import SegmentInfo
from vigil.runtime.view import CameraStatus, TrackSnapshot
from vigil.types import Detections, ImageArray

log = logging.getLogger(__name__)

#: Width (px) of a preview: a tooltip over the timeline, like Frigate's scrubbing previews.
PREVIEW_WIDTH = 320
JPEG_QUALITY = 70
#: A frame older than this (s) is not taken: the camera's analysis stalled or went offline.
MAX_FRAME_AGE_S = 5.0


class PreviewCamera(Protocol):
    """What the taker reads of a camera (a ``CameraHandle``)."""

    def status(self) -> CameraStatus: ...

    def latest_frame(self) -> ImageArray | None: ...

    def latest_tracks(self) -> TrackSnapshot: ...


#: ``(redact config, (width, height))`` → a function that redacts one image of that size.
RedactorFactory = Callable[[RedactConfig, tuple[int, int]], Callable[..., ImageArray]]


class PreviewTaker:
    """Takes and keeps the previews of the ``recorders``' cameras (see the module docstring).

    ``cameras``: the camera handles by name; ``root``: the data dir the segments are under.
    ``redactor``: builds the redaction of one camera and frame size (default: the camera's
    ``build_redactor`` with CenterFace shared between cameras of the same face settings).
    """

    def __init__(
        self, config: VigilConfig, cameras: Mapping[str, PreviewCamera],
        recorders: Mapping[str, Recorder], root: Path, *,
        redactor: RedactorFactory | None = None, width: int = PREVIEW_WIDTH,
    ) -> None:  # fmt: skip
        self.config, self.root, self.width = config, root, width
        self.cameras = cameras
        self.recorders = recorders
        self.interval = {
            name: config.camera(name).record.preview_interval
            for name in recorders if name in cameras
        }  # fmt: skip
        self.interval = {name: s for name, s in self.interval.items() if s > 0}
        self.buffers = {
            name: PreviewBuffer(keep_s=_keep_s(config, name)) for name in self.interval
        }  # fmt: skip
        self._redactor_factory = redactor or self._default_redactor
        self._redactors: dict[tuple[str, int, int], Callable[..., ImageArray]] = {}
        self._faces: dict[tuple[Any, ...], Any] = {}
        self._due: dict[str, float] = {}
        self._failed: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: Previews taken, per camera (for tests and the log).
        self.taken: dict[str, int] = dict.fromkeys(self.interval, 0)

    # -- life cycle -----------------------------------------------------------------------

    def start(self) -> threading.Thread | None:
        """Run the taking loop in a daemon thread (None when no camera has previews)."""
        if not self.interval:
            return None
        self._thread = threading.Thread(target=self._run, name="previews", daemon=True)
        self._thread.start()
        return self._thread

    def close(self, timeout: float = 10.0) -> None:
        """Stop taking previews and wait for the loop to end: a preview being redacted runs
        native code (the face detector, OpenCV), and a process exiting under a thread in it
        can abort ("terminate called without an active exception")."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                log.warning("previews: the taking thread did not stop within %.0f s", timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            for name, every in self.interval.items():
                if self._stop.is_set():
                    return
                if now < self._due.get(name, 0.0):
                    continue
                self._due[name] = now + every
                try:
                    self.take(name)
                except Exception:  # one camera's failure must not end the others' previews
                    log.exception("%s: preview not taken", name)
            self._stop.wait(min(0.25, *self.interval.values()))

    # -- taking and saving ----------------------------------------------------------------

    def take(self, camera: str) -> bool:
        """Take one preview of ``camera`` now; True when one was kept. Nothing is taken while
        the camera is not recording (no segment would hold it: disconnected, switched off, or
        idle in motion/events mode) or has no fresh frame."""
        recorder = self.recorders.get(camera)
        handle = self.cameras.get(camera)
        buffer = self.buffers.get(camera)
        if recorder is None or handle is None or buffer is None:
            return False
        now = clock.now()
        # Motion and events modes: only while recording (an idle camera's previews would be
        # redacted for nothing; the pre-roll goes without).
        if recorder.state != "recording" or not recorder.recording_at(now):
            return False
        status = handle.status()
        when = status.last_frame_time
        if not status.online or when is None or now - when > MAX_FRAME_AGE_S:
            return False
        frame = handle.latest_frame()
        if frame is None:
            return False
        jpeg = self.render(camera, frame, handle.latest_tracks())
        if jpeg is None:
            return False
        buffer.add(when + _recording_offset(recorder, now), jpeg)
        self.taken[camera] = self.taken.get(camera, 0) + 1
        return True

    def render(self, camera: str, frame: ImageArray, tracks: TrackSnapshot) -> bytes | None:
        """The redacted, scaled JPEG of ``camera``'s ``frame`` (None: redaction failed)."""
        import cv2

        height, width = int(frame.shape[0]), int(frame.shape[1])
        config = self.config.redact_for(camera)
        try:
            redact = self._redactor(camera, config, (width, height))
            people = None  # None: the Redactor's own person detector runs on this frame
            extra: dict[str, Any] = {}
            # Tracks from no analysed frame (detection switched off) hold nobody: then the
            # Redactor's person detector looks, as for a camera whose tracks hold no people.
            if _needs_people(config) and self._tracks_people(camera) and tracks.time is not None:
                people = _people(tracks, (width, height))
                # The newest frame, the boxes of the last analysed one: what changed since
                # (someone coming in) is hidden too (vigil.privacy.changes).
                if tracks.decided is not None:
                    extra["decided"] = [Decided(tracks.decided)]
            redacted = redact(frame, people=people, **extra)
        except Exception as exc:  # fail closed: no preview rather than an unredacted one
            if camera not in self._failed:
                log.error("%s: previews are not made: redaction failed (%s)", camera, exc)
                self._failed.add(camera)
            return None
        self._failed.discard(camera)
        scale = self.width / width
        if scale < 1:
            size = (self.width, max(2, round(height * scale)))
            redacted = cast(ImageArray, cv2.resize(redacted, size, interpolation=cv2.INTER_AREA))
        ok, data = cv2.imencode(".jpg", redacted, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        return bytes(data.tobytes()) if ok else None

    def save(self, info: SegmentInfo) -> PreviewSet:
        """Write the previews taken during the finished segment ``info``; what its row lists.

        Called where the segment is indexed (its ``on_segment``), before the row is written.
        """
        buffer = self.buffers.get(info.camera)
        if buffer is None:
            return PreviewSet()
        try:
            relative = info.path.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return PreviewSet()
        return save_previews(self.root, relative, info.start, buffer.take(info.start, info.end))

    # -- redaction ------------------------------------------------------------------------

    def _tracks_people(self, camera: str) -> bool:
        """Whether the camera's tracks hold its people: its detector is a model that keeps
        the ``person`` class. Else (motion blobs, other labels) people modes would hide
        nobody from the tracks, so the frame's own person detection is used."""
        from vigil.privacy.redactor import tracks_people

        return tracks_people(self.config.camera(camera).detect)

    def _redactor(self, camera: str, config: RedactConfig,
                  size: tuple[int, int]) -> Callable[..., ImageArray]:  # fmt: skip
        key = (camera, size[0], size[1])
        found = self._redactors.get(key)
        if found is None:
            found = self._redactor_factory(config, size)
            self._redactors[key] = found
        return found

    def _default_redactor(self, config: RedactConfig,
                          size: tuple[int, int]) -> Callable[..., ImageArray]:  # fmt: skip
        from vigil.privacy.redactor import build_face_detector, build_redactor, mode_needs_faces

        faces = None
        if mode_needs_faces(config.mode):
            # One CenterFace per face setting, not per camera: the taker runs one at a time.
            key = (config.face_threshold, tuple(config.face_scales), config.face_max_side)
            faces = self._faces.get(key)
            if faces is None:
                faces = build_face_detector(config, threads=1)
                self._faces[key] = faces
        return build_redactor(config, size, face_detector=faces).redact_still


def _recording_offset(recorder: Recorder, now: float) -> float:
    """Seconds the recording's timeline runs ahead of the wall clock (behind: negative).

    A segment's times come from its packets' timestamps on a timeline anchored when the
    recorder connected; a camera that sends a burst of buffered video on connect puts that
    timeline seconds ahead of the frames' wall-clock times (measured: ~4-5 s with an RTSP
    relay). A preview belongs where the recording shows the same moment: its frame's time
    plus this offset, from the last packet the recorder read (live, so it was read about
    now). 0 before the first packet."""
    last = recorder.segmenter.last_time
    return last - now if last > 0 else 0.0


def _keep_s(config: VigilConfig, camera: str) -> float:
    """How long previews wait for their segment: one segment, its pre-roll and a minute of
    lag between the analysis and the recording."""
    record = config.camera(camera).record
    return record.segment_seconds + record.pre_roll + 60.0


def _needs_people(config: RedactConfig) -> bool:
    from vigil.privacy.redactor import mode_needs_people

    return mode_needs_people(config.mode)


def _people(tracks: TrackSnapshot, size: tuple[int, int]) -> Detections:
    """The person tracks and detections (people not tracked yet) of the camera's latest
    analysed frame, in pixels of ``size``."""
    people = tracks.people()
    scale = np.array([size[0], size[1], size[0], size[1]], np.float32)
    boxes = np.array([t.box for t in people], np.float32).reshape(-1, 4) * scale
    ids = np.array([t.id for t in people], np.int64)
    return Detections(boxes, np.ones(len(people), np.float32), np.zeros(len(people), np.int64),
                      ids)  # fmt: skip
