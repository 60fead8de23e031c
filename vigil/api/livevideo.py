"""Live video: H.264 in fragmented MP4, one encoder (or stream copy) per camera and view.

``LiveVideo`` keeps one ``LiveEncoder`` per ``VideoView`` (camera, width, redacted), started by
its first viewer and stopped when the last leaves. The encoder's thread polls the camera's
newest frame at the camera's own rate (``decode_fps``), redacts it, scales it to the view's
width and encodes it as ``vigil.media.h264.LIVE`` (libx264 ``ultrafast``/``zerolatency``,
constrained baseline, no B-frames, a keyframe every second), muxed by ``Fragmenter`` as
fragmented MP4 with one fragment per frame, so a browser's Media Source Extensions can play
it with about one frame of muxing delay. Every viewer gets the init segment (``ftyp`` +
``moov``) first, then fragments from a keyframe on; a viewer that joins asks for a keyframe,
so it starts at once instead of waiting for the next GOP.

Which frames are new: the runtime's ``last_frame_time`` moves only with its status reports
(every 0.1 s), slower than a 15 fps camera, so the encoder compares the frame's pixels with
the last one it encoded; an identical frame is sent again only after ``REPEAT_S`` (so that a
still picture still plays). The muxer writes a frame's fragment when the next frame comes
(it needs the next timestamp for the duration), so a still picture shows ``REPEAT_S`` late.

Redaction, and its trade-off. Every frame is redacted by the camera's stream ``Redactor``
(its settings from ``AppState.redactor``; temporal hold, margin, style, static masks), but the
face detector (CenterFace: ~0.1-0.3 s for a 640 px frame on this class of CPU) cannot run on
every frame of a 15 fps stream, let alone of 16. ``CarriedFaces`` stands in for the detector:
a background thread runs the real detector on the newest frame as often as it can (at most
``face_hz`` a second), and between detections the last faces are *carried*: a face inside a
person track moves with that track's box (``RuntimeView.latest_tracks``); a face in no track
moves on with its velocity between the last two detections; either way it grows, per second
since its detection, by ``CARRY_GROWTH`` of its size and ``CARRY_SPEED`` of the frame's width,
covering where it may have gone. At a cut (the whole picture changed at once, ``CUT_DIFF``)
the carried faces are void and nothing is sent until a detection of the new picture. Nothing
is sent before the first detection finished either (fail
closed). Between detections, what changed since the detection's frame outside the carried
boxes (and, for faces, outside the objects of that frame's tracks, which the face search
looked at) is hidden too (``CarriedFaces.decided``, ``vigil.privacy.changes``): a face that
*enters* the picture is hidden from the frame it enters in, as part of the change, until a
detection looked at it. What this gives up: a face that turns to the camera inside a tracked
object's box shows until the next detection.
People (modes ``people``, ``faces+people``) come from the tracks of every frame when the
camera's tracks hold people (``vigil.privacy.tracks_people``), with the raw person detections
of the same analysed frame (``TrackSnapshot.detections``: a person who just came in has no
confirmed track for ``min_hits`` detections); when they cannot (the motion
detector, a model without the person class) the person detector runs on the live frames the
same way, carried between its detections like the faces (``CarriedFaces`` around
``PersonBoxes``), and nothing is sent before its first detection either. Either way what
changed since the frame the people boxes were decided on (the analysed frame's thumbnail,
``TrackSnapshot.decided``; the person detection's frame) is hidden too.

An unredacted view (behind a live grant) is a ``StreamCopy`` of the camera's own H.264 when
``copy_source`` (``AppState.copy_source``) gives the camera's ``CopyFeed``: its recorder's
packets muxed into fragmented MP4 as they are, no decoder and no encoder, in this process or
on the cluster node that records the camera (``vigil.record.copyfeed``). Otherwise (static
masks, which copied packets cannot carry; the camera not recorded; not H.264) it is the
camera's frame with the static masks applied, re-encoded like the redacted one, and
``reason`` says why (see ``docs/privacy.md``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import cv2
import numpy as np

from vigil.api.runtime import RuntimeView, TrackSnapshot
from vigil.media.h264 import (
    CLOCK,
    Fragment,
    Fragmenter,
    codec_string,
    decode_time,
    shift_decode_time,
    track_timescale,
)
from vigil.privacy import Redactor
from vigil.privacy.changes import Decided, thumbnail
from vigil.privacy.redactor import mode_needs_people
from vigil.privacy.regions import RegionFaceDetector
from vigil.record.copyfeed import CopyChunk, CopyReader
from vigil.types import Detections, FloatArray, ImageArray

log = logging.getLogger(__name__)

#: ``(camera, (width, height))`` → the redacting stream Redactor of that camera, built with
#: the face detector it is given (``CarriedFaces``) or None for the shared real one.
RedactorFactory = Callable[[str, tuple[int, int], Any], Redactor]
#: ``(camera, image)`` → the image as granted unredacted output shows it (static masks on).
Unredacted = Callable[[str, ImageArray], ImageArray]
#: ``camera`` → the real face detector for that camera's settings (None: mode needs none).
FaceSource = Callable[[str], Any]
#: ``camera`` → the person detector its live frames need (None: its mode hides no people, or
#: its tracks hold them).
PersonSource = Callable[[str], Any]
#: ``camera`` → its copy feed when its granted unredacted view may be stream-copied, else
#: None and why not (``AppState.copy_source`` holds the rule).
CopySource = Callable[[str], tuple[CopyReader | None, str | None]]

#: A frame that did not change is sent again after this many seconds: a still picture (a
#: camera that stopped, a still scene without noise) still shows, and plays on in the browser.
REPEAT_S = 0.5
#: Fragments a viewer may have waiting before it is considered slow (it then skips to the
#: next keyframe: a video stream cannot drop single fragments).
VIEWER_QUEUE = 30
#: A carried face grows on each side, per second of age, by this fraction of its size and by
#: this fraction of the frame's width (a walking person crosses a frame in ~5-10 s).
CARRY_GROWTH = 1.0
CARRY_SPEED = 0.1
#: Mean absolute change of a 64x36 grey thumbnail between two frames that counts as a cut
#: (walking people change it by ~1-2 grey levels; a cut in the face clip by ~10).
CUT_DIFF = 6.0
#: How often the real face detector runs at most, per camera (it is the CPU's big cost).
FACE_HZ = 5.0
#: Between whole-frame face searches at least this often, a live detection searches only
#: where a face can be new: what moved since the last detection's frame, the faces it
#: found and the camera's tracked objects (``vigil.privacy.regions``).
FACE_FULL_EVERY_S = 1.0
#: The live detectors' threads run at this nice: under load the encoders keep the camera's
#: rate and the detections come less often (what changed since one is hidden meanwhile).
DETECTOR_NICE = 10
#: The encoder polls the camera's newest frame this many times its frame rate.
POLL_RATIO = 1.5
#: A stream copy keeps the fragments of the current GOP for joining viewers up to this size.
COPY_GOP_BYTES = 8 * 1024 * 1024
#: A stream copy's reads of its feed wait this long for a chunk (a long poll).
COPY_POLL_S = 0.5
#: A stream copy whose feed is away (its camera actor does not answer, or is starting again
#: on another node after a failover) waits this long for it to come back, then ends: a
#: failover takes Ray's node health check (15 s by default) plus the actor's start and the
#: camera's connection, so this leaves room for about two.
COPY_GIVE_UP_S = 60.0
#: Retry pause of a stream copy while its feed is away.
COPY_RETRY_S = 0.5
#: Bounds of the encoder's polling rate when the camera does not report its own.
DEFAULT_FPS = 15.0
MAX_FPS = 30.0


@dataclass(frozen=True, slots=True)
class VideoView:
    """One encoded stream: ``camera`` at most ``width`` pixels wide, redacted or not.
    ``encode``: an unredacted view re-encoded even when it could be copied (the browser
    cannot play the camera's own profile; ``?encode=1``)."""

    camera: str
    width: int
    redacted: bool
    encode: bool = False


# -- redaction between face detections ---------------------------------------------------------


def _track_boxes(snapshot: TrackSnapshot, size: tuple[int, int], *,
                 detections: bool = False) -> tuple[FloatArray, np.ndarray]:  # fmt: skip
    """The snapshot's person tracks in pixels of a ``size`` image, with their track ids; with
    ``detections`` its person detections too (id -1: people no confirmed track holds yet)."""
    people = snapshot.people() if detections else \
        [t for t in snapshot.tracks if t.label == "person"]  # fmt: skip
    scale = np.array([size[0], size[1], size[0], size[1]], np.float32)
    boxes = np.array([t.box for t in people], np.float32).reshape(-1, 4) * scale
    return boxes, np.array([t.id for t in people], np.int64)


def _object_boxes(snapshot: TrackSnapshot, size: tuple[int, int]) -> tuple[FloatArray, np.ndarray]:
    """Every box of the snapshot (tracks and detections, any label) in pixels of a ``size``
    image, with its track id (-1 for a detection)."""
    objects = snapshot.tracks + snapshot.detections
    scale = np.array([size[0], size[1], size[0], size[1]], np.float32)
    boxes = np.array([t.box for t in objects], np.float32).reshape(-1, 4) * scale
    return boxes, np.array([t.id for t in objects], np.int64)


_NO_BOXES: tuple[FloatArray, np.ndarray] = (np.zeros((0, 4), np.float32), np.zeros(0, np.int64))


class PersonBoxes:
    """The person detector as ``CarriedFaces`` calls a detector: ``detect(image)`` → the
    ``(n, 5)`` person boxes (box, score) of ``image``."""

    def __init__(self, detector: Any) -> None:
        self._detector = detector
        names = list(detector.class_names)
        self._person = names.index("person") if "person" in names else -1

    def detect(self, image: ImageArray) -> FloatArray:
        dets = self._detector.detect_batch([image])[0]
        if self._person >= 0:
            dets = dets[dets.class_id == self._person]
        return np.concatenate([dets.xyxy.reshape(-1, 4), dets.confidence.reshape(-1, 1)],
                              axis=1).astype(np.float32)  # fmt: skip


class CarriedFaces:
    """A face "detector" for a live ``Redactor``: the real detector's newest faces, carried
    to the current frame (see the module docstring). Around ``PersonBoxes`` it carries
    people the same way. ``observe`` gives it each frame and the
    tracks of that moment before the Redactor runs; ``ready`` once one detection finished.
    ``decided()`` is the frame of the detection carried now (``vigil.privacy.changes``): for
    faces, with the objects of the tracks of that frame as looked at (``objects`` given to
    ``observe``: the detector searched them, and a face among them is carried with them);
    for people, without (a person is in a person box or is someone new)."""

    def __init__(self, detector: Any, face_hz: float = FACE_HZ, what: str = "face",
                 full_every_s: float = 0.0) -> None:  # fmt: skip
        #: ``full_every_s`` > 0: a face detector searched by regions between whole-frame
        #: passes that often (the tracked objects always searched).
        self._regions = (RegionFaceDetector(detector, full_every=1 << 30,
                                            full_every_s=full_every_s)
                         if full_every_s > 0 else None)  # fmt: skip
        self._detector = detector if self._regions is None else self._regions
        self.what = what
        self._objects_known = what == "face"
        self._period = 1.0 / face_hz
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._frame: tuple[ImageArray, FloatArray, np.ndarray, int,
                           tuple[FloatArray, np.ndarray]] | None = None  # fmt: skip
        #: The frame of the detection carried now: its thumbnail and its objects.
        self._decided: tuple[ImageArray, tuple[FloatArray, np.ndarray]] | None = None
        self._objects = _NO_BOXES
        self._small: np.ndarray | None = None
        self._size: tuple[int, ...] = ()
        self._epoch = 0
        self._searched_epoch = 0
        self.cuts = 0
        #: Last detection: time, face boxes, the track id each face was in (-1: none), the
        #: face's box relative to that track's box, and its velocity (px/s, from the
        #: detection before).
        self._faces: Faces | None = None
        self._tracks: tuple[FloatArray, np.ndarray] = (np.zeros((0, 4), np.float32),
                                                       np.zeros(0, np.int64))  # fmt: skip
        self.detections = 0
        self.failed: Exception | None = None
        self._thread = threading.Thread(target=self._run, name=f"live-{what}s", daemon=True)
        self._thread.start()

    @property
    def ready(self) -> bool:
        return self._faces is not None

    def observe(self, image: ImageArray, tracks: tuple[FloatArray, np.ndarray],
                objects: tuple[FloatArray, np.ndarray] = _NO_BOXES) -> None:  # fmt: skip
        """Take the next frame (and the person tracks and all objects of now). At a cut
        (the picture changed at once: a file camera looping, a reconnect, a PTZ move) the
        carried faces are void: ``ready`` is False until a detection of a frame after the
        cut finished."""
        small = cv2.resize(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), (64, 36),
                           interpolation=cv2.INTER_AREA).astype(np.int16)  # fmt: skip
        size = image.shape[:2]
        with self._lock:
            # A new picture size (the camera changed its resolution) is a cut too: the
            # carried boxes are in the old size's pixels, whatever the picture looks like.
            if self._small is not None and (size != self._size or float(
                    np.abs(small - self._small).mean()) > CUT_DIFF):  # fmt: skip
                self._epoch += 1
                self._faces = None
                self.cuts += 1
            self._small, self._size = small, size
            self._frame = (image, tracks[0], tracks[1], self._epoch, objects)
            self._tracks, self._objects = tracks, objects
        self._wake.set()

    def detect(self, image: ImageArray) -> FloatArray:
        """The carried faces for the frame last given to ``observe`` (``(n, 5)``: box, 1.0)."""
        with self._lock:
            faces, tracks = self._faces, self._tracks
        if faces is None:
            return np.zeros((0, 5), np.float32)
        boxes = _carry(faces, tracks, time.monotonic() - faces[0], int(image.shape[1]))
        return np.concatenate([boxes, np.ones((len(boxes), 1), np.float32)], axis=1)

    def decided(self) -> Decided | None:
        """The frame of the detection carried now (None before the first): what changed
        since then outside the carried boxes is hidden too (see the class docstring)."""
        with self._lock:
            decided, now = self._decided, self._objects
        if decided is None:
            return None
        thumb, (boxes, ids) = decided
        if not self._objects_known:
            return Decided(thumb)
        # The same objects now (by track id) were looked at too, wherever they went since.
        same = np.isin(now[1], ids[ids >= 0]) & (now[1] >= 0)
        return Decided(thumb, np.concatenate([boxes, now[0][same]]).astype(np.float32))

    def wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.ready and self.failed is None and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.ready

    def close(self) -> None:
        self._stop.set()
        self._wake.set()

    def _run(self) -> None:
        yield_cpu()
        while not self._stop.is_set():
            self._wake.wait()
            self._wake.clear()
            with self._lock:
                taken, self._frame = self._frame, None
            if taken is None or self._stop.is_set():
                continue
            started = time.monotonic()
            image, track_boxes, track_ids, epoch, objects = taken
            self._search_at(epoch, track_boxes, objects)
            try:
                found = np.asarray(self._detector.detect(image), np.float32)
            except Exception as exc:  # fail closed: the encoder stops sending
                log.warning("live %s detection failed: %s", self.what, exc)
                self.failed = exc
                return
            boxes = found[:, :4].reshape(-1, 4)
            ids, rel = _attach(boxes, track_boxes, track_ids)
            thumb = thumbnail(image)
            with self._lock:
                if epoch != self._epoch:
                    continue  # a cut came while detecting: this frame's faces are void
                velocity = _velocity(self._faces, started, boxes)
                self._faces = (started, boxes, ids, rel, velocity)
                self._decided = (thumb, objects)
            self.detections += 1
            self._stop.wait(max(0.0, self._period - (time.monotonic() - started)))

    def _search_at(self, epoch: int, tracks: FloatArray,
                   objects: tuple[FloatArray, np.ndarray]) -> None:  # fmt: skip
        """Where the region search looks besides what moved: the tracked objects of the
        frame; after a cut, the whole frame (what moved is measured against the frame
        before it, of another picture)."""
        if self._regions is None:
            return
        if epoch != self._searched_epoch:
            self._regions.reset()
            self._searched_epoch = epoch
        self._regions.hints = np.concatenate([tracks, objects[0]]).astype(np.float32)


