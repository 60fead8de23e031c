"""Real GPU runs: the detector on CUDA and TensorRT (FP32, FP16, batches up to 64) against
the CPU's detections, and NVDEC decoding against software decoding (see conftest.py for
when they skip)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import require_file
from vigil.config.models import DetectConfig
from vigil.detect import OnnxDetector, build_detector
from vigil.detect.providers import CPU, CUDA, TENSORRT, GpuOptions
from vigil.ingest import AvSource
from vigil.paths import shared_data_dir
from vigil.types import Detections

CLIP = "one-by-one-person-detection.mp4"
PEOPLE = (100, 300, 400, 500, 600)  # frames with people in view


def clip() -> Path:
    return require_file(shared_data_dir() / "clips" / CLIP)


def frames(indices: tuple[int, ...] = PEOPLE) -> list[np.ndarray]:
    out = []
    source = AvSource(str(clip()))
    for frame in source.frames():
        if frame.seq in indices:
            out.append(frame.bgr())
        if frame.seq >= max(indices):
            source.close()
    return out


def close_to(cpu: list[Detections], gpu: list[Detections], box_px: float, score: float) -> None:
    found = 0
    for a, b in zip(cpu, gpu, strict=True):
        assert abs(len(a) - len(b)) <= 1
        found += len(a)
        if len(a) == len(b) and len(a):
            order_a, order_b = np.argsort(a.xyxy[:, 0]), np.argsort(b.xyxy[:, 0])
            np.testing.assert_allclose(a.xyxy[order_a], b.xyxy[order_b], atol=box_px)
            np.testing.assert_allclose(a.confidence[order_a], b.confidence[order_b], atol=score)
    assert found > 0


@pytest.mark.usefixtures("cuda")
@pytest.mark.parametrize("fp16", [False, True])
def test_cuda_matches_the_cpu(nano: Path, fp16: bool):
    images = frames()
    cpu = OnnxDetector(nano, labels=["person"], device="cpu").detect_batch(images)
    gpu = OnnxDetector(nano, labels=["person"], device="cuda", gpu=GpuOptions(fp16=fp16))
    assert gpu.providers[0] == CUDA
    close_to(cpu, gpu.detect_batch(images), box_px=4.0 if fp16 else 0.5,
             score=0.05 if fp16 else 0.005)  # fmt: skip


@pytest.mark.usefixtures("cuda")
def test_cuda_batches_up_to_64_equal_single_calls(nano: Path):
    images = frames()
    detector = OnnxDetector(nano, labels=["person"], device="cuda", max_batch=64)
    singles = [detector.detect(image) for image in images]
    for size in (2, 16, 64):
        batch = [images[i % len(images)] for i in range(size)]
        results = detector.detect_batch(batch)
        assert len(results) == size
        close_to([singles[i % len(images)] for i in range(size)], results, 0.5, 0.005)


@pytest.mark.usefixtures("tensorrt")
def test_tensorrt_fp16_builds_and_reuses_an_engine(nano: Path, tmp_path: Path):
    images = frames()
    cpu = OnnxDetector(nano, labels=["person"], device="cpu").detect_batch(images)
    options = GpuOptions(fp16=True, engine_cache=tmp_path)
    first = OnnxDetector(nano, labels=["person"], device="tensorrt", max_batch=8, gpu=options)
    assert first.providers[0] == TENSORRT
    engines = sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".engine")
    assert engines, f"no engine in {list(tmp_path.iterdir())}"
    close_to(cpu, first.detect_batch(images), box_px=4.0, score=0.05)
    again = OnnxDetector(nano, labels=["person"], device="tensorrt", max_batch=8, gpu=options)
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".engine") == engines
    close_to(cpu, again.detect_batch(images), box_px=4.0, score=0.05)


@pytest.mark.usefixtures("cuda")
def test_build_detector_auto_runs_on_the_gpu(nano: Path, tmp_path: Path):
    detector = build_detector(DetectConfig(model=str(nano), engine_cache=tmp_path))
    assert isinstance(detector, OnnxDetector)
    assert detector.providers[0] in (TENSORRT, CUDA)
    assert detector.providers[-1] == CPU
    assert detector.max_batch == 64


@pytest.mark.usefixtures("nvdec")
def test_nvdec_decodes_what_software_decodes():
    software = AvSource(str(clip()))
    hardware = AvSource(str(clip()), options={"hwaccel": "cuda"})
    plain = [f.luma for f in software.frames()]
    accelerated = [f.luma for f in hardware.frames()]
    assert hardware.decoder == "cuda"
    assert len(accelerated) == len(plain)
    for a, b in zip(plain[::50], accelerated[::50], strict=True):
        assert a.shape == b.shape
        assert np.abs(a.astype(np.int16) - b.astype(np.int16)).mean() < 1.0
    # BGR for the detector comes from the downloaded frame as for software frames.
    source = AvSource(str(clip()), options={"hwaccel": "cuda"})
    frame = next(iter(source.frames()))
    assert frame.bgr((416, 234)).shape == (234, 416, 3)
    source.close()


@pytest.mark.usefixtures("nvdec")
def test_pynvvideocodec_decodes_every_frame():
    nvc = pytest.importorskip("PyNvVideoCodec", reason="PyNvVideoCodec (the gpu extra)")
    expected = sum(1 for _ in AvSource(str(clip())).frames())
    demuxer = nvc.CreateDemuxer(filename=str(clip()))
    decoder = nvc.CreateDecoder(gpuid=0, codec=demuxer.GetNvCodecId(), cudacontext=0,
                                cudastream=0, usedevicememory=True)  # fmt: skip
    decoded = sum(len(decoder.Decode(packet)) for packet in demuxer)
    # The demuxer's last (empty) packet flushes the decoder; allow for a decoder that keeps
    # its few reorder frames back anyway (the clip has no B-frames, so it should keep none).
    assert expected - 4 <= decoded <= expected
