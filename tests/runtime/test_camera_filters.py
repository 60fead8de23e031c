"""Per-camera detector settings on one shared model: the model runs with the lowest
confidence and the union of labels of all cameras; each camera keeps its own."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("sqlalchemy", reason="the server extra is not installed")

from tests.runtime.test_supervisor import make_config
from vigil.config.models import DetectConfig, VigilConfig
from vigil.detect.labels import COCO
from vigil.errors import ConfigError
from vigil.runtime.serve import Supervisor, shared_detect_config
from vigil.runtime.worker import CameraDetector
from vigil.types import Detections, ImageArray

SCENE = "synthetic://?fps=10&duration=2"
PERSON, CAR, DOG = COCO.index("person"), COCO.index("car"), COCO.index("dog")


class FixedDetector:
    """Returns the same detections for every image: a person .9, a car .5, a dog .25."""

    class_names: Sequence[str] = COCO
    input_size = (416, 416)

    def __init__(self) -> None:
        self.calls = 0

    def detect_batch(self, images: Sequence[ImageArray]) -> list[Detections]:
        self.calls += 1
        return [
            Detections(
                xyxy=np.array([[0, 0, 10, 10], [20, 20, 40, 40], [50, 50, 60, 60]], np.float32),
                confidence=np.array([0.9, 0.5, 0.25], np.float32),
                class_id=np.array([PERSON, CAR, DOG], np.int64),
            )
            for _ in images
        ]


def detect(**kwargs: Any) -> DetectConfig:
    return DetectConfig.model_validate(kwargs)


@pytest.mark.parametrize(("cameras", "confidence", "labels"), [
    ([], 0.3, ["person"]),  # no camera with a model: the base stays
    ([detect(confidence=0.6, labels=["car"])], 0.6, ["car"]),
    ([detect(confidence=0.6, labels=["car"]), detect(confidence=0.2, labels=["person", "car"])],
     0.2, ["car", "person"]),
    ([detect(confidence=0.5, labels=["dog"]), detect(confidence=0.4, labels=[])], 0.4, []),
])  # fmt: skip
def test_shared_detect_config_is_the_loosest_of_all_cameras(
    cameras: list[DetectConfig], confidence: float, labels: list[str]
) -> None:
    base = detect(confidence=0.3, labels=["person"], nms_iou=0.55)
    shared = shared_detect_config(base, cameras)
    assert shared.confidence == pytest.approx(confidence)
    assert shared.labels == labels
    assert shared.nms_iou == 0.55, "everything else comes from the global section"


@pytest.mark.parametrize(("labels", "confidence", "kept"), [
    ([], 0.0, [PERSON, CAR, DOG]),
    ([], 0.3, [PERSON, CAR]),
    (["person", "dog"], 0.2, [PERSON, DOG]),
    (["car"], 0.6, []),
    ([" Person "], 0.1, [PERSON]),  # spelled loosely
])  # fmt: skip
def test_camera_detector_keeps_the_cameras_labels_and_confidence(
    labels: list[str], confidence: float, kept: list[int]
) -> None:
    view = CameraDetector(FixedDetector(), labels, confidence)
    image = np.zeros((32, 32, 3), np.uint8)
    results = view.detect_batch([image, image])
    assert [r.class_id.tolist() for r in results] == [kept, kept]
    assert all(len(r.xyxy) == len(kept) for r in results)


def test_unknown_camera_label_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown detection label"):
        CameraDetector(FixedDetector(), ["unicorn"], 0.3)


def test_supervisor_builds_one_loose_model_and_filters_per_camera(tmp_path: Path) -> None:
    config = make_config(tmp_path, {
        "people": {"sources": [{"url": SCENE}],
                   "detect": {"model": "yolox_nano", "labels": ["person"], "confidence": 0.6}},
        "cars": {"sources": [{"url": SCENE}],
                 "detect": {"model": "yolox_nano", "labels": ["car"], "confidence": 0.4}},
        "all": {"sources": [{"url": SCENE}], "detect": {"model": "yolox_nano", "labels": []}},
        "quiet": {"sources": [{"url": SCENE}]},  # motion: no model, no say in the shared one
    })  # fmt: skip
    model = FixedDetector()
    built: list[VigilConfig] = []

    def factory(cfg: VigilConfig) -> FixedDetector:
        built.append(cfg)
        return model

    supervisor = Supervisor(config, detector_factory=factory)
    try:
        assert len(built) == 1, "one model for every camera"
        assert built[0].detect.labels == []
        assert built[0].detect.confidence == pytest.approx(0.3)
        image = np.zeros((32, 32, 3), np.uint8)
        seen = {}
        for name in ("people", "cars", "all"):
            view = supervisor.workers[name].detector
            assert view is not None
            assert view.inner is supervisor.batcher
            seen[name] = view.detect_batch([image])[0].class_id.tolist()
        assert supervisor.workers["quiet"].detector is None
    finally:
        supervisor.stop()
    assert seen == {"people": [PERSON], "cars": [CAR], "all": [PERSON, CAR]}
    assert model.calls == 3
