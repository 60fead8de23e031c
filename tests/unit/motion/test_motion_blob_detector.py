"""MotionBlobDetector: fragments merged, confidence from fill, the synthetic scene end to end."""

from __future__ import annotations

import numpy as np
import pytest

from vigil.boxes import iou_matrix
from vigil.config.models import LineConfig, MotionConfig, TrackerConfig
from vigil.detect.motion import MotionBlobDetector
from vigil.ingest import FrameSampler, SyntheticSource
from vigil.ingest.synthetic import DEFAULT_DOWN_CROSSINGS, DEFAULT_UP_CROSSINGS
from vigil.motion import MotionGate, MotionResult
from vigil.rules import LineRule
from vigil.track import ByteTracker


def _result(boxes: list[list[float]], fill: list[float]) -> MotionResult:
    return MotionResult(
        np.asarray(boxes, np.float32).reshape(-1, 4),
        0.01,
        False,
        np.asarray(fill, np.float32),
        (1000, 500),
    )


def test_no_motion_gives_no_detections() -> None:
    assert len(MotionBlobDetector().detect(MotionResult(frame_size=(640, 360)))) == 0


@pytest.mark.parametrize(
    ("boxes", "fill", "xyxy", "confidence"),
    [
        # One solid blob.
        ([[10, 10, 50, 90]], [1.0], [[10, 10, 50, 90]], [1.0]),
        # A sparse blob never drops below the floor of 0.5.
        ([[10, 10, 50, 90]], [0.0], [[10, 10, 50, 90]], [0.5]),
        ([[10, 10, 50, 90]], [0.5], [[10, 10, 50, 90]], [0.75]),
        # Two fragments 10 px apart (gap 0.02 * 1000 = 20 px): one object, area-weighted fill.
        (
            [[100, 100, 140, 150], [100, 160, 140, 200]],
            [1.0, 1.0],
            [[100, 100, 140, 200]],
            [0.5 + 0.5 * 0.9],
        ),
        # Two objects far apart stay two.
        (
            [[100, 100, 140, 150], [600, 100, 640, 150]],
            [0.8, 0.4],
            [[100, 100, 140, 150], [600, 100, 640, 150]],
            [0.9, 0.7],
        ),
    ],
)
def test_detect_table(
    boxes: list[list[float]],
    fill: list[float],
    xyxy: list[list[float]],
    confidence: list[float],
) -> None:
    detections = MotionBlobDetector().detect(_result(boxes, fill))
    np.testing.assert_allclose(detections.xyxy, xyxy)
    np.testing.assert_allclose(detections.confidence, confidence, rtol=1e-5)
    assert detections.class_id.tolist() == [0] * len(xyxy)
    assert detections.tracker_id.tolist() == [-1] * len(xyxy)


def test_class_names() -> None:
    assert list(MotionBlobDetector.class_names) == ["motion"]


@pytest.mark.parametrize(("merge_gap", "min_confidence"), [(-0.1, 0.5), (0.02, 1.5)])
def test_rejects_bad_parameters(merge_gap: float, min_confidence: float) -> None:
    with pytest.raises(ValueError, match="MotionBlobDetector needs"):
        MotionBlobDetector(merge_gap=merge_gap, min_confidence=min_confidence)


@pytest.mark.parametrize("fps", [10.0, 5.0])
def test_one_box_per_object_matching_ground_truth(fps: float) -> None:
    source = SyntheticSource(fps=fps)
    gate = MotionGate(MotionConfig(), (source.width, source.height))
    detector = MotionBlobDetector()
    ious, wrong_count = [], 0
    for frame in source.frames():
        detections = detector.detect(gate.update(frame))
        truth = source.ground_truth_boxes(frame.pts)
        wrong_count += len(detections) != len(truth)
        if len(truth) == 1 and len(detections) == 1:
            ious.append(float(iou_matrix(detections.xyxy[0], truth[0][1])[0, 0]))
    frames = source.frame_count
    assert wrong_count <= 0.05 * frames
    assert len(ious) >= 0.75 * frames
    assert np.mean(np.asarray(ious) > 0.5) >= 0.9


@pytest.mark.parametrize(("source_fps", "detect_fps"), [(10, 10), (10, 5), (25, 5)])
def test_model_free_pipeline_counts_the_synthetic_crossings(
    source_fps: float, detect_fps: float
) -> None:
    """SyntheticSource -> MotionGate -> MotionBlobDetector -> ByteTracker -> LineRule."""
    source = SyntheticSource(fps=source_fps)
    size = (source.width, source.height)
    gate = MotionGate(MotionConfig(), size)
    detector = MotionBlobDetector()
    tracker = ByteTracker(TrackerConfig(), frame_rate=detect_fps)
    line = LineRule("door", LineConfig(points=((0.0, 0.5), (1.0, 0.5))), size, detector.class_names)
    sampler = FrameSampler(detect_fps)
    for frame in source.frames():
        if not sampler.take(frame):
            continue
        tracked = tracker.update(detector.detect(gate.update(frame)), frame.time)
        line.update(tracked, frame.time, frame.camera_id)
    # The line runs left to right, so side A is above it: downwards is A to B.
    assert line.counts()["total"] == {
        "a_to_b": DEFAULT_DOWN_CROSSINGS,
        "b_to_a": DEFAULT_UP_CROSSINGS,
    }
