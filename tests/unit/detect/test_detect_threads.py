"""The automatic ONNX Runtime thread count: `vigil analyze` leaves a core to its decode thread,
`vigil serve` keeps the shared model's 2, an explicit `detect.threads` always wins."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vigil.commands.analyze import build
from vigil.config import parse_config
from vigil.config.models import DetectConfig
from vigil.detect import OnnxDetector, build_detector
from vigil.detect.threads import SHARED_MODEL_THREADS, available_cores, detector_threads


def test_an_explicit_setting_always_wins() -> None:
    assert detector_threads(3, decode_thread=True, cores=8) == 3
    assert detector_threads(3, decode_thread=False, cores=1) == 3


@pytest.mark.parametrize("cores", [1, 2, 16])
def test_a_shared_model_keeps_its_capacity_default(cores: int) -> None:
    assert detector_threads(None, cores=cores) == SHARED_MODEL_THREADS == 2


@pytest.mark.parametrize(("cores", "threads"), [(1, 1), (2, 1), (3, 2), (4, 3), (16, 15)])
def test_analyze_leaves_one_core_to_the_decode_thread(cores: int, threads: int) -> None:
    assert detector_threads(None, decode_thread=True, cores=cores) == threads


def test_cores_default_to_the_affinity_mask() -> None:
    assert detector_threads(None, decode_thread=True) == max(1, available_cores() - 1)


@pytest.mark.skipif(shutil.which("taskset") is None, reason="needs util-linux taskset")
def test_available_cores_counts_the_cores_the_process_may_use() -> None:
    code = "from vigil.detect.threads import available_cores; print(available_cores())"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run(
        ["taskset", "-c", "0", sys.executable, "-c", code],
        capture_output=True, text=True, check=True, env=env, timeout=120,
    )  # fmt: skip
    assert out.stdout.strip() == "1"


def _session_threads(detector: object) -> int:
    assert isinstance(detector, OnnxDetector)
    options = detector._session.get_session_options()
    assert options.intra_op_num_threads == detector.threads
    return detector.threads


def test_analyze_and_serve_build_their_detectors_with_their_own_counts(
    yolox_nano_path: Path,
) -> None:
    cam = parse_config(f"detect: {{model: {yolox_nano_path}}}").for_source("clip.mp4")
    assert cam.detect.threads is None
    expected = max(1, available_cores() - 1)
    assert _session_threads(build(cam, decode_thread=True)) == expected
    assert _session_threads(build(cam, decode_thread=False)) == 2
    # vigil serve (and the cluster's detector actors) go through build_detector directly.
    assert _session_threads(build_detector(DetectConfig(model=str(yolox_nano_path)))) == 2
    pinned = parse_config(f"detect: {{model: {yolox_nano_path}, threads: 3}}")
    assert _session_threads(build(pinned.for_source("clip.mp4"), decode_thread=True)) == 3
