"""Object detection: the ``Detector`` protocol, the YOLOX ONNX detector and the model registry.

``build_detector(config)`` turns a ``DetectConfig`` into a ready detector. The model-free
motion detector (``model: motion``) lives in ``vigil.detect.motion`` and is built there.
"""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort

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
from vigil.detect.providers import CPU, GpuOptions, primary, select_providers
from vigil.detect.threads import detector_threads

#: Images per ``session.run`` by default: the CPU gains nothing past 8, a GPU up to 64.
CPU_MAX_BATCH = 8
GPU_MAX_BATCH = 64

__all__ = [
    "COCO",
    "REGISTRY",
    "Detector",
    "GpuOptions",
    "ModelSpec",
    "OnnxDetector",
    "build_detector",
    "canonical_label",
    "choose_providers",
    "class_ids",
    "detector_threads",
    "get_model",
    "list_models",
    "model_path",
    "pull",
    "resolve_model",
    "select_providers",
]


def build_detector(
    config: DetectConfig,
    *,
    cache_dir: Path | None = None,
    download: bool = False,
    max_batch: int | None = None,
) -> Detector:
    """The detector ``config`` describes: its model, thresholds, input size, threads, labels,
    and where it runs (``device``, ``fp16``, ``device_id``, ``engine_cache``).

    ``max_batch`` is the most images one ``session.run`` takes (larger calls run in chunks);
    by default 8 on the CPU (larger batches buy nothing there) and
    :data:`GPU_MAX_BATCH` on a GPU, so that ``detector.max_batch`` up to that reaches the GPU
    as one batch.

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
    if max_batch is None:
        on_cpu = primary(select_providers(config.device, ort.get_available_providers())) == CPU
        max_batch = CPU_MAX_BATCH if on_cpu else GPU_MAX_BATCH
    return OnnxDetector(
        path,
        confidence=config.confidence,
        nms_iou=config.nms_iou,
        input_size=config.input_size,
        threads=detector_threads(config.threads),
        labels=config.labels or None,
        max_batch=max_batch,
        device=config.device,
        gpu=GpuOptions(
            device_id=config.device_id, fp16=config.fp16, engine_cache=config.engine_cache
        ),
    )
