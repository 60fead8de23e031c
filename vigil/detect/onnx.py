"""YOLOX-family detector on ONNX Runtime, batched.

The official YOLOX ONNX files declare a batch of 1 and end in three ``Reshape(x, [1, C, -1])``
nodes (one per stride) followed by a ``Concat`` and a ``Transpose``. Making only the input's
batch dimension dynamic is not enough: with ``N`` images that reshape folds the batch into the
channel axis and the rows come out scrambled across images. So, at load time and in memory
only, the leading ``1`` of those shape constants becomes ``0`` ("copy the input's
dimension"), which turns the output into a proper ``(N, A, C)``; the test suite checks that a
batch of four gives exactly what four single calls give.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

from vigil.detect.fp16 import to_fp16
from vigil.detect.labels import COCO, class_ids
from vigil.detect.postprocess import (
    YOLOX_STRIDES,
    letterbox,
    postprocess_yolox,
    yolox_anchor_count,
)
from vigil.detect.providers import (
    CPU,
    CUDA,
    GPU_FIX,
    TENSORRT,
    Device,
    GpuOptions,
    ProviderSpec,
    check_active,
    primary,
    provider_spec,
    select_providers,
)
from vigil.errors import ConfigError, ModelError
from vigil.types import Detections, FloatArray, ImageArray

log = logging.getLogger(__name__)

#: Execution providers in order of preference; the first available ones are used.
PROVIDER_PREFERENCE: tuple[str, ...] = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "OpenVINOExecutionProvider",
    "CPUExecutionProvider",
)
#: ONNX Runtime log severity: 3 = errors only (it warns once per initializer otherwise).
_ORT_LOG_ERRORS = 3
_FIX = "download the official file with `vigil models pull yolox-nano` or pass --model PATH"


def choose_providers(
    requested: Sequence[str] | None = None, available: Sequence[str] | None = None
) -> list[str]:
    """The execution providers to use: ``requested`` if all are available, else by preference.

    Without a request, every available provider of :data:`PROVIDER_PREFERENCE` is returned in
    that order (ONNX Runtime falls back along the list node by node). A requested provider
    that this ONNX Runtime build lacks raises ``ModelError`` listing the available ones.
    """
    have = list(ort.get_available_providers() if available is None else available)
    if requested:
        missing = [p for p in requested if p not in have]
        if missing:
            raise ModelError(
                f"execution provider(s) {missing} are not in this ONNX Runtime build; "
                f"available: {have} (install onnxruntime-gpu or onnxruntime-openvino for more)"
            )
        return list(requested)
    chosen = [p for p in PROVIDER_PREFERENCE if p in have]
    return chosen or ["CPUExecutionProvider"]


@functools.cache
def _preload_gpu_libraries() -> None:
    """Load CUDA and cuDNN from the NVIDIA wheels the gpu extra installs (onnxruntime-gpu's
    ``preload_dlls``): without it the CUDA provider finds them only on LD_LIBRARY_PATH.
    A no-op on the CPU build; a failure is left for the session to report."""
    preload = getattr(ort, "preload_dlls", None)
    if preload is None:
        return
    try:
        preload()
    except Exception as exc:  # the session that follows says what is really missing
        log.debug("onnxruntime.preload_dlls failed: %s", exc)


def _as_device(providers: Sequence[str]) -> Device:
    """The device an explicit provider list asks for, to check the session against."""
    first = providers[0]
    if first == TENSORRT:
        return "tensorrt"
    if first == CUDA:
        return "cuda"
    return "auto"


def _dims(value: onnx.ValueInfoProto) -> list[int | str]:
    """Declared dims of a graph input/output: int when fixed, the symbol (or "?") when not."""
    dims: list[int | str] = []
    for dim in value.type.tensor_type.shape.dim:
        if dim.HasField("dim_value"):
            dims.append(int(dim.dim_value))
        else:
            dims.append(dim.dim_param or "?")
    return dims


def load_model(path: Path) -> onnx.ModelProto:
    """Read an ONNX file; a missing or unparsable file raises ``ModelError`` naming it."""
    if not path.is_file():
        raise ModelError(f"model file {path} does not exist; {_FIX}")
    try:
        return onnx.load(str(path))
    except Exception as exc:  # protobuf DecodeError, truncated files, …: all mean "corrupt"
        raise ModelError(
            f"{path} is not a readable ONNX model ({type(exc).__name__}: {exc}); the file is "
            f"corrupt or not ONNX: delete it and {_FIX}"
        ) from exc


@dataclass(frozen=True, slots=True)
class ModelIo:
    """Names of a YOLOX graph's image input and raw output, and its declared input size.

    ``declared_size`` is ``(width, height)``, or None when the model leaves it dynamic.
    """

    input_name: str
    output_name: str
    declared_size: tuple[int, int] | None


def inspect_yolox(model: onnx.ModelProto, path: Path, num_classes: int) -> ModelIo:
    """Check that ``model`` looks like a YOLOX detector with ``num_classes`` classes.

    Expected: one image input ``(batch, 3, h, w)`` and an output ``(batch, A, 5 + classes)``
    with ``A`` the number of grid cells at strides 8/16/32. Raises ``ModelError`` naming the
    file, what was found and the fix.
    """
    weights = {init.name for init in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in weights]
    outputs = list(model.graph.output)
    found = (
        f"inputs {[(i.name, _dims(i)) for i in inputs]}, "
        f"outputs {[(o.name, _dims(o)) for o in outputs]}"
    )
    wrong = (
        f"{path} is not a YOLOX detector: expected one input (1, 3, H, W) and an output "
        f"(1, anchors, {5 + num_classes}), found {found}; {_FIX}"
    )
    if len(inputs) != 1 or not outputs:
        raise ModelError(wrong)
    in_dims, out_dims = _dims(inputs[0]), _dims(outputs[0])
    if len(in_dims) != 4 or (isinstance(in_dims[1], int) and in_dims[1] != 3):
        raise ModelError(wrong)
    if len(out_dims) != 3 or (isinstance(out_dims[2], int) and out_dims[2] != 5 + num_classes):
        raise ModelError(wrong)
    size: tuple[int, int] | None = None
    if isinstance(in_dims[2], int) and isinstance(in_dims[3], int):
        size = (in_dims[3], in_dims[2])
        rows = out_dims[1]
        if isinstance(rows, int) and rows != yolox_anchor_count(size, YOLOX_STRIDES):
            raise ModelError(wrong)
    return ModelIo(inputs[0].name, outputs[0].name, size)


def _constant_values(model: onnx.ModelProto) -> dict[str, onnx.TensorProto]:
    """Tensors that feed nodes as constants: initializers and ``Constant`` node outputs."""
    tensors = {init.name: init for init in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    tensors[node.output[0]] = attr.t
    return tensors


def _unfold_batch_reshapes(model: onnx.ModelProto, channels: int) -> int:
    """Turn ``Reshape(x, [1, channels, -1])`` into ``Reshape(x, [0, channels, -1])`` in place.

    ``0`` keeps the input's batch dimension (Reshape's default ``allowzero=0``), so the head
    no longer folds several images into one. Returns how many shapes were rewritten.
    """
    constants = _constant_values(model)
    patched = 0
    for node in model.graph.node:
        allowzero = any(a.name == "allowzero" and a.i for a in node.attribute)
        if node.op_type != "Reshape" or len(node.input) < 2 or allowzero:
            continue  # with allowzero=1 a 0 would mean an empty axis, not "copy"
        tensor = constants.get(node.input[1])
        if tensor is None:
            continue
        shape = numpy_helper.to_array(tensor)
        if shape.shape == (3,) and shape[0] == 1 and shape[1] == channels and shape[2] == -1:
            new = np.array([0, channels, -1], dtype=shape.dtype)
            tensor.CopyFrom(numpy_helper.from_array(new, name=tensor.name))
            patched += 1
    return patched


def _ceil32(value: float) -> int:
    return int(-(-int(np.ceil(value - 1e-6)) // 32) * 32)


def _set_dims(value: onnx.ValueInfoProto, dims: Sequence[int | str]) -> None:
    shape = value.type.tensor_type.shape
    for dim, new in zip(shape.dim, dims, strict=True):
        if isinstance(new, str):
            dim.dim_param = new
        else:
            dim.dim_value = new


def prepare_batched(
    model: onnx.ModelProto, io: ModelIo, size: tuple[int, int], num_classes: int
) -> bool:
    """Make ``model`` (in memory) take a dynamic batch at input ``size = (w, h)``.

    Returns whether batches larger than 1 give per-image output rows; when the graph has
    neither a dynamic batch nor the known YOLOX reshape, the caller runs one image at a time.
    """
    image_input = next(i for i in model.graph.input if i.name == io.input_name)
    already_dynamic = not isinstance(_dims(image_input)[0], int)
    patched = _unfold_batch_reshapes(model, 5 + num_classes)
    _set_dims(image_input, ["batch", 3, size[1], size[0]])
    output = next(o for o in model.graph.output if o.name == io.output_name)
    _set_dims(output, ["batch", "anchors", 5 + num_classes])
    # Intermediate shapes recorded for batch 1 would contradict the new dims.
    del model.graph.value_info[:]
    return already_dynamic or patched > 0


class OnnxDetector:
    """A YOLOX-family detector (nano … x) on ONNX Runtime.

    ``confidence`` is the minimum ``objectness x class`` score, ``nms_iou`` the IoU above which
    NMS suppresses a box of the same class. ``input_size`` (a multiple of 32) overrides the
    model's square input side; by default the model's own is used. ``labels`` (class names,
    Darknet aliases accepted) restricts what is reported; ``class_id`` still indexes the full
    ``class_names``. ``max_batch`` images go through one ``session.run`` at most.
    ``spin_wait`` lets idle ONNX Runtime threads busy-wait (see ``_open_session``).

    Where it runs: ``device`` (``auto``, ``cpu``, ``cuda``, ``tensorrt``; see
    :func:`vigil.detect.providers.select_providers`) with ``gpu`` options (device id, FP16,
    TensorRT engine cache); ``providers``, a list of provider names, overrides ``device``
    (kept for callers that name providers themselves). :attr:`providers` says what the
    session really uses.

    Thread-safe: ``detect_batch`` may be called from several threads (ONNX Runtime sessions
    are; everything else here is per call).
    """

    def __init__(
        self,
        path: Path,
        *,
        confidence: float = 0.3,
        nms_iou: float = 0.45,
        input_size: int | None = None,
        class_names: Sequence[str] = COCO,
        threads: int = 1,
        providers: Sequence[str] | None = None,
        labels: Collection[str] | None = None,
        max_batch: int = 8,
        spin_wait: bool = False,
        device: Device = "auto",
        gpu: GpuOptions | None = None,
    ) -> None:
        if not 0.0 < confidence < 1.0 or not 0.0 < nms_iou < 1.0:
            raise ConfigError(
                f"confidence ({confidence}) and nms_iou ({nms_iou}) must be between 0 and 1"
            )
        if max_batch < 1 or threads < 1:
            raise ConfigError(f"max_batch ({max_batch}) and threads ({threads}) must be >= 1")
        self.path = Path(path)
        self.confidence = float(confidence)
        self.nms_iou = float(nms_iou)
        self.threads = threads  # intra-op threads of the session
        self._class_names = tuple(class_names)
        self._keep = None if labels is None else class_ids(labels, self._class_names)
        model = load_model(self.path)
        io = inspect_yolox(model, self.path, len(self._class_names))
        self._input_size = self._pick_size(io, input_size)
        batched = prepare_batched(model, io, self._input_size, len(self._class_names))
        self.max_batch = max_batch if batched else 1
        if not batched:
            log.info("%s has a fixed batch of 1; images run one per session.run", self.path)
        self._input_name, self._output_name = io.input_name, io.output_name
        self._num_outputs = 5 + len(self._class_names)
        self.device: Device = device
        # TensorRT gets one optimisation profile covering every batch and canvas of the run.
        self._gpu = replace(gpu or GpuOptions(), input_name=io.input_name,
                            max_batch=self.max_batch, max_size=self._input_size)  # fmt: skip
        # Try a rectangular canvas first: a 16:9 frame letterboxed into a square wastes ~40 %
        # of the network's work on padding; YOLOX is fully convolutional, so a canvas of
        # multiples of 32 that just holds the scaled image gives the same boxes for less.
        image_input = next(i for i in model.graph.input if i.name == io.input_name)
        fixed = list(_dims(image_input))
        _set_dims(image_input, [fixed[0], 3, "height", "width"])
        self._session = self._open_session(model, threads, providers, spin_wait)
        self.rectangular = self._probe_rectangular()
        if not self.rectangular:
            log.info("%s needs a square input; frames are letterboxed to a square", self.path)
            _set_dims(image_input, fixed)
            self._session = self._open_session(model, threads, providers, spin_wait)

    def _pick_size(self, io: ModelIo, input_size: int | None) -> tuple[int, int]:
        if input_size is None:
            if io.declared_size is None:
                raise ModelError(
                    f"{self.path} leaves its input size open; set detect.input_size "
                    f"(e.g. 416 or 640)"
                )
            return io.declared_size
        if input_size < 32 or input_size % 32:
            raise ConfigError(
                f"detector input_size {input_size} must be a positive multiple of 32 "
                f"(the largest YOLOX stride), e.g. 320, 416 or 640"
            )
        return (input_size, input_size)

    def _provider_specs(self, providers: Sequence[str] | None) -> list[ProviderSpec]:
        if providers:
            return [provider_spec(name, self._gpu) for name in choose_providers(providers)]
        return select_providers(self.device, ort.get_available_providers(), self._gpu)

    def _open_session(
        self,
        model: onnx.ModelProto,
        threads: int,
        providers: Sequence[str] | None,
        spin_wait: bool,
    ) -> ort.InferenceSession:
        specs = self._provider_specs(providers)
        options = self._session_options(threads, spin_wait)
        while True:
            try:
                session = self._start(model, options, specs)
                break
            except ModelError as exc:
                if self.device != "auto" or providers or primary(specs) == CPU:
                    raise
                # auto means "the best that works": a GPU provider that fails to start
                # (TensorRT or cuDNN libraries missing) leaves it to the next in the list.
                log.warning("%s: %s failed to start (%s); trying %s", self.path.name,
                            primary(specs), exc.__cause__, specs[1][0])  # fmt: skip
                specs = specs[1:]
        active = list(session.get_providers())
        check_active(self.device if not providers else _as_device(providers), specs, active)
        log.info("%s runs on %s (device %s%s)", self.path.name, active[0], self.device,
                 ", fp16" if self._gpu.fp16 and active[0] != CPU else "")  # fmt: skip
        return session

    def _start(
        self, model: onnx.ModelProto, options: ort.SessionOptions, specs: list[ProviderSpec]
    ) -> ort.InferenceSession:
        """A session on ``specs``; the CUDA provider first with ``fp16`` gets an FP16 model."""
        first = primary(specs)
        if first == CUDA and self._gpu.fp16:
            model = to_fp16(model)
        if first in (TENSORRT, CUDA):
            _preload_gpu_libraries()
        if first == TENSORRT:
            self._gpu.cache_path.mkdir(parents=True, exist_ok=True)
        try:
            return ort.InferenceSession(model.SerializeToString(), options, providers=specs)
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph/EPFail types
            gpu_fix = f"; or the GPU provider failed: {GPU_FIX}" if first != CPU else ""
            raise ModelError(
                f"ONNX Runtime cannot load {self.path} on {[n for n, _ in specs]} ({exc}); "
                f"the file may be damaged or need a newer onnxruntime: {_FIX}{gpu_fix}"
            ) from exc

    def _session_options(self, threads: int, spin_wait: bool) -> ort.SessionOptions:
        ort.set_default_logger_severity(_ORT_LOG_ERRORS)
        options = ort.SessionOptions()
        # ONNX Runtime's idle intra-op threads busy-wait by default. On an idle 2-core machine
        # that is faster (YOLOX-Nano, 2 threads: 10 ms/image spinning, 13 ms not), but when
        # decoders, trackers or other processes use the same cores the spinning threads steal
        # their CPU and everything slows (33-43 ms/image spinning vs 19-24 ms not, measured
        # under load; bench/detector.py). Vigil shares its cores, so spinning is opt-in.
        spin = "1" if spin_wait else "0"
        options.add_session_config_entry("session.intra_op.allow_spinning", spin)
        options.add_session_config_entry("session.inter_op.allow_spinning", spin)
        options.log_severity_level = _ORT_LOG_ERRORS
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        return options

    @property
    def class_names(self) -> Sequence[str]:
        return self._class_names

    @property
    def input_size(self) -> tuple[int, int]:
        return self._input_size

    @property
    def providers(self) -> list[str]:
        """Execution providers the session actually uses, best first."""
        return list(self._session.get_providers())

    def detect(self, image: ImageArray) -> Detections:
        """Detections of one image; same as ``detect_batch([image])[0]``."""
        return self.detect_batch([image])[0]

    def detect_batch(self, images: Sequence[ImageArray]) -> list[Detections]:
        """See :meth:`vigil.detect.base.Detector.detect_batch`.

        Up to ``max_batch`` images share one ``session.run``; longer sequences are chunked.
        A malformed image (not ``(h, w, 3)`` uint8, or empty) raises ``ValueError``.
        """
        results: list[Detections] = []
        for start in range(0, len(images), self.max_batch):
            results.extend(self._run_chunk(images[start : start + self.max_batch]))
        return results

    def canvas(self, images: Sequence[ImageArray]) -> tuple[int, int]:
        """Network input ``(w, h)`` for a batch: the smallest multiple-of-32 canvas holding
        every image scaled as it would be into the nominal square (never larger than it)."""
        if not self.rectangular:
            return self._input_size
        nominal_w, nominal_h = self._input_size
        width = height = 0
        for image in images:
            h, w = int(image.shape[0]), int(image.shape[1])
            scale = min(nominal_w / w, nominal_h / h)
            width = max(width, _ceil32(w * scale))
            height = max(height, _ceil32(h * scale))
        return min(width, nominal_w), min(height, nominal_h)

    def _probe_rectangular(self) -> bool:
        w, h = self._input_size
        probe = np.zeros((1, 3, max(32, h - 32), w), np.float32)
        try:
            raw = self._infer(probe)
        except ModelError:
            return False
        return int(raw.shape[1]) == yolox_anchor_count((w, probe.shape[2]), YOLOX_STRIDES)

    def _run_chunk(self, images: Sequence[ImageArray]) -> list[Detections]:
        size = self.canvas(images)
        prepared = [letterbox(image, size) for image in images]
        batch = np.stack([blob for blob, _, _ in prepared])
        raw = self._infer(batch)
        return [
            postprocess_yolox(
                raw[i],
                input_size=size,
                scale=scale,
                pad=pad,
                image_size=(int(image.shape[1]), int(image.shape[0])),
                confidence=self.confidence,
                nms_iou=self.nms_iou,
                keep_classes=self._keep,
            )
            for i, (image, (_, scale, pad)) in enumerate(zip(images, prepared, strict=True))
        ]

    def _infer(self, batch: FloatArray) -> FloatArray:
        """Run ``(n, 3, h, w)`` through the model → ``(n, A, 5 + C)`` raw rows."""
        try:
            outputs: list[Any] = self._session.run([self._output_name], {self._input_name: batch})
        except Exception as exc:
            raise ModelError(f"inference with {self.path} failed: {exc}") from exc
        raw = np.asarray(outputs[0], dtype=np.float32)
        rows = yolox_anchor_count((int(batch.shape[3]), int(batch.shape[2])), YOLOX_STRIDES)
        expected = (batch.shape[0], rows, self._num_outputs)
        if raw.shape != expected:
            raise ModelError(
                f"{self.path} returned {raw.shape} for a batch of {batch.shape[0]}, expected "
                f"{expected}: it is not a YOLOX model this decoder understands; {_FIX}"
            )
        return raw
