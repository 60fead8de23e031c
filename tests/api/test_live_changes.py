"""Live video's carried detections (``CarriedFaces``) between two detections: what changed
since the detection's frame outside the carried boxes is hidden too. On the shared clip, the
first person comes in after frame 60 (yolox-nano finds them in frame 63): a detection of
frame 60, carried to frame 63, holds nobody."""

from __future__ import annotations

import time
from typing import Any

import cv2
import numpy as np
import pytest

from tests.conftest import require_file
from tests.unit.privacy.test_privacy_changes import frame, people
from tests.unit.privacy.test_regions import H, SquareFinder, W
from tests.unit.privacy.test_regions import frame as square_frame
from vigil.api.livevideo import CarriedFaces, PersonBoxes
from vigil.config.models import RedactConfig
from vigil.paths import shared_models_dir
from vigil.privacy import FaceDetector, Redactor
from vigil.privacy.redactor import build_person_detector
from vigil.types import Detections, FloatArray, ImageArray

PEOPLE = RedactConfig.model_validate({"mode": "people", "style": "fill", "hold_frames": 0})
FACES = RedactConfig.model_validate({"mode": "faces", "style": "fill", "hold_frames": 0})
SIZE = (384, 216)
NONE = (np.zeros((0, 4), np.float32), np.zeros(0, np.int64))


@pytest.fixture(scope="module")
def person_detector() -> Any:
    require_file(shared_models_dir() / "yolox_nano.onnx")
    return build_person_detector(PEOPLE)


def detected_once(
    carried: CarriedFaces, image: ImageArray,
    objects: tuple[FloatArray, np.ndarray] = NONE,
) -> CarriedFaces:  # fmt: skip
    """``carried`` after one detection of ``image``, its thread stopped (so that the frames
    given next are carried from that detection, never detected themselves)."""
    carried.observe(image, NONE, objects)
    deadline = time.monotonic() + 60
    while carried.detections < 1 and carried.failed is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert carried.detections == 1, carried.failed
    carried.close()
    carried._thread.join(10)
    assert not carried._thread.is_alive()
    return carried


def hidden_fraction(out: ImageArray, box: FloatArray) -> float:
    """How much of ``box`` the redaction filled (style ``fill``: pure black, which the
    clip's compressed pixels never are)."""
    x1, y1, x2, y2 = box.astype(int)
    return float((out[y1:y2, x1:x2] == 0).all(axis=2).mean())


def test_carried_person_detections_hide_who_came_in_since(person_detector: Any) -> None:
    """The person detector of a motion camera's live video (``PersonBoxes``, at most 5 Hz)."""
    carried = detected_once(CarriedFaces(PersonBoxes(person_detector), 50.0, "person"), frame(60))
    image = frame(63)
    carried.observe(image, NONE)
    boxes = carried.detect(image)[:, :4]
    assert len(boxes) == 0  # frame 60's detection: nobody yet
    decided = carried.decided()
    assert decided is not None
    found = Detections(boxes, np.ones(0, np.float32), np.zeros(0, np.int64))
    assert len(people(person_detector, Redactor(PEOPLE, SIZE).process(image, people=found)))
    out = Redactor(PEOPLE, SIZE).process(image, people=found, decided=[decided])
    assert not len(people(person_detector, out))
    assert hidden_fraction(out, people(person_detector, image)[0]) > 0.9


def test_carried_faces_hide_who_came_in_since_but_not_the_objects_looked_at(
    face_detector: FaceDetector, person_detector: Any
) -> None:
    """Faces mode: a moving region with no face box is hidden until the next face detection,
    unless it lies in an object the detection's frame had (a track or a detection of the
    camera, any label: the face search looked at it, and a face in it is carried with it)."""
    image = frame(63)
    person = people(person_detector, image)[0]
    # Nobody when the faces were detected: the person who came in since is hidden.
    carried = detected_once(CarriedFaces(face_detector, 50.0), frame(60))
    carried.observe(image, NONE)
    decided = carried.decided()
    assert decided is not None
    redactor = Redactor(FACES, SIZE, face_detector=carried)
    out = redactor.process(image, decided=[decided])
    assert hidden_fraction(out, person) > 0.9
    # The person in the tracks of the detection's frame (id 7) and of now: looked at.
    before = people(person_detector, frame(61))
    carried = detected_once(CarriedFaces(face_detector, 50.0), frame(61),
                            (before, np.array([7])))  # fmt: skip
    carried.observe(image, NONE, (person[None, :], np.array([7])))
    decided = carried.decided()
    assert decided is not None
    assert len(decided.known) == 2
    redactor = Redactor(FACES, SIZE, face_detector=carried)
    out = redactor.process(image, decided=[decided])
    assert hidden_fraction(out, person) < 0.1


