"""OnnxDetector on small ONNX graphs built here, and its refusals of bad model files.

``_tiny_yolox`` builds a miniature YOLOX head with the same output plumbing as the official
exports: one strided convolution per stride (8, 16, 32) → ``Reshape([1, C, -1])`` →
``Concat`` → ``Transpose``, declared with batch 1. It runs in microseconds, so batching
behaviour is tested without the shared model (the integration test repeats it on the real one).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from vigil.config.models import DetectConfig
from vigil.detect import Detector, OnnxDetector, build_detector, choose_providers
from vigil.errors import ConfigError, ModelError

CLASSES = 80
CHANNELS = 5 + CLASSES


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _tiny_yolox(path: Path, size: int = 64, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    nodes, inits, parts = [], [], []
    shape = numpy_helper.from_array(np.array([1, CHANNELS, -1], np.int64), "shape")
    inits.append(shape)
    for stride in (8, 16, 32):
        weight = rng.normal(0, 0.02, (CHANNELS, 3, stride, stride)).astype(np.float32)
        inits.append(numpy_helper.from_array(weight, f"w{stride}"))
        nodes += [
            helper.make_node(
                "Conv", ["images", f"w{stride}"], [f"c{stride}"], strides=[stride, stride]
            ),
            helper.make_node("Sigmoid", [f"c{stride}"], [f"s{stride}"]),
            helper.make_node("Reshape", [f"s{stride}", "shape"], [f"r{stride}"]),
        ]
        parts.append(f"r{stride}")
    nodes += [
        helper.make_node("Concat", parts, ["cat"], axis=2),
        helper.make_node("Transpose", ["cat"], ["output"], perm=[0, 2, 1]),
    ]
    rows = sum((size // s) ** 2 for s in (8, 16, 32))
    graph = helper.make_graph(
        nodes, "tiny_yolox",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, rows, CHANNELS])],
        initializer=inits,
    )  # fmt: skip
    return _save(graph, path)


def _identity(path: Path, in_shape: list[int], out_shape: list[int]) -> Path:
    """A graph whose declared shapes are ``in_shape`` → ``out_shape`` (a classifier, …)."""
    target = numpy_helper.from_array(np.array(out_shape, np.int64), "target")
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["images"], ["m"], keepdims=0),
            helper.make_node("Expand", ["m", "target"], ["output"]),
        ],
        "not_yolox",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, out_shape)],
        initializer=[target],
    )
    return _save(graph, path)


def _frames(n: int, seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    sizes = [(64, 64), (48, 80), (100, 30), (64, 64), (20, 20), (33, 77), (64, 128)]
    return [rng.integers(0, 256, (*sizes[i % len(sizes)], 3), dtype=np.uint8) for i in range(n)]


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    return _tiny_yolox(tmp_path / "tiny.onnx")


def _same(a, b) -> None:
    assert len(a) == len(b)
    np.testing.assert_allclose(a.xyxy, b.xyxy, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(a.confidence, b.confidence, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(a.class_id, b.class_id)


# ------------------------------------------------------------------------- behaviour


def test_tiny_model_detects_and_honours_the_contract(tiny: Path):
    det = OnnxDetector(tiny, confidence=0.2)
    assert isinstance(det, Detector)
    assert det.input_size == (64, 64)
    assert det.max_batch == 8
    assert det.providers == ["CPUExecutionProvider"]
    images = _frames(3)
    results = det.detect_batch(images)
    assert len(results) == 3
    assert sum(len(r) for r in results) > 0  # random weights: sigmoid scores ~0.25
    for image, found in zip(images, results, strict=True):
        h, w = image.shape[:2]
        assert (found.xyxy[:, [0, 2]] >= 0).all()
        assert (found.xyxy[:, [0, 2]] <= w).all()
        assert (found.xyxy[:, [1, 3]] >= 0).all()
        assert (found.xyxy[:, [1, 3]] <= h).all()
        assert (found.tracker_id == -1).all()
        assert (found.confidence >= 0.2).all()


@pytest.mark.parametrize("max_batch", [1, 3, 8])
def test_batch_equals_single_calls(tiny: Path, max_batch: int):
    det = OnnxDetector(tiny, confidence=0.2, max_batch=max_batch)
    images = _frames(7)
    batched = det.detect_batch(images)
    for image, got in zip(images, batched, strict=True):
        _same(got, det.detect(image))


def test_empty_batch(tiny: Path):
    assert OnnxDetector(tiny).detect_batch([]) == []


def test_input_size_override(tiny: Path):
    det = OnnxDetector(tiny, confidence=0.2, input_size=96)
    assert det.input_size == (96, 96)
    assert len(det.detect_batch(_frames(2))) == 2


@pytest.mark.parametrize("size", [100, 16, 0])
def test_input_size_must_be_a_multiple_of_32(tiny: Path, size: int):
    with pytest.raises(ConfigError, match="multiple of 32"):
        OnnxDetector(tiny, input_size=size)


def test_labels_filter_classes(tiny: Path):
    everything = OnnxDetector(tiny, confidence=0.2).detect_batch(_frames(3))
    only = OnnxDetector(tiny, confidence=0.2, labels=["person", "car"]).detect_batch(_frames(3))
    for all_found, kept in zip(everything, only, strict=True):
        assert set(kept.class_id.tolist()) <= {0, 2}
        _same(kept, all_found[np.isin(all_found.class_id, [0, 2])])


def test_unknown_label_is_a_config_error(tiny: Path):
    with pytest.raises(ConfigError, match="persn"):
        OnnxDetector(tiny, labels=["persn"])


@pytest.mark.parametrize("bad", [np.zeros((10, 10), np.uint8), np.zeros((10, 10, 3), np.float32)])
def test_bad_image_is_refused(tiny: Path, bad: np.ndarray):
    with pytest.raises(ValueError, match="uint8"):
        OnnxDetector(tiny).detect_batch([bad])


@pytest.mark.parametrize(
    ("available", "requested", "chosen"),
    [
        (["AzureExecutionProvider", "CPUExecutionProvider"], None, ["CPUExecutionProvider"]),
        (
            ["CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"],
            None,
            ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
        ),
        (
            ["OpenVINOExecutionProvider", "CPUExecutionProvider"],
            None,
            ["OpenVINOExecutionProvider", "CPUExecutionProvider"],
        ),
        (
            ["CUDAExecutionProvider", "CPUExecutionProvider"],
            ["CPUExecutionProvider"],
            ["CPUExecutionProvider"],
        ),
    ],
)
def test_choose_providers(available, requested, chosen):
    assert choose_providers(requested, available) == chosen


def test_unavailable_provider_is_refused(tiny: Path):
    with pytest.raises(ModelError, match=r"CUDAExecutionProvider.*available"):
        OnnxDetector(tiny, providers=["CUDAExecutionProvider"])


# ---------------------------------------------------------------------- bad model files


def test_missing_file(tmp_path: Path):
    with pytest.raises(ModelError, match=r"nope\.onnx does not exist.*vigil models pull"):
        OnnxDetector(tmp_path / "nope.onnx")


@pytest.mark.parametrize("content", [b"", b"\x00" * 10, "random"])
def test_corrupt_file(tmp_path: Path, content: bytes | str):
    path = tmp_path / "corrupt.onnx"
    if content == "random":
        content = np.random.default_rng(3).integers(0, 256, 5000, dtype=np.uint8).tobytes()
    path.write_bytes(content)
    with pytest.raises(ModelError, match=r"corrupt\.onnx"):
        OnnxDetector(path)


@pytest.mark.parametrize(
    ("in_shape", "out_shape"),
    [
        ([1, 3, 224, 224], [1, 1000]),  # an image classifier
        ([1, 3, 64, 64], [1, 84, 10]),  # rank 3 but not 5 + 80 columns
        ([1, 3, 64, 64], [1, 100, 85]),  # wrong number of grid rows for 64 x 64
        ([1, 64, 64], [1, 84, 85]),  # input is not an image batch
        ([1, 1, 64, 64], [1, 84, 85]),  # one channel
    ],
)
def test_wrong_model_is_refused(tmp_path: Path, in_shape: list[int], out_shape: list[int]):
    path = _identity(tmp_path / "wrong.onnx", in_shape, out_shape)
    with pytest.raises(ModelError, match=r"wrong\.onnx is not a YOLOX detector"):
        OnnxDetector(path)


def test_class_names_must_match_the_model(tiny: Path):
    with pytest.raises(ModelError, match="not a YOLOX detector"):
        OnnxDetector(tiny, class_names=["a", "b"])


def test_model_whose_output_lies_about_its_shape(tmp_path: Path):
    # Declares (1, 84, 85) but really outputs (1, 10, 85).
    target = numpy_helper.from_array(np.array([1, 84, 85], np.int64), "target")
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["images"], ["m"], keepdims=0),
            helper.make_node("Expand", ["m", "target"], ["e"]),
            helper.make_node("Slice", ["e", "st", "en", "ax"], ["output"]),
        ],
        "liar",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 64, 64])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 84, 85])],
        initializer=[
            target,
            numpy_helper.from_array(np.array([0], np.int64), "st"),
            numpy_helper.from_array(np.array([10], np.int64), "en"),
            numpy_helper.from_array(np.array([1], np.int64), "ax"),
        ],
    )
    path = _save(graph, tmp_path / "liar.onnx")
    det = OnnxDetector(path)
    assert det.max_batch == 1  # no YOLOX reshape to unfold: one image per run
    with pytest.raises(ModelError, match=r"liar\.onnx returned"):
        det.detect_batch(_frames(1))


# ---------------------------------------------------------------------- build_detector


def test_build_detector_from_a_path(tiny: Path):
    config = DetectConfig(model=str(tiny), confidence=0.25, nms_iou=0.5, labels=["car"])
    det = build_detector(config)
    assert isinstance(det, OnnxDetector)
    assert (det.confidence, det.nms_iou) == (0.25, 0.5)
    for found in det.detect_batch(_frames(3)):
        assert set(found.class_id.tolist()) <= {2}


def test_build_detector_empty_labels_means_all(tiny: Path):
    det = build_detector(DetectConfig(model=str(tiny), confidence=0.2, labels=[]))
    classes = {c for d in det.detect_batch(_frames(4)) for c in d.class_id.tolist()}
    only_cars = build_detector(DetectConfig(model=str(tiny), confidence=0.2, labels=["car"]))
    car_classes = {c for d in only_cars.detect_batch(_frames(4)) for c in d.class_id.tolist()}
    assert car_classes <= {2}
    assert classes - {2}  # the same frames give other classes once nothing is filtered


def test_build_detector_refuses_motion():
    with pytest.raises(ValueError, match=r"vigil\.detect\.motion"):
        build_detector(DetectConfig(model="motion"))


def test_build_detector_missing_registry_model(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("VIGIL_MODELS_DIR", str(tmp_path / "none"))
    with pytest.raises(ModelError, match="vigil models pull yolox-tiny"):
        build_detector(DetectConfig(model="yolox-tiny"), cache_dir=tmp_path)
