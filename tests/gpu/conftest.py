"""GPU tests: real CUDA/TensorRT sessions and NVDEC decoding on an NVIDIA GPU.

They skip, with the reason, wherever the GPU part is missing: no ``CUDAExecutionProvider``
in this ONNX Runtime, a provider that does not start (no GPU or driver), no NVDEC. Unlike the
shared-file fixtures (``tests/conftest.py``), which fail under ``CI=true``, these skip under CI
too: CI machines have no GPU, so a skip there is expected, not a broken test.
"""

from __future__ import annotations

import functools
from pathlib import Path

import onnxruntime as ort
import pytest

from tests.conftest import require_file
from vigil.detect import OnnxDetector
from vigil.detect.providers import CUDA, TENSORRT
from vigil.ingest.hwaccel import device_problem
from vigil.paths import shared_models_dir

_WHY = ("GPU tests need an NVIDIA GPU and the gpu extra (docs/gpu.md); they skip, not fail, "
        "even under CI=true, because CI has no GPU")  # fmt: skip


@functools.cache
def _cuda_problem(model: Path) -> str | None:
    providers = ort.get_available_providers()
    if CUDA not in providers:
        version = ort.__version__
        return f"CUDAExecutionProvider is not available (onnxruntime {version}: {providers})"
    try:
        OnnxDetector(model, device="cuda", max_batch=1)
    except Exception as exc:  # the reason goes into the skip message
        return f"CUDAExecutionProvider does not start: {exc}"
    return None


@pytest.fixture
def nano() -> Path:
    return require_file(shared_models_dir() / "yolox_nano.onnx")


@pytest.fixture
def cuda(nano: Path) -> None:
    problem = _cuda_problem(nano)
    if problem is not None:
        pytest.skip(f"{problem}; {_WHY}")


@pytest.fixture
def tensorrt(cuda: None) -> None:
    if TENSORRT not in ort.get_available_providers():
        pytest.skip(f"TensorrtExecutionProvider is not in this onnxruntime; {_WHY}")


@pytest.fixture
def nvdec() -> None:
    problem = device_problem("cuda")
    if problem is not None:
        pytest.skip(f"FFmpeg cannot open a CUDA device for NVDEC ({problem}); {_WHY}")