def yield_cpu() -> None:
    """Give the calling thread a lower priority than the encoders (Linux: per-thread nice)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), DETECTOR_NICE)
    except (AttributeError, OSError) as exc:  # not Linux: every thread shares one nice
        log.debug("live detector thread keeps its priority: %s", exc)


#: A detection as ``CarriedFaces`` keeps it (see ``CarriedFaces._faces``).
Faces = tuple[float, FloatArray, np.ndarray, FloatArray, FloatArray]


def _velocity(before: Faces | None, when: float, boxes: FloatArray) -> FloatArray:
    """Each face's velocity (px/s, all four coordinates) from the nearest face of the
    detection ``before`` (within two face sizes of it); zero for a face new since then."""
    out = np.zeros((len(boxes), 4), np.float32)
    if before is None or not len(before[1]) or when <= before[0]:
        return out
    dt = when - before[0]
    old = before[1]
    centres = (old[:, :2] + old[:, 2:]) / 2
    for i, box in enumerate(boxes):
        centre = (box[:2] + box[2:]) / 2
        dist = np.linalg.norm(centres - centre, axis=1)
        j = int(np.argmin(dist))
        if dist[j] <= 2 * max(box[2] - box[0], box[3] - box[1]):
            out[i] = (box - old[j]) / dt
    return out


def _attach(
    faces: FloatArray, tracks: FloatArray, ids: np.ndarray
) -> tuple[np.ndarray, FloatArray]:
    """Each face's track (the smallest person box holding its centre; -1 when none) and its
    box relative to that track's box (0..1 of the track's width and height)."""
    out_ids = np.full(len(faces), -1, np.int64)
    rel = np.zeros((len(faces), 4), np.float32)
    for i, face in enumerate(faces):
        cx, cy = (face[0] + face[2]) / 2, (face[1] + face[3]) / 2
        inside = ((tracks[:, 0] <= cx) & (cx <= tracks[:, 2])
                  & (tracks[:, 1] <= cy) & (cy <= tracks[:, 3]))  # fmt: skip
        if not inside.any():
            continue
        areas = (tracks[:, 2] - tracks[:, 0]) * (tracks[:, 3] - tracks[:, 1])
        j = int(np.argmin(np.where(inside, areas, np.inf)))
        t = tracks[j]
        w, h = max(1e-3, t[2] - t[0]), max(1e-3, t[3] - t[1])
        rel[i] = [(face[0] - t[0]) / w, (face[1] - t[1]) / h, (face[2] - t[0]) / w,
                  (face[3] - t[1]) / h]  # fmt: skip
        out_ids[i] = int(ids[j])
    return out_ids, rel


def _carry(faces: Faces, tracks: tuple[FloatArray, np.ndarray], age: float,
           frame_width: int) -> FloatArray:  # fmt: skip
    """The detection's faces moved to now: with their track when it still exists, else by
    their last velocity; grown by ``CARRY_GROWTH`` of their size and ``CARRY_SPEED`` of the
    frame's width per second of ``age``."""
    _, boxes, ids, rel, velocity = faces
    age = max(0.0, age)
    out = boxes + velocity * age
    track_boxes, track_ids = tracks
    for i, tid in enumerate(ids):
        match = np.flatnonzero(track_ids == tid) if tid >= 0 else np.zeros(0, np.int64)
        if len(match):
            t = track_boxes[int(match[0])]
            w, h = t[2] - t[0], t[3] - t[1]
            out[i] = [t[0] + rel[i, 0] * w, t[1] + rel[i, 1] * h, t[0] + rel[i, 2] * w,
                      t[1] + rel[i, 3] * h]  # fmt: skip
    wh = out[:, 2:] - out[:, :2]
    grow = (wh * CARRY_GROWTH + CARRY_SPEED * frame_width) * age
    return np.asarray(np.concatenate([out[:, :2] - grow, out[:, 2:] + grow], axis=1), np.float32)


