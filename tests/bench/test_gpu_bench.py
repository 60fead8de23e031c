"""``bench/gpu.py`` end to end with tiny numbers: on a machine without a GPU it runs the CPU
baseline, says so and exits 0; ``--require-gpu`` makes the missing GPU an exit code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_file
from vigil.detect.providers import CUDA
from vigil.paths import shared_data_dir, shared_models_dir

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--quick", "--size", "320x180", "--clip-seconds", "2", "--seconds", "0.3",
        "--procs", "1", "--streams-per-proc", "2", "--batches", "1,2",
        "--models", "yolox-nano"]  # fmt: skip


def _no_gpu() -> None:
    import onnxruntime as ort

    from vigil.ingest.hwaccel import device_problem

    if CUDA in ort.get_available_providers() or device_problem("cuda") is None:
        pytest.skip("this machine has a GPU: the no-GPU behaviour cannot be shown here")


def run_bench(args: list[str]) -> subprocess.CompletedProcess[str]:
    require_file(shared_models_dir() / "yolox_nano.onnx")
    require_file(shared_data_dir() / "clips" / "one-by-one-person-detection.mp4")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu.py"), *args],
        capture_output=True, text=True, timeout=600, env=env, check=False, cwd=ROOT,
    )  # fmt: skip


def test_cpu_baseline_runs_and_says_no_gpu(tmp_path: Path):
    _no_gpu()
    out = tmp_path / "gpu.json"
    done = run_bench([*TINY, "--work", str(tmp_path), "--json", str(out)])
    assert done.returncode == 0, done.stderr
    assert "NO GPU FOUND" in done.stdout
    record = json.loads(out.read_text())
    assert record["machine"]["gpu"] is False
    (decode,) = record["decode"]
    assert decode["mode"] == "software"
    assert decode["fps"] > 0
    detector = [r for r in record["detector"] if "error" not in r]
    assert [(r["config"], r["batch"]) for r in detector] == [("cpu fp32", 1)]
    assert detector[0]["images_s"] > 0
    (pipeline,) = record["pipeline"]
    assert pipeline["setup"].startswith("cpu")
    assert pipeline["fps"] > 0
    assert pipeline["images_s"] > 0  # the detector really ran inside the pipeline
    assert "320x180p30 streams" in done.stdout


def test_require_gpu_fails_without_one(tmp_path: Path):
    _no_gpu()
    done = run_bench([*TINY, "--require-gpu", "--work", str(tmp_path),
                      "--json", str(tmp_path / "gpu.json")])  # fmt: skip
    assert done.returncode == 2
    assert "NO GPU FOUND" in done.stdout
    assert not (tmp_path / "gpu.json").exists()
