"""Which ONNX Runtime execution providers a detector session gets, with which options.

:func:`select_providers` is a pure function of the wanted device (``detect.device``), the
providers this ONNX Runtime build offers (``onnxruntime.get_available_providers()``) and the
GPU options, so it is unit-tested on any machine by feeding it provider lists:

* ``auto``: TensorRT, then CUDA, then (OpenVINO, kept from before) by availability, CPU last;
* ``cpu``: the CPU provider alone;
* ``cuda`` / ``tensorrt``: that provider first and the CPU provider last (ONNX Runtime places
  the few nodes a GPU provider lacks on the next provider in the list); when the build lacks
  it, :class:`~vigil.errors.ModelError` names the fix instead of running on the CPU silently.

A GPU provider in ``get_available_providers()`` only says the *build* has it: onnxruntime-gpu
lists CUDA on a machine without a GPU or driver too, and a session then falls back to the
CPU. :func:`check_active` compares what the session really uses (``get_providers()``) with
what was asked, so an explicit ``cuda`` or ``tensorrt`` never ends up on the CPU unnoticed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from vigil.errors import ModelError
from vigil.paths import cache_dir

Device = Literal["auto", "cpu", "cuda", "tensorrt"]
#: A provider as ``InferenceSession(providers=...)`` takes it: its name and its options.
ProviderSpec = tuple[str, dict[str, str]]

TENSORRT = "TensorrtExecutionProvider"
CUDA = "CUDAExecutionProvider"
OPENVINO = "OpenVINOExecutionProvider"
CPU = "CPUExecutionProvider"

#: The provider each explicit device needs.
DEVICE_PROVIDER: dict[str, str] = {"cpu": CPU, "cuda": CUDA, "tensorrt": TENSORRT}

#: What to do when a GPU provider is missing or inactive.
GPU_FIX = (
    "install the GPU build: `pip install -e '.[gpu]'` then `pip uninstall -y onnxruntime` "
    "and `pip install --force-reinstall --no-deps onnxruntime-gpu` (the two packages share "
    "one module and must not both be installed; docs/gpu.md), and check that the NVIDIA "
    "driver works (`nvidia-smi`); or set detect.device: auto or cpu"
)
TENSORRT_FIX = (
    "TensorRT's libraries must be loadable too: the TensorRT release ONNX Runtime's TensorRT "
    "page lists for this onnxruntime, built for CUDA 13 (e.g. `pip install "
    "'tensorrt-cu13-libs<11'`; docs/gpu.md)"
)


def default_engine_cache() -> Path:
    """Where TensorRT engines and timing caches go by default: ``<model cache>/engines``."""
    return cache_dir() / "engines"


@dataclass(frozen=True, slots=True)
class GpuOptions:
    """GPU settings of a detector session (ignored by the CPU provider).

    ``fp16``: TensorRT builds FP16 engines (``trt_fp16_enable``); on the CUDA provider the
    model itself is converted to FP16 (:mod:`vigil.detect.fp16`). ``engine_cache``: folder
    for TensorRT engines (``None``: :func:`default_engine_cache`); building an engine takes
    seconds to minutes, loading a cached one well under a second.
    ``trt_max_workspace_size``: bytes TensorRT may use while choosing kernels.
    ``cudnn_conv_algo_search``: ``EXHAUSTIVE`` (ONNX Runtime's default; slowest start,
    fastest kernels), ``HEURISTIC`` or ``DEFAULT``.
    ``input_name``/``max_batch``/``max_size`` (``(w, h)``): when given, TensorRT gets one
    optimisation profile from a 1x32x32 image to ``max_batch`` images of ``max_size``, so
    that every batch size and canvas of the run uses one engine instead of building one per
    new shape.
    """

    device_id: int = 0
    fp16: bool = False
    engine_cache: Path | None = None
    trt_max_workspace_size: int = 2 << 30
    cudnn_conv_algo_search: Literal["EXHAUSTIVE", "HEURISTIC", "DEFAULT"] = "EXHAUSTIVE"
    input_name: str | None = None
    max_batch: int = 1
    max_size: tuple[int, int] | None = None

    @property
    def cache_path(self) -> Path:
        return self.engine_cache if self.engine_cache is not None else default_engine_cache()


def _tensorrt_options(options: GpuOptions) -> dict[str, str]:
    cache = str(options.cache_path)
    spec = {
        "device_id": str(options.device_id),
        "trt_fp16_enable": "True" if options.fp16 else "False",
        "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": cache,
        "trt_timing_cache_enable": "True",
        "trt_timing_cache_path": cache,
        "trt_max_workspace_size": str(options.trt_max_workspace_size),
    }
    if options.input_name is not None and options.max_size is not None:
        width, height = options.max_size
        name, batch = options.input_name, max(1, options.max_batch)
        spec["trt_profile_min_shapes"] = f"{name}:1x3x32x32"
        spec["trt_profile_opt_shapes"] = f"{name}:{batch}x3x{height}x{width}"
        spec["trt_profile_max_shapes"] = f"{name}:{batch}x3x{height}x{width}"
    return spec


def _cuda_options(options: GpuOptions) -> dict[str, str]:
    return {
        "device_id": str(options.device_id),
        "cudnn_conv_algo_search": options.cudnn_conv_algo_search,
    }


def provider_spec(name: str, options: GpuOptions) -> ProviderSpec:
    """``name`` with the options Vigil sets for it (none for CPU, OpenVINO, others)."""
    if name == TENSORRT:
        return (name, _tensorrt_options(options))
    if name == CUDA:
        return (name, _cuda_options(options))
    return (name, {})


def select_providers(
    device: Device, available: list[str] | tuple[str, ...], options: GpuOptions | None = None
) -> list[ProviderSpec]:
    """The ordered providers (with options) for ``device`` given the ``available`` ones.

    Raises ``ModelError`` naming the fix when ``device`` is ``cuda`` or ``tensorrt`` and this
    ONNX Runtime build lacks that provider, or when ``device`` is none of the four.
    """
    opts = options or GpuOptions()
    have = list(available)
    if device == "auto":
        order = [p for p in (TENSORRT, CUDA, OPENVINO) if p in have]
    elif device == "cpu":
        order = []
    elif device in ("cuda", "tensorrt"):
        wanted = DEVICE_PROVIDER[device]
        if wanted not in have:
            extra = f"; {TENSORRT_FIX}" if device == "tensorrt" else ""
            raise ModelError(
                f"detect.device is {device!r} but this ONNX Runtime has no {wanted} "
                f"(available: {have}); {GPU_FIX}{extra}"
            )
        # TensorRT leaves the nodes it cannot take to CUDA, then to the CPU.
        order = [TENSORRT, CUDA] if device == "tensorrt" and CUDA in have else [wanted]
    else:
        raise ModelError(f"unknown detect.device {device!r}; use auto, cpu, cuda or tensorrt")
    return [provider_spec(name, opts) for name in [*order, CPU]]


def primary(specs: list[ProviderSpec]) -> str:
    """The provider a session built from ``specs`` should run on (the first one)."""
    return specs[0][0]


def check_active(device: Device, requested: list[ProviderSpec], active: list[str]) -> None:
    """Raise ``ModelError`` when an explicit GPU ``device`` is not among the ``active``
    providers of the session (``session.get_providers()``) built from ``requested``.

    ``auto`` accepts whatever the session got (the caller logs it); so does ``cpu``.
    """
    if device not in ("cuda", "tensorrt"):
        return
    wanted = DEVICE_PROVIDER[device]
    if wanted in active:
        return
    extra = f"; {TENSORRT_FIX}" if device == "tensorrt" else ""
    raise ModelError(
        f"detect.device is {device!r}: ONNX Runtime was asked for "
        f"{[name for name, _ in requested]} but the session runs on {active}, so {wanted} "
        f"could not start (no GPU visible, a driver/CUDA/cuDNN mismatch, or missing "
        f"libraries); {GPU_FIX}{extra}"
    )
