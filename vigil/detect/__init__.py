"""Object detection: the ``Detector`` protocol, the YOLOX ONNX detector and the model registry.

``build_detector(config)`` turns a ``DetectConfig`` into a ready detector. The model-free
motion detector (``model: motion``) lives in ``vigil.detect.motion`` and is built there.
"""

from __future__ import annotations

from pathlib import Path

from vigil.config.models import DetectConfig
from vigil.detect.base import Detector
from vigil.detect.labels import COCO, canonical_label, class_ids
from vigil.detect.models import (
    REGISTRY,
    ModelSpec,
    get_model,
    list_models,
    model_path,
    pull,
    resolve_model,
)
from vigil.detect.onnx import OnnxDetector, choose_providers

__all__ = [
    "COCO",
    "REGISTRY",
    "Detector",
    "ModelSpec",
    "OnnxDetector",
    "build_detector",
    "canonical_label",
    "choose_providers",
    "class_ids",
    "get_model",
    "list_models",
    "model_path",
    "pull",
    "resolve_model",
]


def build_detector(
    config: DetectConfig, *, cache_dir: Path | None = None, download: bool = False
) -> Detector:
    """The detector ``config`` describes: its model, thresholds, input size, threads, labels.

    ``config.model`` is a registry name or a path (see :func:`resolve_model`); only
    ``config.labels`` classes are reported (an empty list means every class). Nothing is
    downloaded unless ``download`` is set, so a missing model fails fast with the
    ``vigil models pull`` command to run.
    ``model == "motion"`` raises ``ValueError``: build that one with ``vigil.detect.motion``.
    """
    if config.is_motion:
        raise ValueError(
            "detect.model 'motion' is the model-free motion detector; build it with "
            "vigil.detect.motion, not build_detector"
        )
    path = resolve_model(config.model, cache_dir, download=download)
    return OnnxDetector(
        path,
        confidence=config.confidence,
        nms_iou=config.nms_iou,
        input_size=config.input_size,
        threads=config.threads,
        labels=config.labels or None,
    )