# -- one encoder, many viewers ------------------------------------------------------------------


@dataclass(eq=False)
class Viewer:
    """One WebSocket's queue of messages (bytes), filled from the encoder's thread."""

    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[bytes | None] = field(default_factory=lambda: asyncio.Queue(VIEWER_QUEUE))
    started: bool = False  # got its first keyframe
    lagging: bool = False

    def offer(self, data: bytes | None, *, must: bool = False) -> None:
        """Queue ``data`` (None: the stream ended); ``must``: an init segment, which a full
        queue makes room for (what it held is older than the new stream)."""
        self.loop.call_soon_threadsafe(self._put, data, must)

    def _put(self, data: bytes | None, must: bool = False) -> None:
        if data is None or (must and self.queue.full()):  # make room for the goodbye
            while not self.queue.empty():
                self.queue.get_nowait()
        try:
            self.queue.put_nowait(data)
        except asyncio.QueueFull:
            self.lagging = True  # skip to the next keyframe (see ``LiveEncoder._send``)


class LiveStream:
    """One stream's fan-out: its viewers, the init segment and the fragments it sends them,
    fed by a thread that makes the fragments (``LiveEncoder`` or ``StreamCopy``).

    ``mode``: ``encode`` or ``copy``; ``reason``: why an unredacted view is re-encoded (None
    when it is copied, or redacted)."""

    mode = "encode"

    def __init__(self, view: VideoView) -> None:
        self.view = view
        self._viewers: list[Viewer] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._want_key = True
        self.init: bytes | None = None
        self.codec: str | None = None
        self.frames = 0
        self.error: str | None = None
        self.reason: str | None = None
        #: The thread ended: a viewer added now is told at once (else it would wait for ever).
        self._ended = False
        self._thread = threading.Thread(target=self._guarded, name=f"live-{view.camera}",
                                        daemon=True)  # fmt: skip

    def add(self, viewer: Viewer) -> None:
        with self._lock:
            if self._ended:
                viewer.offer(None)
                return
            self._viewers.append(viewer)
            self._want_key = True
            if self.init is not None:
                viewer.offer(self.init)

    def remove(self, viewer: Viewer) -> int:
        with self._lock:
            if viewer in self._viewers:
                self._viewers.remove(viewer)
            return len(self._viewers)

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float = 5.0) -> None:
        self._thread.join(timeout)

    def _guarded(self) -> None:
        try:
            self._run()
        except Exception as exc:  # a fault ends this stream; viewers reconnect for a fresh one
            log.exception("live video of %s failed", self.view.camera)
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            with self._lock:
                viewers, self._viewers = list(self._viewers), []
                self._ended = True
            for viewer in viewers:
                viewer.offer(None)

    def _run(self) -> None:
        raise NotImplementedError

    def _publish_init(self, init: bytes) -> None:
        """Send ``init`` to every viewer; a later one (a copy's camera restarted its stream)
        must reach each, and its fragments start at its next keyframe."""
        with self._lock:
            again = self.init is not None
            self.init = init
            self.codec = codec_string(init)
            for viewer in self._viewers:
                if again:
                    viewer.started = False
                viewer.offer(init, must=True)

    def _send(self, fragment: Fragment) -> None:
        self.frames += 1
        with self._lock:
            for viewer in self._viewers:
                if viewer.lagging or not viewer.started:
                    if not fragment.key:
                        self._want_key = True
                        continue
                    viewer.lagging, viewer.started = False, True
                viewer.offer(fragment.data)


