"""``bench/city.py`` runs end to end with tiny numbers, so that it cannot rot: a durable
PostgreSQL of its own (the helper of ``conftest``), the preload, both write modes with the
API queries, and a rerun that reuses the cached preload."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.store.conftest import find_bindir

REPO = Path(__file__).resolve().parents[2]


def _bench(cache: Path, out: Path, *extra: str) -> dict:  # type: ignore[type-arg]
    args = [sys.executable, str(REPO / "bench" / "city.py"), "--cameras", "30", "--events",
            "3000", "--days", "2", "--seconds", "3", "--nodes", "1", "--query-rate", "4",
            "--cache", str(cache), "--out", str(out), *extra]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(args, capture_output=True, text=True, timeout=600, env=env,
                          check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(out.read_text())  # type: ignore[no-any-return]


def test_the_city_bench_runs_and_reuses_its_preload(tmp_path: Path) -> None:
    if find_bindir() is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    # The server runs as the postgres user (as root), which cannot enter pytest's folders.
    cache = Path(tempfile.mkdtemp(prefix="vigil-city-test-"))
    try:
        _check(cache, tmp_path)
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def _check(cache: Path, tmp_path: Path) -> None:
    first = _bench(cache, tmp_path / "first.json")
    assert first["events_stored"] == 3000
    assert [(r["mode"], r["cameras"]) for r in first["runs"]] == [
        ("per-event", 30), ("batched", 30)]  # fmt: skip
    for run in first["runs"]:
        assert run["errors"] == []
        assert run["writes"] > 0
        assert run["queries"] > 0
    assert all(v > 0 for v in first["bytes_per_camera_day"].values())
    assert set(first["explain"]) == {"events_day", "counts_week", "timeline_day"}
    batched = first["runs"][1]
    assert batched["sim"] == "before"
    assert batched["sim_cores"] == 0.0
    # The server's own account of the run: the statements, and the rows each table got.
    assert any(s["query"].startswith('INSERT INTO "events"') for s in batched["statements"])
    assert batched["tables"]["events"]["inserted"] > 0
    # The rerun skips the preload and drops what the first run's cameras wrote.
    second = _bench(cache, tmp_path / "second.json", "--modes", "batched", "--sim", "live")
    assert second["events_stored"] == 3000
    assert second["runs"][0]["sim"] == "live"
    assert second["runs"][0]["writes"] > 0
    assert second["preload"] == first["preload"]


def test_the_write_cost_measure_runs() -> None:
    if find_bindir() is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    args = [sys.executable, str(REPO / "bench" / "city.py"), "--write-cost", "2000"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(args, capture_output=True, text=True, timeout=600, env=env,
                          check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    out = json.loads(done.stdout[done.stdout.index("{") :])
    assert out["cameras"] == 2000
    for name in ("publish_many (events)", "count (counts)", "add_many (segments)"):
        assert out[name]["rows_per_tick"] > 0, name
        assert out[name]["client_cpu_ms_per_1k"] > 0, name
