"""What changed since the decided frame is hidden too (``vigil.privacy.changes``), measured on
the shared clip where the first person comes in (frame 61 at 384x216): on the frames after
an analysed frame that saw nobody, the person's pixels are hidden."""

from __future__ import annotations

from functools import cache
from typing import Any

import av
import numpy as np
import pytest

from tests.conftest import require_file
from vigil.config.loader import parse_config
from vigil.config.models import RedactConfig
from vigil.detect import build_detector
from vigil.paths import shared_data_dir, shared_models_dir
from vigil.privacy import Redactor
from vigil.privacy.changes import Decided, changed, thumbnail
from vigil.privacy.redactor import build_person_detector
from vigil.runtime.pipeline import CameraPipeline
from vigil.types import Detections, FloatArray, Frame, ImageArray

PEOPLE = RedactConfig.model_validate({"mode": "people", "style": "fill"})
SIZE = (384, 216)
#: Analysed every 4th frame of the 10 fps clip: frames 60 and 64, where the person comes in
#: between (yolox-nano finds them in frames 61 and 63 already).
CAMERA = """
cameras:
  yolo:
    sources: [{url: "synthetic://"}]
    detect: {fps: 2.5, labels: [person]}
    motion: {enabled: false}
    tracker: {min_hits: 3}
"""
NONE = np.zeros((0, 4), np.float32)


@cache
def clip(first: int = 40, last: int = 90) -> tuple[ImageArray, ...]:
    """Frames ``first``..``last`` of the one-by-one clip at 384x216, by their index."""
    path = require_file(shared_data_dir() / "clips" / "one-by-one-person-detection.mp4")
    out = []
    with av.open(str(path)) as box:
        for i, frame in enumerate(box.decode(video=0)):
            if i > last:
                break
            if i >= first:
                out.append(frame.to_ndarray(format="bgr24", width=SIZE[0], height=SIZE[1]))
    return tuple(out)


def frame(index: int) -> ImageArray:
    return clip()[index - 40]


@pytest.fixture(scope="module")
def person_detector() -> Any:
    require_file(shared_models_dir() / "yolox_nano.onnx")
    return build_person_detector(PEOPLE)


def people(detector: Any, image: ImageArray) -> FloatArray:
    """The person boxes yolox-nano finds in ``image``."""
    return np.asarray(detector.detect_batch([image])[0].xyxy, np.float32)


def test_nothing_changes_on_a_still_scene() -> None:
    """Frames 40-59 (the empty room, compressed video): no change against frame 40."""
    decided = Decided(thumbnail(frame(40)))
    assert all(len(changed(frame(i), decided, NONE)) == 0 for i in range(40, 60))


def test_a_person_coming_in_is_a_change_outside_the_boxes(person_detector: Any) -> None:
    decided = Decided(thumbnail(frame(60)))
    for index in (61, 63):
        person = people(person_detector, frame(index))
        assert len(person) == 1, "yolox-nano must see the person coming in"
        found = changed(frame(index), decided, NONE)
        # The change holds the person's box (all but its edge)...
        x1, y1, x2, y2 = person[0]
        assert any(b[0] <= x1 + 8 and b[1] <= y1 + 8 and b[2] >= x2 - 8 and b[3] >= y2 - 8
                   for b in found), (index, found, person)  # fmt: skip
        # ...and is no change once a box hides the person, or the decision knew them.
        grown = person + np.array([[-12, -12, 12, 12]], np.float32)
        assert len(changed(frame(index), decided, grown)) == 0
        assert len(changed(frame(index), Decided(decided.thumb, grown), NONE)) == 0


def test_a_thumbnail_of_another_size_counts_as_the_whole_frame() -> None:
    decided = Decided(thumbnail(frame(60)[:108, :192].copy()))
    assert changed(frame(61), decided, NONE).tolist() == [[0, 0, SIZE[0], SIZE[1]]]


def test_redaction_between_analysed_frames_hides_a_person_coming_in(
    person_detector: Any,
) -> None:
    """The people boxes of ``vigil analyze --annotate`` (and of live video of a camera whose
    tracks hold people) on frames that were not analysed are those of the last analysed one:
    with the decided frame, the person who came in since is hidden; without, they show."""
    camera = parse_config(CAMERA).camera("yolo")
    pipeline = CameraPipeline(camera, build_detector(camera.detect), SIZE, source_fps=10)
    with_guard, without = Redactor(PEOPLE, SIZE), Redactor(PEOPLE, SIZE)
    gap, shown, leaks = [], [], []
    for index in range(40, 90):
        image = frame(index)
        result = pipeline.process(Frame.from_bgr(image, seq=index, pts=index / 10,
                                                 wall_time=index / 10))  # fmt: skip
        raw = result.detections
        boxes = Detections.merge([result.tracked,
                                  Detections(raw.xyxy, raw.confidence, raw.class_id)])  # fmt: skip
        assert result.decided is not None
        decided = [] if result.analysed else [Decided(thumbnail(result.decided.bgr()))]
        out = with_guard.process(image, people=boxes, decided=decided)
        plain = without.process(image, people=boxes)
        if len(people(person_detector, plain)):
            gap.append(index)
        if len(people(person_detector, out)):
            leaks.append(index)
        shown.append(out)
    assert gap, "without the decided frame the person coming in must show (the gap tested)"
    assert not leaks, f"people found in the redacted frames {leaks} (shown without: {gap})"
    # Hidden means hidden: the pixels of the person's later box differ from the raw frame.
    x1, y1, x2, y2 = people(person_detector, frame(63))[0].astype(int)
    diff = np.abs(shown[63 - 40][y1:y2, x1:x2].astype(int) - frame(63)[y1:y2, x1:x2])
    assert float(diff.mean()) > 40
