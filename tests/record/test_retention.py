"""Retention as a pure function: tables for each rule, properties for the invariants."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.small_disk import small_disk
from vigil.record.retention import (
    CameraRetention,
    RetentionJob,
    RetentionPolicy,
    SegmentFile,
    SegmentMeta,
    plan_retention,
    reserve_bytes,
)

NOW = 100_000.0


def seg(
    i: int, camera: str = "a", *, start: float, size: int = 10, locked: bool = False
) -> SegmentMeta:
    return SegmentMeta(i, camera, start, start + 10, size, locked)


@pytest.mark.parametrize(
    ("segments", "policy", "delete", "warns"),
    [
        pytest.param([seg(1, start=0), seg(2, start=NOW - 50)],
                     RetentionPolicy(CameraRetention(max_age=100)), [1], 0, id="age"),
        pytest.param([seg(1, start=0, locked=True)],
                     RetentionPolicy(CameraRetention(max_age=100)), [], 0, id="age-locked-kept"),
        pytest.param([seg(i, start=i * 10.0) for i in range(5)],
                     RetentionPolicy(CameraRetention(max_bytes=30)), [0, 1], 0, id="camera-quota"),
        pytest.param([seg(0, start=0, locked=True), *(seg(i, start=i * 10.0) for i in (1, 2, 3))],
                     RetentionPolicy(CameraRetention(max_bytes=20)), [1, 2], 0,
                     id="quota-skips-locked"),
        pytest.param([seg(0, start=0, locked=True, size=50), seg(1, start=10)],
                     RetentionPolicy(CameraRetention(max_bytes=20)), [1], 1,
                     id="locked-over-quota"),
        pytest.param([seg(1, "a", start=0), seg(2, "b", start=5), seg(3, "a", start=20)],
                     RetentionPolicy(total_max_bytes=15), [1, 2], 0, id="total-oldest-any-camera"),
        pytest.param([seg(1, "a", start=0), seg(2, "b", start=5)],
                     RetentionPolicy(CameraRetention(), {"b": CameraRetention(max_bytes=0)}),
                     [2], 0, id="per-camera-override"),
        pytest.param([seg(1, start=0)], RetentionPolicy(min_free_bytes=1000), [1], 1,
                     id="low-disk-deletes-and-warns"),
        pytest.param([seg(1, start=0), seg(2, start=10), seg(3, start=20)],
                     RetentionPolicy(min_free_bytes=25), [1, 2], 0, id="low-disk-oldest-first"),
        pytest.param([seg(1, start=0, locked=True), seg(2, start=10), seg(3, start=20)],
                     RetentionPolicy(min_free_bytes=25), [2, 3], 0, id="low-disk-skips-locked"),
        pytest.param([seg(1, start=0, size=30), seg(2, start=10)],
                     RetentionPolicy(CameraRetention(max_bytes=20), min_free_bytes=40), [1], 0,
                     id="low-disk-counts-what-quotas-free"),
    ],
)  # fmt: skip
def test_plan_table(
    segments: list[SegmentMeta], policy: RetentionPolicy, delete: list[Hashable], warns: int
) -> None:
    plan = plan_retention(segments, NOW, policy, free_bytes=10)
    assert plan.delete == delete
    assert len(plan.warnings) == warns


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[SegmentMeta], RetentionPolicy]:
    segments = []
    for camera in ("a", "b", "c")[: draw(st.integers(1, 3))]:
        t = draw(st.floats(0, 1000))
        for _ in range(draw(st.integers(0, 12))):
            t += draw(st.floats(10, 500))
            segments.append(
                SegmentMeta(
                    len(segments), camera, t, t + 10, draw(st.integers(1, 100)), draw(st.booleans())
                )
            )
    limit = st.none() | st.integers(0, 600)
    policy = RetentionPolicy(
        CameraRetention(draw(st.none() | st.floats(0, 5000)), draw(limit)),
        {"b": CameraRetention(draw(st.none() | st.floats(0, 5000)), draw(limit))},
        total_max_bytes=draw(limit),
    )  # fmt: skip
    return segments, policy


@settings(max_examples=300, deadline=None)
@given(scenarios(), st.floats(0, 10_000))
def test_plan_properties(scenario: tuple[list[SegmentMeta], RetentionPolicy], now: float) -> None:
    segments, policy = scenario
    plan = plan_retention(segments, now, policy)
    gone = set(plan.delete)
    kept = [s for s in segments if s.id not in gone]
    assert len(gone) == len(plan.delete)
    assert not any(s.locked for s in segments if s.id in gone), "a locked segment was deleted"
    for camera in {s.camera for s in segments}:
        own = sorted((s for s in segments if s.camera == camera), key=lambda s: s.start)
        unlocked = [s.id for s in own if not s.locked]
        deleted = [i for i in unlocked if i in gone]
        assert deleted == unlocked[: len(deleted)], "deletions must be the oldest unlocked"
        quota = policy.for_camera(camera).max_bytes
        left = [s for s in kept if s.camera == camera]
        if quota is not None and any(not s.locked for s in left):
            assert sum(s.size for s in left) <= quota
    if policy.total_max_bytes is not None and any(not s.locked for s in kept):
        assert sum(s.size for s in kept) <= policy.total_max_bytes


class _Catalog:
    """An in-memory catalog: refuses to forget a segment locked after the plan was made."""

    def __init__(self, files: list[SegmentFile], *, lock_later: Hashable | None = None) -> None:
        self.files = {f.meta.id: f for f in files}
        self.lock_later = lock_later
        self.gone: list[Hashable] = []

    def segments(self) -> list[SegmentFile]:
        return list(self.files.values())

    def remove(self, ids: Sequence[Hashable]) -> list[SegmentFile]:
        removed = [self.files.pop(i) for i in ids if i != self.lock_later]
        self.gone.extend(f.meta.id for f in removed)
        return removed


def _layout_files(root: Path, count: int, size: int = 10) -> list[SegmentFile]:
    files = []
    for i in range(count):
        path = root / "a" / "2023-11-14" / f"{i:02d}" / "00.00.mp4"
        path.parent.mkdir(parents=True)
        path.write_bytes(b"x" * size)
        files.append(SegmentFile(seg(i, start=i * 10.0, size=size), path))
    return files


def test_job_deletes_files_and_tolerates_missing(tmp_path: Path) -> None:
    root = tmp_path / "recordings"
    files = _layout_files(root, 3)
    files[0] = SegmentFile(seg(0, start=0.0, locked=True), files[0].path)
    files[1].path.unlink()  # already gone: not an error
    catalog = _Catalog(files)
    job = RetentionJob(catalog, RetentionPolicy(CameraRetention(max_bytes=0)), root,
                       free_bytes=lambda _: 10**12)  # fmt: skip
    result = job.run(NOW)
    assert result.deleted == [2]
    assert result.missing == [1]
    assert catalog.gone == [1, 2], "the catalog forgets them before the files go"
    assert files[0].path.exists(), "locked evidence stays"
    assert not (root / "a" / "2023-11-14" / "02").exists(), "empty folders are pruned"
    assert not (root / "a" / "2023-11-14" / "01").exists(), "also after a missing file"
    assert (root / "a" / "2023-11-14").is_dir(), "a folder still in use stays"
    assert result.warnings  # the locked segment alone is over the quota of 0


def test_job_keeps_a_file_the_catalog_locked_meanwhile(tmp_path: Path) -> None:
    root = tmp_path / "recordings"
    files = _layout_files(root, 2)
    catalog = _Catalog(files, lock_later=0)
    job = RetentionJob(catalog, RetentionPolicy(CameraRetention(max_bytes=0)), root,
                       free_bytes=lambda _: 10**12)  # fmt: skip
    result = job.run(NOW)
    assert result.kept == [0]
    assert result.deleted == [1]
    assert files[0].path.exists(), "locked between plan and deletion: the file stays"


def test_reserve_is_an_hour_of_recording_at_the_recent_rate() -> None:
    old = [seg(i, start=NOW - 86_400 + i * 10, size=200_000) for i in range(3)]
    # The last minute: 6 segments of 1000 bytes = 100 bytes/s, so an hour is 360 000 bytes.
    recent = [seg(10 + i, start=NOW - 60 + i * 10, size=1000) for i in range(6)]
    policy = RetentionPolicy(reserve_seconds=3600)
    assert reserve_bytes([*old, *recent], NOW, policy) == 360_000
    plan = plan_retention([*old, *recent], NOW, policy, free_bytes=100_000)
    assert plan.delete == [0, 1], "the oldest go until an hour of recording fits"
    assert not plan.warnings
    assert plan_retention([*old, *recent], NOW, policy, free_bytes=400_000).delete == []
    assert plan_retention([*old, *recent], NOW, policy).delete == [], "free space unknown"


def test_emergency_retention_frees_a_real_small_disk(tmp_path: Path) -> None:
    """A real 4 MiB filesystem nearly full of segments and other files: one run brings the
    free space back over the reserve by deleting the oldest segments, and prunes their
    folders; without the free-space rule nothing would go (no age or size limit is set)."""
    with small_disk(tmp_path / "disk", 4 * 1024 * 1024) as disk:
        root = disk.path / "recordings"
        files = _layout_files(root, 12, size=200_000)
        disk.fill()
        assert disk.free < 100_000
        catalog = _Catalog(files)
        reserve = 500_000
        job = RetentionJob(catalog, RetentionPolicy(min_free_bytes=reserve), root)
        result = job.run(NOW)
        assert disk.free >= reserve
        assert result.deleted == [0, 1, 2], "just enough of the oldest"
        assert not result.warnings
        for gone in files[:3]:
            assert not gone.path.parent.exists(), "their empty hour folders are pruned"
        assert all(f.path.exists() for f in files[3:])
