"""The quarantine (files that no longer play): aged by their camera's ``max_age``, deleted
first below the free-space reserve, before any segment that plays; real files, the real
``RetentionJob``, a real small disk for the emergency."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.record.test_retention import _Catalog, _layout_files
from tests.small_disk import small_disk
from vigil.record.layout import segment_path
from vigil.record.quarantine import (
    QUARANTINE,
    QuarantinedFile,
    plan_quarantine,
    quarantine_usage,
    scan_quarantine,
)
from vigil.record.retention import CameraRetention, RetentionJob, RetentionPolicy

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC).timestamp()
HOUR = 3600.0


def _put(data: Path, camera: str, start: float, size: int) -> Path:
    """A quarantined file as ``vigil.record.unindexed`` leaves it (the segment's layout)."""
    path = segment_path(data / QUARANTINE, camera, start)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x00" * size)
    return path


def q(name: str, camera: str, start: float, size: int = 10) -> QuarantinedFile:
    return QuarantinedFile(Path(name), camera, start, size)


def _age(camera: str) -> float | None:
    return {"a": HOUR, "b": None}.get(camera, 2 * HOUR)


@pytest.mark.parametrize(
    ("files", "free", "reserve", "aged", "early"),
    [
        pytest.param([q("1", "a", NOW - 2 * HOUR), q("2", "a", NOW - 60)], None, 0, ["1"], [],
                     id="past-max-age"),
        pytest.param([q("1", "b", NOW - 1e6)], None, 0, [], [], id="no-max-age-kept"),
        pytest.param([q("1", "c", NOW - 1.5 * HOUR)], None, 0, [], [], id="default-max-age"),
        pytest.param([q("1", "a", NOW - 60, 5), q("2", "b", NOW - 120, 5),
                      q("3", "b", NOW - 30, 5)], 10, 18, [], ["2", "1"],
                     id="below-reserve-oldest-first"),
        pytest.param([q("1", "a", NOW - 2 * HOUR, 50), q("2", "a", NOW - 60)], 0, 40, ["1"],
                     [], id="what-ages-counts-for-the-reserve"),
        pytest.param([q("1", "a", NOW - 60)], 100, 40, [], [], id="enough-free"),
    ],
)  # fmt: skip
def test_plan_table(
    files: list[QuarantinedFile], free: int | None, reserve: int, aged: list[str],
    early: list[str],
) -> None:  # fmt: skip
    plan = plan_quarantine(files, NOW, _age, free_bytes=free, reserve=reserve)
    assert [str(f.path) for f in plan.aged] == aged
    assert [str(f.path) for f in plan.early] == early


def test_scan_reads_camera_and_time_from_the_layout(tmp_path: Path) -> None:
    old = _put(tmp_path, "cam1", NOW - 2 * HOUR, 100)
    _put(tmp_path, "cam1", NOW - 60, 50)
    _put(tmp_path, "cam2", NOW - 30, 7)
    stray = tmp_path / QUARANTINE / "notes.bin"  # not a segment's name: its mtime counts
    stray.write_bytes(b"x" * 3)
    os.utime(stray, (NOW - 10, NOW - 10))
    found = scan_quarantine(tmp_path / QUARANTINE)
    assert [(f.camera, f.start, f.size) for f in found] == [
        ("cam1", NOW - 2 * HOUR, 100), ("cam1", NOW - 60, 50), ("cam2", NOW - 30, 7),
        ("", NOW - 10, 3),
    ]  # fmt: skip
    assert found[0].path == old
    assert quarantine_usage(tmp_path / QUARANTINE) == {"cam1": (2, 150), "cam2": (1, 7),
                                                       "": (1, 3)}  # fmt: skip
    assert scan_quarantine(tmp_path / "nothing") == []


def test_retention_deletes_quarantined_files_past_max_age_and_logs_each(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "data"
    old = _put(data, "cam1", NOW - 2 * HOUR, 100)
    young = _put(data, "cam1", NOW - 60, 100)
    kept = _put(data, "cam2", NOW - 2 * HOUR, 100)  # cam2 has no max_age
    policy = RetentionPolicy(CameraRetention(max_age=HOUR), {"cam2": CameraRetention()})
    job = RetentionJob(_Catalog([]), policy, data / "recordings", free_bytes=lambda _: 10**12,
                       quarantine=data / QUARANTINE)  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="vigil.record.quarantine"):
        result = job.run(NOW)
    assert result.quarantined == [old]
    assert not old.exists()
    assert not old.parent.exists(), "its empty hour folder is pruned"
    assert young.exists()
    assert kept.exists()
    assert str(old) in caplog.text
    assert "record.max_age" in caplog.text
    without = RetentionJob(_Catalog([]), policy, data / "recordings",
                           free_bytes=lambda _: 10**12)  # fmt: skip
    assert without.run(NOW + 1e6).quarantined == [], "only a job given the folder touches it"


def test_below_the_reserve_quarantined_files_go_before_any_recording(tmp_path: Path) -> None:
    """A real 4 MiB disk nearly full of segments and quarantined files: the emergency frees
    the quarantine first, and only as much of the recordings as is still missing."""
    with small_disk(tmp_path / "disk", 4 * 1024 * 1024) as disk:
        data = disk.path
        files = _layout_files(data / "recordings", 10, size=200_000)
        broken = [_put(data, "a", NOW - 10 * HOUR + i, 200_000) for i in range(2)]
        disk.fill()
        assert disk.free < 100_000
        reserve = 500_000  # the two quarantined files free ~400 kB: one segment more
        job = RetentionJob(_Catalog(files), RetentionPolicy(min_free_bytes=reserve),
                           data / "recordings", quarantine=data / QUARANTINE)  # fmt: skip
        result = job.run(NOW)
        assert result.quarantined == broken, "both, although newer than every segment"
        assert result.deleted == [0], "then just enough of the oldest recordings"
        assert disk.free >= reserve
        assert all(f.path.exists() for f in files[1:])