class LiveEncoder(LiveStream):
    """The thread that redacts, encodes and fans out one ``VideoView`` (see module doc)."""

    def __init__(
        self, view: VideoView, runtime: RuntimeView, render: Callable[[ImageArray], ImageArray],
        carried: list[CarriedFaces], fps: float, *, on_stop: Callable[[], None] | None = None,
    ) -> None:  # fmt: skip
        super().__init__(view)
        self.runtime = runtime
        self._render = render
        self._carried = carried
        self._on_stop = on_stop
        self.fps = fps
        #: The picture size of the current fragmenter; whether its init segment went out.
        self._size: tuple[int, int] = (0, 0)
        self._announced = False
        self._thread.start()

    def stop(self) -> None:
        super().stop()
        for carried in self._carried:
            carried.close()
        if self._on_stop is not None:
            self._on_stop()

    def _run(self) -> None:
        fragmenter: Fragmenter | None = None
        last: ImageArray | None = None
        # A little faster than the camera: a frame is caught even when the clocks drift apart
        # (each poll is a call into the camera's worker process, so not much faster).
        period = 1.0 / (POLL_RATIO * self.fps)
        next_at = sent_at = time.monotonic()
        try:
            while not self._stop.is_set():
                next_at = max(next_at + period, time.monotonic() - period)
                frame = self.runtime.latest_frame(self.view.camera)
                now = time.monotonic()
                if frame is not None and (last is None or now - sent_at >= REPEAT_S
                                          or not np.array_equal(frame, last)):  # fmt: skip
                    image = self._prepare(frame)
                    if image is not None:
                        last, sent_at = frame, now
                        fragmenter = self._fragmenter(fragmenter, image)
                        self._encode(fragmenter, image)
                self._stop.wait(max(0.0, next_at - time.monotonic()))
        finally:
            if fragmenter is not None:
                fragmenter.close()

    def _prepare(self, frame: ImageArray) -> ImageArray | None:
        """The frame as the view shows it, or None while redaction is not ready yet."""
        if self._carried:
            size = (int(frame.shape[1]), int(frame.shape[0]))
            snapshot = self.runtime.latest_tracks(self.view.camera)
            tracks, objects = _track_boxes(snapshot, size), _object_boxes(snapshot, size)
            for carried in self._carried:
                carried.observe(frame, tracks, objects)
            for carried in self._carried:
                if carried.failed is not None:
                    raise RuntimeError(f"{carried.what} detection failed: {carried.failed}")
            if not all(carried.ready for carried in self._carried):
                return None  # fail closed: nothing leaves before the first detections
        return _scale(self._render(frame), self.view.width)

    def _fragmenter(self, fragmenter: Fragmenter | None, image: ImageArray) -> Fragmenter:
        """The fragmenter for ``image``: a new one, whose init segment goes out as a new
        stream on the same sockets (as a copy's camera reconnecting), when the picture's
        size changed (the camera's resolution did) rather than a crop or pad of the old."""
        size = (int(image.shape[1]), int(image.shape[0]))
        if fragmenter is not None and size == self._size:
            return fragmenter
        if fragmenter is not None:
            log.info("live video of %s: the picture is %dx%d now, was %dx%d: a new stream",
                     self.view.camera, *size, *self._size)  # fmt: skip
            fragmenter.close()
            with self._lock:
                self._want_key = True
        self._size, self._announced = size, False
        return Fragmenter(size, self.fps)

    def _encode(self, fragmenter: Fragmenter, image: ImageArray) -> None:
        with self._lock:
            key, self._want_key = self._want_key, False
        pts = int(time.time() * CLOCK.denominator)  # the wall-clock capture time
        fragments = fragmenter.encode(image, pts, keyframe=key)
        if not self._announced and fragmenter.init is not None:
            self._announced = True
            self._publish_init(fragmenter.init)
        for fragment in fragments:
            self._send(fragment)


