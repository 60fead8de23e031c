"""Retention as a pure function: tables for each rule, properties for the invariants."""

from __future__ import annotations

from collections.abc import Hashable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.record.retention import (
    CameraRetention,
    RetentionJob,
    RetentionPolicy,
    SegmentFile,
    SegmentMeta,
    plan_retention,
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
        pytest.param([seg(1, start=0)], RetentionPolicy(min_free_bytes=1000), [], 1,
                     id="low-disk-warning"),
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
    def __init__(self, files: list[SegmentFile]) -> None:
        self.files = files
        self.gone: list[Hashable] = []

    def segments(self) -> list[SegmentFile]:
        return self.files

    def removed(self, ids: list[Hashable]) -> None:
        self.gone.extend(ids)


def test_job_deletes_files_and_tolerates_missing(tmp_path: Path) -> None:
    root = tmp_path / "recordings"
    files = []
    for i in range(3):
        path = root / "a" / "2023-11-14" / f"{i:02d}" / "00.00.mp4"
        path.parent.mkdir(parents=True)
        path.write_bytes(b"x" * 10)
        files.append(SegmentFile(seg(i, start=i * 10.0, locked=i == 0), path))
    files[1].path.unlink()  # already gone: not an error
    catalog = _Catalog(files)
    job = RetentionJob(catalog, RetentionPolicy(CameraRetention(max_bytes=0)), root,
                       free_bytes=lambda _: 10**12)  # fmt: skip
    result = job.run(NOW)
    assert result.deleted == [2]
    assert result.missing == [1]
    assert catalog.gone == [2, 1]
    assert files[0].path.exists(), "locked evidence stays"
    assert not (root / "a" / "2023-11-14" / "02").exists(), "empty folders are pruned"
    assert result.warnings  # the locked segment alone is over the quota of 0