def test_carried_detections_are_void_at_a_new_picture_size(face_detector: FaceDetector) -> None:
    """The camera's resolution changes and the picture looks the same (no cut by its
    content): the carried boxes are in the old size's pixels, so they are void (``ready``
    False: the live encoder sends nothing) until a detection at the new size."""
    image = frame(63)
    carried = detected_once(CarriedFaces(face_detector, 50.0), image)
    carried.observe(image, NONE)
    assert carried.ready  # the same picture: the detection is carried
    larger = cv2.resize(image, (2 * image.shape[1], 2 * image.shape[0]))
    carried.observe(larger, NONE)
    assert not carried.ready, "boxes of the old size carried to the new one"
    assert carried.cuts == 1


def detections_of(carried: CarriedFaces, image: ImageArray, count: int,
                  objects: tuple[FloatArray, np.ndarray] = NONE) -> FloatArray:  # fmt: skip
    """The carried faces once ``count`` detections in all finished, ``image`` observed."""
    carried.observe(image, NONE, objects)
    deadline = time.monotonic() + 30
    while carried.detections < count and carried.failed is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert carried.detections == count, carried.failed
    return carried.detect(image)[:, :4]


def test_live_faces_are_searched_by_regions_between_whole_frame_passes() -> None:
    """Live video's face detector (``full_every_s``): the first detection, the first after a
    cut and one at least every ``full_every_s`` search the whole frame; in between only what
    moved, the faces found and the tracked objects (``RegionFaceDetector``)."""
    inner = SquareFinder()
    carried = CarriedFaces(inner, 200.0, full_every_s=3600.0)
    try:
        still = square_frame((200, 100))
        np.testing.assert_allclose(detections_of(carried, still, 1), [[200, 100, 220, 120]],
                                   atol=1)  # fmt: skip
        assert inner.calls == [(W, H)], "the first detection searches the whole frame"
        found = detections_of(carried, still.copy(), 2)
        np.testing.assert_allclose(found, [[200, 100, 220, 120]], atol=1)
        assert inner.calls[-1][0] < W / 2, "a still face: only around it was searched"
        # A face the detector missed, that does not move: found because an object tracked
        # there is searched, not at the next whole-frame pass.
        assert carried._regions is not None
        carried._regions._faces = np.zeros((0, 4), np.float32)
        sign = (np.array([[190, 90, 230, 130]], np.float32), np.array([3]))
        found = detections_of(carried, still.copy(), 3, sign)
        np.testing.assert_allclose(found, [[200, 100, 220, 120]], atol=1)
        assert inner.calls[-1][0] < W / 2
        # A cut (the picture changed at once) that moves no pixel past the region search's
        # motion threshold: the region search alone would look only where the face was.
        cut = (still + 10).astype(np.uint8)
        detections_of(carried, cut, 4)
        assert carried.cuts == 1
        assert inner.calls[-1] == (W, H), "the first detection after a cut searches it all"
    finally:
        carried.close()
    timed = CarriedFaces(inner := SquareFinder(), 200.0, full_every_s=0.3)
    try:
        detections_of(timed, still, 1)
        detections_of(timed, still.copy(), 2)
        assert inner.calls[-1][0] < W / 2
        time.sleep(0.4)
        detections_of(timed, still.copy(), 3)
        assert inner.calls[-1] == (W, H), "the whole frame again after full_every_s"
    finally:
        timed.close()