class StreamRestartedError(Exception):
    """The camera's copied stream cannot go on: its feed cannot copy (any more), or it was
    away for longer than ``COPY_GIVE_UP_S``; the view ends and its viewers reconnect."""


class _CopyClock:
    """Keeps a copy's decode times going when its feed is replaced by another (the camera's
    actor failed over to another node, or its feed idled and started again): a new feed's
    clock starts again at zero, so its fragments are moved on to start where the last feed's
    stream ended, and a player appends them to the same buffer, as after a reconnect (which
    the feed itself keeps continuous)."""

    def __init__(self) -> None:
        self._timescale = 1
        #: Seconds added to the current feed's decode times.
        self._offset = Fraction(0)
        #: Where the stream sent so far ends (s), and its last frame's length.
        self._end = Fraction(0)
        self._last: Fraction | None = None
        self._step = Fraction(1, 10)
        self._rebase = False

    def init(self, init: bytes) -> None:
        """An init segment of the feed: its timescale holds for the fragments after it."""
        self._timescale = track_timescale(init)

    def new_feed(self) -> None:
        """Another feed from now on: its first fragment starts at the end so far."""
        self._rebase, self._last = True, None

    def place(self, fragment: Fragment) -> Fragment:
        """``fragment`` with its decode time on the copy's clock."""
        ticks = decode_time(fragment.data)
        own = Fraction(ticks, self._timescale)
        if self._rebase:
            self._rebase = False
            self._offset = self._end - own
        when = own + self._offset
        if self._last is not None and when > self._last:
            self._step = when - self._last
        self._last = when
        self._end = max(self._end, when + self._step)
        shift = round(self._offset * self._timescale)
        if shift == 0:
            return fragment
        return Fragment(shift_decode_time(fragment.data, shift), fragment.key)


