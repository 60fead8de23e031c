"""The Redactor: temporal hold, people, masks, fail closed, and the audited way around it.

The face detector is faked here (the edge: which boxes it returns per frame is the input of
this unit); the real CenterFace runs in test_privacy_faces.py and the integration test.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from vigil.config.models import RedactConfig
from vigil.errors import PrivacyError
from vigil.privacy import Redactor, build_redactor, unredacted_access
from vigil.types import Detections, FloatArray, ImageArray

SIZE = (160, 120)
FACE = [50.0, 40.0, 70.0, 64.0]


class ScriptedFaces:
    """Returns the scripted boxes for each successive call; ``None`` entries mean "missed"."""

    def __init__(self, script: Sequence[list[float] | None]) -> None:
        self.script = list(script)
        self.calls = 0

    def detect(self, image: ImageArray) -> FloatArray:
        entry = self.script[min(self.calls, len(self.script) - 1)]
        self.calls += 1
        if entry is None:
            return np.zeros((0, 5), np.float32)
        return np.array([[*entry, 0.9]], np.float32)


class BrokenFaces:
    def detect(self, image: ImageArray) -> FloatArray:
        raise PrivacyError("face detector exploded")


class PeopleOnly:
    class_names: Sequence[str] = ("person", "car")
    input_size = (416, 416)

    def __init__(self) -> None:
        self.calls = 0

    def detect_batch(self, images: Sequence[ImageArray]) -> list[Detections]:
        self.calls += 1
        return [
            Detections(
                np.array([[10, 10, 40, 100], [100, 10, 150, 60]], np.float32),
                class_id=np.array([0, 1]),
            )
            for _ in images
        ]


def _image(seed: int = 0) -> ImageArray:
    return np.random.default_rng(seed).integers(0, 256, (SIZE[1], SIZE[0], 3), dtype=np.uint8)


def _changed(before: ImageArray, after: ImageArray, box: Sequence[float]) -> float:
    x1, y1, x2, y2 = (int(v) for v in box)
    diff = np.any(before[y1:y2, x1:x2] != after[y1:y2, x1:x2], axis=2)
    return float(diff.mean())


def test_face_stays_redacted_on_a_missed_frame() -> None:
    faces = ScriptedFaces([FACE, FACE, None, FACE])
    redactor = Redactor(RedactConfig(hold_frames=5), SIZE, face_detector=faces)
    for seed in range(4):
        image = _image(seed)
        out = redactor.process(image)
        assert _changed(image, out, FACE) > 0.9, f"face visible in frame {seed}"


def test_without_hold_the_missed_frame_would_show_the_face() -> None:
    # The control for the test above: the hold is what covers the miss.
    faces = ScriptedFaces([FACE, None])
    redactor = Redactor(RedactConfig(hold_frames=0), SIZE, face_detector=faces)
    redactor.process(_image(0))
    image = _image(1)
    assert _changed(image, redactor.process(image), FACE) == 0.0


def test_hold_expires_and_reset_forgets() -> None:
    faces = ScriptedFaces([FACE, None])
    redactor = Redactor(RedactConfig(hold_frames=2), SIZE, face_detector=faces)
    redactor.process(_image())
    assert _changed(_image(1), redactor.process(_image(1)), FACE) > 0.9
    redactor.reset()
    assert _changed(_image(2), redactor.process(_image(2)), FACE) == 0.0


def test_input_is_not_modified_and_outside_is_untouched() -> None:
    redactor = Redactor(RedactConfig(margin=0.0), SIZE, face_detector=ScriptedFaces([FACE]))
    image = _image()
    keep = image.copy()
    out = redactor.process(image)
    np.testing.assert_array_equal(image, keep)
    outside = np.ones(image.shape[:2], bool)
    outside[40:64, 50:70] = False
    np.testing.assert_array_equal(out[outside], image[outside])


def test_redact_still_has_no_memory() -> None:
    faces = ScriptedFaces([FACE, None])
    redactor = Redactor(RedactConfig(hold_frames=10), SIZE, face_detector=faces)
    redactor.redact_still(_image())
    image = _image(1)
    assert _changed(image, redactor.redact_still(image), FACE) == 0.0


def test_people_mode_uses_given_boxes_and_track_ids() -> None:
    redactor = Redactor(RedactConfig(mode="people", hold_frames=3), SIZE)
    person = Detections(np.array([[80, 20, 120, 110]], np.float32), tracker_id=np.array([4]))
    image = _image()
    out = redactor.process(image, people=person)
    assert _changed(image, out, (80, 20, 120, 110)) > 0.9


def test_people_mode_runs_own_detector_and_keeps_only_persons() -> None:
    detector = PeopleOnly()
    redactor = Redactor(RedactConfig(mode="people", margin=0.0), SIZE, person_detector=detector)
    image = _image()
    out = redactor.process(image)
    assert detector.calls == 1
    assert _changed(image, out, (10, 10, 40, 100)) > 0.9
    assert _changed(image, out, (100, 10, 150, 60)) == 0.0  # the car stays visible


def test_people_mode_without_boxes_or_detector_fails_closed() -> None:
    redactor = Redactor(RedactConfig(mode="people"), SIZE)
    with pytest.raises(PrivacyError, match="person boxes"):
        redactor.process(_image())


def test_faces_plus_people() -> None:
    redactor = Redactor(
        RedactConfig(mode="faces+people", margin=0.0), SIZE,
        face_detector=ScriptedFaces([FACE]), person_detector=PeopleOnly(),
    )  # fmt: skip
    image = _image()
    out = redactor.process(image)
    assert _changed(image, out, FACE) > 0.9
    assert _changed(image, out, (10, 10, 40, 100)) > 0.9


def test_masks_apply_to_every_frame() -> None:
    config = RedactConfig(masks=[[(0.0, 0.0), (0.25, 0.0), (0.25, 0.25), (0.0, 0.25)]])
    redactor = Redactor(config, SIZE, face_detector=ScriptedFaces([None]))
    assert not redactor.process(_image())[:30, :40].any()


@pytest.mark.parametrize(
    ("config", "kwargs", "message"),
    [
        (RedactConfig(mode="faces"), {}, "needs a face detector"),
        (RedactConfig(mode="none"), {}, "audited request"),
    ],
)
def test_construction_fails_closed(
    config: RedactConfig, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(PrivacyError, match=message):
        Redactor(config, SIZE, **kwargs)  # type: ignore[arg-type]


def test_broken_face_detector_raises() -> None:
    redactor = Redactor(RedactConfig(), SIZE, face_detector=BrokenFaces())
    with pytest.raises(PrivacyError, match="exploded"):
        redactor.process(_image())


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((100, 160, 3), np.uint8),  # wrong size
        np.zeros((120, 160), np.uint8),  # grey
        np.zeros((120, 160, 3), np.float32),  # wrong dtype
    ],
)
def test_bad_images_refused(image: np.ndarray) -> None:
    redactor = Redactor(RedactConfig(), SIZE, face_detector=ScriptedFaces([FACE]))
    with pytest.raises(PrivacyError):
        redactor.process(image)


def test_grant_passes_pixels_but_keeps_masks(tmp_path: Path) -> None:
    grant = unredacted_access("court order 17", "alice", tmp_path / "audit.jsonl", "cam1 export")
    config = RedactConfig(mode="none", masks=[[(0.0, 0.0), (0.25, 0.0), (0.25, 0.25)]])
    redactor = build_redactor(config, SIZE, grant=grant)
    image = _image()
    out = redactor.process(image)
    np.testing.assert_array_equal(out[60:, 60:], image[60:, 60:])
    assert not out[0, :30].any()  # the mask still applies
