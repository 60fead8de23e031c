"""``bench/livevideo.py`` end to end with tiny numbers. The bench reads the live encoders'
threads and carried detectors to measure their CPU, so a change inside ``vigil.api.live``
can break it without any other test noticing (it did: ``_faces`` became ``_carried``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import require_file
from vigil.paths import shared_data_dir, shared_models_dir

ROOT = Path(__file__).resolve().parents[2]


def run_bench(args: list[str], out: Path) -> list[dict[str, Any]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "livevideo.py"), *args, "--json", str(out)],
        capture_output=True, text=True, timeout=600, env=env, check=False, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    rows: list[dict[str, Any]] = json.loads(out.read_text())
    assert "| cameras |" in done.stdout or "| mode |" in done.stdout, done.stdout
    return rows


def test_redacted_live_streams_are_measured(tmp_path: Path) -> None:
    require_file(shared_data_dir() / "clips" / "face-demographics-walking.gif")
    require_file(shared_models_dir() / "yunet_face_640.onnx")
    (row,) = run_bench(["--cameras", "1", "--seconds", "6", "--width", "320"],
                       tmp_path / "live.json")  # fmt: skip
    assert row["mode"] == "redacted"
    assert row["fps_mean"] > 1, row  # fragments arrived, at some rate, on a busy machine too
    # The latency is read from stamps on the frames: most must be read, or it is a few
    # frames' (the strip hidden as a change between detections made it 3 %).
    assert row["stamps_read"] >= 0.5, row
    assert 0 < row["lat_p50_ms"] <= row["lat_p95_ms"] < 5000, row
    assert row["face_hz_per_cam"] > 0, "the face detector never ran on the live stream"
    assert row["cpu_stream_pct"] > 0, "the encoder's thread was not found"
    assert row["first_ms"] > 0, row


def test_unredacted_copy_and_encode_are_measured(tmp_path: Path) -> None:
    require_file(shared_data_dir() / "clips" / "one-by-one-person-detection.mp4")
    rows = run_bench(["--unredacted", "copy", "encode", "--cameras", "1", "--seconds", "6"],
                     tmp_path / "unredacted.json")  # fmt: skip
    assert [r["mode"] for r in rows] == ["copy", "encode"]
    for row in rows:
        assert row["fps_mean"] > 1, row
        assert row["cpu_process_pct"] > 0, row