class StreamCopy(LiveStream):
    """A granted unredacted view as the camera's own H.264, copied packet for packet: the
    camera's ``CopyFeed`` (``vigil.record.copyfeed``) muxes its recorder's packets into
    fragmented MP4 once, here or on the cluster node that records it, and this thread hands
    its chunks to the viewers. No decoding, no encoding, the camera's resolution whatever the
    view's width (see ``docs/privacy.md`` for when a view is copied). It starts at a
    keyframe; a viewer that joins gets the current GOP (kept up to ``COPY_GOP_BYTES``) and so
    starts at once, a little behind the live edge that the player jumps to. When the camera
    reconnects or changes its parameters, the feed's next chunk is a new init segment: the
    viewers get it (after a text head, ``vigil.api.routes.livevideo``) and go on from its
    keyframe on the same socket. The recorder never waits for it: the feed reads its own
    bounded subscription, which skips to the next keyframe when it falls behind.

    A feed that goes away and comes back as another (its camera actor failed over to another
    node; ``CopyBatch.feed`` changed) is followed the same way: the copy waits for it (reads
    that fail, a recorder still starting; ``COPY_GIVE_UP_S`` at most), then sends the new
    feed's init segment and goes on from its keyframe, its decode times moved on to continue
    the old ones (``_CopyClock``). Only a feed that cannot copy, or one away or silent (it
    answers with no chunk) for longer than that, ends the view (its ``error`` says why)."""

    mode = "copy"

    def __init__(self, view: VideoView, reader: CopyReader) -> None:
        super().__init__(view)
        self._reader = reader
        self._id = uuid.uuid4().hex  # this view's reader id at the feed
        self._gop: list[bytes] = []
        self._gop_bytes = 0
        self._clock = _CopyClock()
        #: Init segments sent after the first: the camera's stream restarted under the copy.
        self.restarts = 0
        #: Feeds followed after the first (the camera's actor failed over, or its feed idled).
        self.feeds = 0
        self._fresh = False  # a new feed's first init segment is still to come
        self._thread.start()

    def add(self, viewer: Viewer) -> None:
        with self._lock:
            if self._ended:
                viewer.offer(None)
                return
            self._viewers.append(viewer)
            if self.init is not None:
                viewer.offer(self.init)
                # The current GOP (when it fits the viewer's queue): it starts at once.
                if self._gop and len(self._gop) < VIEWER_QUEUE - 1:
                    for data in self._gop:
                        viewer.offer(data)
                    viewer.started = True

    def _run(self) -> None:
        after, feed = -1, None
        away: float | None = None  # since when the feed is away (monotonic s)
        heard = time.monotonic()  # when the feed last gave a chunk
        try:
            while not self._stop.is_set():
                try:
                    batch = self._reader.read(after, COPY_POLL_S, self._id)
                except Exception as exc:  # the camera's actor does not answer (now)
                    away = self._wait(away, f"its copy feed does not answer: {exc}")
                    continue
                if batch.problem is not None:
                    if not batch.waiting:
                        raise StreamRestartedError(batch.problem)
                    away = self._wait(away, batch.problem)  # a recorder still starting
                    continue
                if away is not None:  # back: its silence counts from now, not from before
                    heard, away = time.monotonic(), None
                if batch.feed != feed:
                    if feed is not None:
                        log.info("live stream copy of %s follows the camera's new copy feed",
                                 self.view.camera)  # fmt: skip
                        self.feeds += 1
                        self._clock.new_feed()
                        self._fresh = True
                    feed = batch.feed
                    if after >= 0:
                        after = -1  # numbers of the old feed: the new one's start instead
                        continue
                after = batch.last
                heard = self._heard(heard, bool(batch.chunks))
                self._forward(batch.chunks)
        except StreamRestartedError as exc:
            log.info("live stream copy of %s ends: %s", self.view.camera, exc)
            self.error = str(exc)
        finally:
            try:
                self._reader.release(self._id)
            except Exception:  # a remote feed that is gone: it stops when idle
                log.warning("%s: the copy feed was not released", self.view.camera)

    def _wait(self, away: float | None, why: str) -> float:
        """Wait a little for the feed to come back (``away``: since when it is away; the
        time returned); ``StreamRestartedError`` after ``COPY_GIVE_UP_S``."""
        now = time.monotonic()
        away = now if away is None else away
        if now - away > COPY_GIVE_UP_S:
            raise StreamRestartedError(f"the camera's live stream did not come back within "
                                       f"{COPY_GIVE_UP_S:g} s ({why})")  # fmt: skip
        self._stop.wait(COPY_RETRY_S)
        return away

    def _heard(self, heard: float, chunks: bool) -> float:
        """When the feed last gave a chunk, now that a read gave some or none; a feed that
        answers but gives nothing for ``COPY_GIVE_UP_S`` (its recorder gets no packets) ends
        the view as one that is away does, so that its player reconnects rather than wait on a
        silent socket for ever."""
        now = time.monotonic()
        if chunks:
            return now
        if now - heard > COPY_GIVE_UP_S:
            raise StreamRestartedError(f"no video from the camera's copy feed for "
                                       f"{COPY_GIVE_UP_S:g} s")  # fmt: skip
        return heard

    def _forward(self, chunks: tuple[CopyChunk, ...]) -> None:
        for chunk in chunks:
            if chunk.init:
                self._clock.init(chunk.data)
                # A new feed's init goes out even when it is the same: the player then
                # starts its decoder again at the new feed's keyframe.
                if chunk.data != self.init or self._fresh:
                    self._fresh = False
                    self._publish_init(chunk.data)
                continue
            fragment = self._clock.place(Fragment(chunk.data, chunk.key))
            self._keep(fragment)
            self._send(fragment)

    def _publish_init(self, init: bytes) -> None:
        with self._lock:
            if self.init is not None:
                self.restarts += 1
            self._gop, self._gop_bytes = [], 0  # fragments of the old stream
        super()._publish_init(init)

    def _keep(self, fragment: Fragment) -> None:
        with self._lock:
            if fragment.key:
                self._gop, self._gop_bytes = [], 0
            elif not self._gop:
                return
            if self._gop_bytes + len(fragment.data) > COPY_GOP_BYTES:
                self._gop, self._gop_bytes = [], 0
                return
            self._gop.append(fragment.data)
            self._gop_bytes += len(fragment.data)


