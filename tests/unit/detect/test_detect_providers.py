"""Execution provider selection, on any machine: provider lists are fed in, not detected.

The detector-level tests make ONNX Runtime *believe* GPU providers exist (by patching
``get_available_providers``): the CPU build then warns and runs on the CPU, which is exactly
what a GPU build does on a machine without a usable GPU, so the "listed but not active"
checks and the FP16 conversion run for real here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from pydantic import ValidationError

from tests.conftest import require_file
from tests.unit.detect.test_onnx_detector import _frames, _tiny_yolox
from vigil.config.models import DetectConfig
from vigil.detect import OnnxDetector, build_detector
from vigil.detect.fp16 import to_fp16
from vigil.detect.onnx import load_model
from vigil.detect.providers import (
    CPU,
    CUDA,
    OPENVINO,
    TENSORRT,
    GpuOptions,
    check_active,
    default_engine_cache,
    select_providers,
)
from vigil.errors import ModelError
from vigil.paths import shared_data_dir, shared_models_dir

AZURE = "AzureExecutionProvider"
ALL_GPU = [TENSORRT, CUDA, CPU]
# What ORT's CPU build says when it is handed a provider it lacks, before using the CPU.
NOT_BUILT = "ignore:Specified provider.*is not in available provider names"


def names(specs: list[tuple[str, dict[str, str]]]) -> list[str]:
    return [name for name, _ in specs]


# ------------------------------------------------------------------------ selection


@pytest.mark.parametrize(
    ("available", "chosen"),
    [
        ([AZURE, CPU], [CPU]),  # the plain onnxruntime wheel
        ([CPU, CUDA, TENSORRT], [TENSORRT, CUDA, CPU]),  # order is ours, not the list's
        ([AZURE, CUDA, CPU], [CUDA, CPU]),  # onnxruntime-gpu without TensorRT
        ([TENSORRT, CPU], [TENSORRT, CPU]),
        ([OPENVINO, CPU], [OPENVINO, CPU]),
        ([CUDA, OPENVINO, CPU], [CUDA, OPENVINO, CPU]),
    ],
)
def test_auto_takes_the_best_available(available: list[str], chosen: list[str]):
    assert names(select_providers("auto", available)) == chosen


@pytest.mark.parametrize("available", [[CPU], ALL_GPU, [CUDA, CPU]])
def test_cpu_is_the_cpu_alone(available: list[str]):
    assert select_providers("cpu", available) == [(CPU, {})]


def test_cuda_comes_first_with_the_cpu_as_fallback():
    specs = select_providers("cuda", ALL_GPU, GpuOptions(device_id=3))
    assert names(specs) == [CUDA, CPU]  # TensorRT is not used unless asked for
    assert specs[0][1] == {"device_id": "3", "cudnn_conv_algo_search": "EXHAUSTIVE"}
    heuristic = GpuOptions(cudnn_conv_algo_search="HEURISTIC")
    assert select_providers("cuda", ALL_GPU, heuristic)[0][1]["cudnn_conv_algo_search"] == (
        "HEURISTIC"
    )


def test_tensorrt_options(tmp_path: Path):
    options = GpuOptions(
        device_id=1, fp16=True, engine_cache=tmp_path, trt_max_workspace_size=1 << 30,
        input_name="images", max_batch=64, max_size=(416, 416),
    )  # fmt: skip
    specs = select_providers("tensorrt", ALL_GPU, options)
    assert names(specs) == [TENSORRT, CUDA, CPU]
    assert specs[0][1] == {
        "device_id": "1",
        "trt_fp16_enable": "True",
        "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": str(tmp_path),
        "trt_timing_cache_enable": "True",
        "trt_timing_cache_path": str(tmp_path),
        "trt_max_workspace_size": str(1 << 30),
        "trt_profile_min_shapes": "images:1x3x32x32",
        "trt_profile_opt_shapes": "images:64x3x416x416",
        "trt_profile_max_shapes": "images:64x3x416x416",
    }
    assert specs[1][1]["device_id"] == "1"  # the CUDA fallback is on the same GPU
    assert specs[2] == (CPU, {})
    # Without TensorRT's libraries ORT still needs somewhere to put the rest: the CPU.
    assert names(select_providers("tensorrt", [TENSORRT, CPU], options)) == [TENSORRT, CPU]


def test_tensorrt_without_fp16_and_without_a_profile():
    specs = select_providers("auto", ALL_GPU)
    trt = specs[0][1]
    assert trt["trt_fp16_enable"] == "False"
    assert "trt_profile_max_shapes" not in trt
    assert trt["trt_engine_cache_path"] == str(default_engine_cache())


def test_engine_cache_defaults_under_the_model_cache(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("VIGIL_CACHE_DIR", str(tmp_path))
    assert default_engine_cache() == tmp_path / "engines"
    assert GpuOptions().cache_path == tmp_path / "engines"


@pytest.mark.parametrize(("device", "missing"), [("cuda", CUDA), ("tensorrt", TENSORRT)])
@pytest.mark.parametrize("available", [[AZURE, CPU], [CPU]])
def test_an_unavailable_gpu_is_an_error_naming_the_fix(
    device: str, missing: str, available: list[str]
):
    with pytest.raises(ModelError) as caught:
        select_providers(device, available)  # type: ignore[arg-type]
    message = str(caught.value)
    assert missing in message
    assert ".[gpu]" in message
    assert "pip uninstall -y onnxruntime" in message
    assert "nvidia-smi" in message
    assert ("tensorrt-cu13" in message) is (device == "tensorrt")


def test_an_unknown_device_is_refused():
    with pytest.raises(ModelError, match="auto, cpu, cuda or tensorrt"):
        select_providers("gpu", ALL_GPU)  # type: ignore[arg-type]


def test_check_active():
    cuda = select_providers("cuda", ALL_GPU)
    check_active("cuda", cuda, [CUDA, CPU])
    check_active("auto", cuda, [CPU])  # auto takes what it gets
    check_active("cpu", [(CPU, {})], [CPU])
    with pytest.raises(ModelError, match=r"runs on \['CPUExecutionProvider'\].*nvidia-smi"):
        check_active("cuda", cuda, [CPU])
    trt = select_providers("tensorrt", ALL_GPU)
    with pytest.raises(ModelError, match=r"TensorrtExecutionProvider.*tensorrt-cu13"):
        check_active("tensorrt", trt, [CUDA, CPU])  # fell back to CUDA: not what was asked


def test_config_defaults_change_nothing_on_the_cpu():
    config = DetectConfig()
    assert (config.device, config.fp16, config.device_id, config.engine_cache) == (
        "auto", False, 0, None,
    )  # fmt: skip
    with pytest.raises(ValidationError, match="tensorrt"):
        DetectConfig.model_validate({"device": "gpu"})


# ------------------------------------------------------------------- in a detector


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    return _tiny_yolox(tmp_path / "tiny.onnx")


def pretend(monkeypatch: pytest.MonkeyPatch, available: list[str]) -> None:
    monkeypatch.setattr(ort, "get_available_providers", lambda: list(available))


def test_auto_on_this_cpu_build_is_the_cpu(tiny: Path):
    if CUDA in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA: the GPU tests cover it (tests/gpu)")
    detector = OnnxDetector(tiny)
    assert detector.providers == [CPU]


def test_explicit_cuda_without_it_refuses_to_start(tiny: Path):
    if CUDA in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA: the GPU tests cover it (tests/gpu)")
    with pytest.raises(ModelError, match=r"no CUDAExecutionProvider.*\.\[gpu\]"):
        OnnxDetector(tiny, device="cuda")


@pytest.mark.filterwarnings(NOT_BUILT)
@pytest.mark.parametrize("device", ["cuda", "tensorrt"])
def test_a_listed_gpu_that_does_not_start_is_an_error(monkeypatch, tiny: Path, device: str):
    """onnxruntime-gpu on a machine without a GPU lists CUDA but runs on the CPU."""
    if CUDA in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA: the session might really start on it")
    pretend(monkeypatch, ALL_GPU)
    with pytest.raises(ModelError, match=r"the session runs on \['CPUExecutionProvider'\]"):
        OnnxDetector(tiny, device=device)  # type: ignore[arg-type]


@pytest.mark.filterwarnings(NOT_BUILT)
def test_auto_with_a_listed_gpu_that_does_not_start_runs_on_the_cpu(
    monkeypatch, tiny: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    if CUDA in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA: the session might really start on it")
    pretend(monkeypatch, ALL_GPU)
    caplog.set_level("INFO", logger="vigil.detect.onnx")
    cache = tmp_path / "engines"
    detector = OnnxDetector(tiny, gpu=GpuOptions(engine_cache=cache))
    assert detector.providers == [CPU]
    assert "runs on CPUExecutionProvider (device auto)" in caplog.text
    assert cache.is_dir()  # made for TensorRT before the session started
    assert len(detector.detect_batch(_frames(3))) == 3


@pytest.mark.filterwarnings(NOT_BUILT)
def test_build_detector_takes_gpu_sized_batches_when_a_gpu_is_chosen(
    monkeypatch, yolox_nano_path: Path, tmp_path: Path
):
    config = DetectConfig(model=str(yolox_nano_path), engine_cache=tmp_path)
    if CUDA not in ort.get_available_providers():
        cpu = build_detector(config)
        assert isinstance(cpu, OnnxDetector)
        assert cpu.max_batch == 8
    pretend(monkeypatch, [CUDA, CPU])
    gpu = build_detector(config)
    assert isinstance(gpu, OnnxDetector)
    assert gpu.max_batch == 64
    assert build_detector(config, max_batch=16).max_batch == 16  # type: ignore[attr-defined]
    # The batch really goes through in one session.run: 64 images, 64 results.
    images = _frames(64)
    assert len(gpu.detect_batch(images)) == 64


# ------------------------------------------------------------------------------ FP16


def _street_frames() -> list[np.ndarray]:
    """Frames of the shared clip where people are in view (the integration tests use them)."""
    import av

    path = require_file(shared_data_dir() / "clips" / "one-by-one-person-detection.mp4")
    wanted = {100, 300, 400, 500, 600}
    frames = []
    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index in wanted:
                frames.append(frame.to_ndarray(format="bgr24"))
            if index >= max(wanted):
                break
    return frames


def test_fp16_conversion_keeps_fp32_io_and_the_detections(yolox_nano_path: Path):
    pytest.importorskip("onnxconverter_common", reason="onnxconverter-common (gpu/dev extras)")
    model = load_model(yolox_nano_path)
    half = to_fp16(model)
    float16 = 10  # onnx.TensorProto.FLOAT16
    assert model.graph.initializer[0].data_type == 1  # the original is left alone
    assert any(init.data_type == float16 for init in half.graph.initializer)
    assert [i.type.tensor_type.elem_type for i in half.graph.input] == [1]
    assert [o.type.tensor_type.elem_type for o in half.graph.output] == [1]


@pytest.mark.filterwarnings(NOT_BUILT)
def test_fp16_on_cuda_runs_the_converted_model(monkeypatch, yolox_nano_path: Path):
    """With CUDA first and fp16 the session gets the FP16 graph; here it runs on the CPU
    (which has FP16 kernels for it), so its detections can be compared with FP32's."""
    pytest.importorskip("onnxconverter_common", reason="onnxconverter-common (gpu/dev extras)")
    if CUDA in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA: tests/gpu compares FP16 there")
    frames = _street_frames()
    full = OnnxDetector(yolox_nano_path, labels=["person"])
    pretend(monkeypatch, [CUDA, CPU])
    half = OnnxDetector(yolox_nano_path, labels=["person"], gpu=GpuOptions(fp16=True))
    assert half.providers == [CPU]
    found, differ = 0, False
    for a, b in zip(full.detect_batch(frames), half.detect_batch(frames), strict=True):
        assert abs(len(a) - len(b)) <= 1
        found += len(a)
        if len(a) and len(a) == len(b):
            np.testing.assert_allclose(a.xyxy, b.xyxy, atol=4.0)  # pixels of a 768x432 frame
            np.testing.assert_allclose(a.confidence, b.confidence, atol=0.05)
            differ = differ or not np.array_equal(a.confidence, b.confidence)
    assert found > 0  # the clip has people in these frames
    assert differ  # FP16 arithmetic really ran: FP32 would give identical scores


