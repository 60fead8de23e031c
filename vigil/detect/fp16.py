"""FP16 models for ONNX Runtime's CUDA provider.

TensorRT builds FP16 engines from the FP32 model by itself (``trt_fp16_enable``); the CUDA
provider runs whatever precision the graph has, so FP16 there needs an FP16 graph. The
conversion (``onnxconverter-common``'s ``float16``, part of the ``gpu`` extra) keeps the
graph's input and output FP32 (``keep_io_types``: Cast nodes at both ends), so the detector's
pre- and post-processing are unchanged. It takes about 0.1 s for YOLOX-Nano, so it is done in
memory at load time rather than cached on disk, where a stale file could outlive its model.
"""

from __future__ import annotations

import logging
import warnings

import onnx

from vigil.errors import ModelError

log = logging.getLogger(__name__)

_FIX = (
    "install onnxconverter-common (it comes with the gpu extra: `pip install -e '.[gpu]'`), "
    "or set detect.fp16: false, or use detect.device: tensorrt, which needs no conversion"
)


def to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` with FP16 weights and arithmetic and FP32 inputs and outputs."""
    try:
        from onnxconverter_common import float16
    except ImportError as exc:
        raise ModelError(
            f"detect.fp16 on the CUDA provider needs onnxconverter-common; {_FIX}"
        ) from exc
    copy = onnx.ModelProto()
    copy.CopyFrom(model)  # the converter rewrites the graph it is given in place
    with warnings.catch_warnings(record=True) as caught:
        # It warns once per weight that FP16 rounds to zero or clamps; YOLOX has a few
        # (|w| < 6e-8), which FP16 cannot represent anyway. One log line says how many.
        warnings.simplefilter("always")
        converted: onnx.ModelProto = float16.convert_float_to_float16(copy, keep_io_types=True)
    if caught:
        log.info("FP16 conversion: %d weights rounded to FP16's range", len(caught))
    return converted