def _scale(image: ImageArray, width: int) -> ImageArray:
    """At most ``width`` wide (odd sides are the encoder's to pad)."""
    h, w = image.shape[:2]
    if w <= width:
        return image
    height = max(2, round(h * width / w))
    return np.asarray(cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA), np.uint8)


class LiveVideo:
    """The encoders of every watched ``VideoView`` (thread-safe; see the module docstring).

    ``redactor(camera, size, faces)`` builds the camera's stream Redactor around the given
    face detector; ``face_detector(camera)`` is the real detector of that camera's settings
    (None when its mode needs no faces); ``people(camera)`` whether its mode hides people;
    ``person_detector(camera)`` the person detector to run on its live frames (None when its
    mode hides no people or its tracks hold them); ``fallback_person(camera)`` the one to run
    instead of the tracks while they come from no analysed frame (detection switched off).
    """

    def __init__(
        self, runtime: RuntimeView, *, redactor: RedactorFactory, unredacted: Unredacted,
        face_detector: FaceSource, needs_people: Callable[[str], bool],
        face_hz: float = FACE_HZ, copy_source: CopySource | None = None,
        person_detector: PersonSource | None = None,
        fallback_person: PersonSource | None = None,
    ) -> None:  # fmt: skip
        self.runtime = runtime
        self._person_detector = person_detector
        self._fallback_person = fallback_person
        self._copy_source = copy_source
        self._redactor = redactor
        self._unredacted = unredacted
        self._face_detector = face_detector
        self._needs_people = needs_people
        self.face_hz = face_hz
        self._encoders: dict[VideoView, LiveStream] = {}
        self._users: dict[VideoView, int] = {}
        self._lock = threading.Lock()

    def encoders(self) -> dict[VideoView, LiveStream]:
        with self._lock:
            return dict(self._encoders)

    def join(self, view: VideoView, viewer: Viewer) -> LiveStream:
        """Add ``viewer`` to ``view``'s encoder, starting it for the first viewer."""
        with self._lock:
            encoder = self._encoders.get(view)
            if encoder is not None and encoder.error is None:
                self._users[view] = self._users.get(view, 0) + 1
                encoder.add(viewer)
                return encoder
        # Started outside the lock: deciding on a copy may ask a camera actor on a cluster
        # node, and other views must not wait for that answer.
        started = self._start(view)
        with self._lock:
            encoder = self._encoders.get(view)
            if encoder is None or encoder.error is not None:
                encoder = self._encoders[view] = started
            self._users[view] = self._users.get(view, 0) + 1
        if encoder is not started:  # another viewer's start won meanwhile
            started.stop()
        encoder.add(viewer)
        return encoder

    def leave(self, view: VideoView, viewer: Viewer) -> None:
        """Remove ``viewer``; the last one out stops the encoder."""
        with self._lock:
            encoder = self._encoders.get(view)
            if encoder is None:
                return
            encoder.remove(viewer)
            self._users[view] = self._users.get(view, 1) - 1
            if self._users[view] > 0:
                return
            del self._encoders[view], self._users[view]
        encoder.stop()

    def stop_all(self) -> None:
        with self._lock:
            encoders, self._encoders, self._users = list(self._encoders.values()), {}, {}
        for encoder in encoders:
            encoder.stop()

    def _start(self, view: VideoView) -> LiveStream:
        fps = _camera_fps(self.runtime, view.camera)
        if not view.redacted:
            feed: CopyReader | None
            reason: str | None
            if view.encode:
                feed, reason = None, "asked for (encode=1): the browser cannot play the copy"
            else:
                feed, reason = (None, "no packet source") if self._copy_source is None else \
                    self._copy_source(view.camera)  # fmt: skip
            if feed is not None:
                log.info("%s: unredacted live video is a stream copy", view.camera)
                return StreamCopy(view, feed)
            log.info("%s: unredacted live video is re-encoded: %s", view.camera, reason)
            encoder = LiveEncoder(
                view, self.runtime, lambda image: self._unredacted(view.camera, image), [], fps
            )
            encoder.reason = reason
            return encoder
        detector = self._face_detector(view.camera)
        # Loaded before any thread starts: a person model that cannot load refuses the
        # stream (PrivacyError) rather than showing people.
        person = None if self._person_detector is None else self._person_detector(view.camera)
        faces = (
            None
            if detector is None
            else CarriedFaces(detector, self.face_hz, full_every_s=FACE_FULL_EVERY_S)
        )
        people = None if person is None else CarriedFaces(PersonBoxes(person), self.face_hz,
                                                          "person")  # fmt: skip
        render = _Redacting(self, view.camera, faces, people)
        carried = [c for c in (faces, people) if c is not None]
        return LiveEncoder(view, self.runtime, render, carried, fps, on_stop=render.close)