def test_fp16_without_the_converter_names_the_fix(monkeypatch, tmp_path: Path):
    import builtins

    real_import = builtins.__import__

    def no_converter(name: str, *args, **kwargs):  # type: ignore[no-untyped-def]
        if name.startswith("onnxconverter_common"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_converter)
    model = load_model(_tiny_yolox(tmp_path / "t.onnx"))
    with pytest.raises(ModelError, match=r"onnxconverter-common.*\.\[gpu\].*fp16: false"):
        to_fp16(model)


def test_shared_nano_declares_a_fixed_batch_that_the_loader_opens():
    """The official file says batch 1; the detector makes it dynamic in memory (onnx.py)."""
    from vigil.detect.onnx import _dims

    path = require_file(shared_models_dir() / "yolox_nano.onnx")
    model = load_model(path)
    assert _dims(model.graph.input[0]) == [1, 3, 416, 416]


@pytest.mark.filterwarnings(NOT_BUILT)
def test_auto_steps_down_past_a_gpu_provider_that_fails_to_start(
    monkeypatch, tiny: Path, caplog: pytest.LogCaptureFixture
):
    """TensorRT listed but its libraries missing: the session raises; auto tries CUDA (with
    the FP16 model when fp16 is on), then the CPU. An explicit device does not step down."""
    pytest.importorskip("onnxconverter_common", reason="onnxconverter-common (gpu/dev extras)")
    import onnx

    pretend(monkeypatch, ALL_GPU)
    real = ort.InferenceSession
    tried: list[tuple[list[str], bool]] = []

    def session(model: bytes, options: object, providers: list[tuple[str, dict[str, str]]]):
        graph = onnx.load_from_string(model).graph
        tried.append((names(providers), any(i.data_type == 10 for i in graph.initializer)))
        if providers[0][0] in (TENSORRT, CUDA):
            raise RuntimeError(f"{providers[0][0]}: libnvinfer.so.10 not found")
        return real(model, options, providers=providers)

    monkeypatch.setattr(ort, "InferenceSession", session)
    caplog.set_level("WARNING", logger="vigil.detect.onnx")
    detector = OnnxDetector(tiny, gpu=GpuOptions(fp16=True))
    assert detector.providers == [CPU]
    # The first session (the rectangular probe) steps down all the way: TRT on the FP32
    # model, CUDA on the FP16 one, then the CPU on the FP32 one.
    assert tried[:3] == [([TENSORRT, CUDA, CPU], False), ([CUDA, CPU], True), ([CPU], False)]
    assert "TensorrtExecutionProvider failed to start" in caplog.text
    assert "libnvinfer.so.10 not found" in caplog.text
    tried.clear()
    with pytest.raises(ModelError, match=r"TensorrtExecutionProvider.*nvidia-smi"):
        OnnxDetector(tiny, device="tensorrt")
    assert tried == [([TENSORRT, CUDA, CPU], False)]