class _Redacting:
    """The redacting render of one encoder: the camera's Redactor around ``CarriedFaces``,
    rebuilt when the frame size changes, with the tracks as people when the mode hides them
    (or, with ``people``, the carried detections of the person detector)."""

    def __init__(self, owner: LiveVideo, camera: str, faces: CarriedFaces | None,
                 people: CarriedFaces | None = None) -> None:  # fmt: skip
        self._owner = owner
        self._camera = camera
        self._faces = faces
        self._people = people
        self._redactor: Redactor | None = None
        #: The person detector carried while the tracks come from no analysed frame (the
        #: camera's detection is off): started on the first such frame, ended once tracks
        #: are back. ``_NO_FALLBACK``: none could be loaded, the whole picture is hidden.
        self._fallback: CarriedFaces | object | None = None

    def __call__(self, frame: ImageArray) -> ImageArray:
        size = (int(frame.shape[1]), int(frame.shape[0]))
        if self._redactor is None or self._redactor.frame_size != size:
            self._redactor = self._owner._redactor(self._camera, size, self._faces)
        people = None
        # The frames the hidden boxes were decided on: what changed since is hidden too
        # (a carrier's only where the Redactor hides what it carries). Read before the
        # boxes: a detection finishing in between then pairs newer boxes with an older
        # frame (more is hidden), never older boxes with a newer frame.
        hides = ((self._faces, self._redactor.faces), (self._people, self._redactor.people))
        decided = [d for d in (c.decided() for c, on in hides if c is not None and on)
                   if d is not None]  # fmt: skip
        if self._people is not None:
            boxes = self._people.detect(frame)[:, :4]
            people = Detections(boxes, np.ones(len(boxes), np.float32),
                                np.zeros(len(boxes), np.int64))  # fmt: skip
        elif self._owner._needs_people(self._camera):
            snapshot = self._owner.runtime.latest_tracks(self._camera)
            if snapshot.time is None:
                # No analysed frame behind these (empty) tracks: detection is switched off
                # or not running, so they say nothing about who is in the picture.
                return self._without_tracks(frame, decided)
            self.close()
            # The detections too: a person who just came in has no confirmed track yet.
            boxes, ids = _track_boxes(snapshot, size, detections=True)
            people = Detections(boxes, np.ones(len(boxes), np.float32),
                                np.zeros(len(boxes), np.int64), ids)  # fmt: skip
            if snapshot.decided is not None:
                decided.append(Decided(snapshot.decided))
        return self._redactor.process(frame, people=people, decided=decided)

    def _without_tracks(self, frame: ImageArray, decided: list[Decided]) -> ImageArray:
        """``frame`` redacted with the person detector carried in place of the tracks; the
        whole picture hidden until its first detection, or for good when it cannot load."""
        assert self._redactor is not None
        fallback = self._fallback
        if fallback is None:
            fallback = self._fallback = self._start_fallback()
        height, width = int(frame.shape[0]), int(frame.shape[1])
        if isinstance(fallback, CarriedFaces):
            fallback.observe(frame, (np.zeros((0, 4), np.float32), np.zeros(0, np.int64)))
            if fallback.ready and fallback.failed is None:
                boxes = fallback.detect(frame)[:, :4]
                seen = fallback.decided()
                if seen is not None:
                    decided = [*decided, seen]
                people = Detections(boxes, np.ones(len(boxes), np.float32),
                                    np.zeros(len(boxes), np.int64))  # fmt: skip
                return self._redactor.process(frame, people=people, decided=decided)
        whole = np.array([[0, 0, width, height]], np.float32)
        everything = Detections(whole, np.ones(1, np.float32), np.zeros(1, np.int64))
        return self._redactor.process(frame, people=everything)

    def _start_fallback(self) -> CarriedFaces | object:
        source = self._owner._fallback_person
        try:
            detector = None if source is None else source(self._camera)
        except Exception as exc:  # fail closed: the picture stays hidden
            log.error("%s: live video hides the whole picture while detection is off: no "
                      "person detector (%s)", self._camera, exc)  # fmt: skip
            return _NO_FALLBACK
        if detector is None:
            return _NO_FALLBACK
        log.info("%s: detection is off: live video runs the person detector", self._camera)
        return CarriedFaces(PersonBoxes(detector), self._owner.face_hz, "person")

    def close(self) -> None:
        """End the fallback person detector, if one runs."""
        fallback, self._fallback = self._fallback, None
        if isinstance(fallback, CarriedFaces):
            fallback.close()


#: ``_Redacting._fallback`` when no person detector could be had.
_NO_FALLBACK = object()


def _camera_fps(runtime: RuntimeView, camera: str) -> float:
    for status in runtime.cameras():
        if status.name == camera and status.decode_fps > 0:
            return min(MAX_FPS, max(1.0, status.decode_fps))
    return DEFAULT_FPS


__all__ = ["CarriedFaces", "LiveEncoder", "LiveStream", "LiveVideo", "PersonBoxes", "StreamCopy",
           "VideoView", "Viewer", "codec_string", "mode_needs_people"]  # fmt: skip
