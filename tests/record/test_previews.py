"""Preview thumbnails: layout, buffer, writing beside the segment, the time index, retention."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.small_disk import small_disk
from vigil.errors import StorageError
from vigil.record.previews import (
    PreviewBuffer,
    PreviewSet,
    delete_previews,
    nearest_preview,
    parse_offsets,
    preview_dir,
    preview_file,
    save_previews,
)
from vigil.record.retention import (
    CameraRetention,
    RetentionJob,
    RetentionPolicy,
    SegmentFile,
    SegmentMeta,
)

T0 = 1_700_000_000.0
SEG = "recordings/cam/2023-11-14/22/13.20.mp4"


@dataclass
class Row:
    path: str
    start: float
    previews: str | None
    node: str | None = None


def test_the_preview_folder_is_the_segment_path_under_previews() -> None:
    assert preview_dir(SEG) == "previews/cam/2023-11-14/22/13.20"
    assert preview_dir("recordings/cam/2023-11-14/22/13.20-1.mp4").endswith("/13.20-1")
    assert preview_file(SEG, 2000) == "previews/cam/2023-11-14/22/13.20/2000.jpg"
    for bad in ("snapshots/cam/a.jpg", "recordings/cam/x.mkv", "a.mp4"):
        with pytest.raises(ValueError, match="not a segment path"):
            preview_dir(bad)


def test_offsets_column_round_trips_and_ignores_garbage() -> None:
    assert PreviewSet((0, 2000, 4000), 30).column() == "0 2000 4000"
    assert PreviewSet().column() is None
    assert parse_offsets("0 2000 4000") == [0, 2000, 4000]
    assert parse_offsets(None) == []
    assert parse_offsets("x -5 7") == [7]


def test_the_buffer_hands_out_a_segment_span_and_forgets_what_is_before_it() -> None:
    buffer = PreviewBuffer(keep_s=30.0)
    for k in range(10):
        buffer.add(T0 + 2 * k, bytes([k]))
    assert [t - T0 for t, _ in buffer.take(T0 + 4, T0 + 10)] == [4, 6, 8]
    assert len(buffer) == 5, "what is before the segment's end can belong to no later one"
    assert [t - T0 for t, _ in buffer.take(T0 + 10, T0 + 100)] == [10, 12, 14, 16, 18]
    buffer.add(T0 + 100, b"new")
    buffer.add(T0 + 140, b"newer")
    assert len(buffer) == 1, "older than keep_s (nothing recorded them) is dropped"


def test_saving_writes_jpegs_beside_the_segment_once(tmp_path: Path) -> None:
    items = [(T0 + 0.004, b"a" * 10), (T0 + 2.0, b"b" * 20), (T0 + 4.5, b"c" * 30)]
    got = save_previews(tmp_path, SEG, T0, items)
    assert got == PreviewSet((4, 2000, 4500), 60)
    folder = tmp_path / preview_dir(SEG)
    assert sorted(p.name for p in folder.iterdir()) == ["2000.jpg", "4.jpg", "4500.jpg"]
    # Indexing retried (the database was down): nothing new, the same set again.
    assert save_previews(tmp_path, SEG, T0, []) == got


def test_a_preview_that_cannot_be_written_leaves_none(tmp_path: Path) -> None:
    (tmp_path / "previews").write_bytes(b"a file where the folder should be")
    assert save_previews(tmp_path, SEG, T0, [(T0, b"x")]) == PreviewSet()


def test_a_full_disk_drops_the_previews_not_the_segment(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk", 1024 * 1024) as disk:
        half = [(T0 + k, b"x" * 200_000) for k in range(3)]
        assert save_previews(disk.path, SEG, T0, half[:1]).offsets == (0,)
        disk.fill()
        assert save_previews(disk.path, SEG, T0, half[1:]) == PreviewSet()
        assert not (disk.path / preview_dir(SEG)).exists(), "no partial set is left"
        assert not any(p.name.endswith(".tmp") for p in disk.path.rglob("*"))


def test_nearest_preview_maps_a_time_to_a_file() -> None:
    rows = [
        Row(SEG, T0, "0 2000 4000 6000 8000"),
        Row("recordings/cam/2023-11-14/22/13.30.mp4", T0 + 10, "500 2500", "node-b"),
    ]
    found = nearest_preview(rows, T0 + 4.9)
    assert found is not None
    assert found.path == preview_file(SEG, 4000)
    assert found.node is None
    found = nearest_preview(rows, T0 + 9.6)
    assert found is not None
    assert found.time == T0 + 10.5
    assert found.node == "node-b"
    tie = nearest_preview(rows, T0 + 3.0)
    assert tie is not None
    assert tie.time == T0 + 2.0, "the earlier of two as near"
    edge = nearest_preview(rows, T0 - 9.0)
    assert edge is not None
    assert edge.time == T0
    assert nearest_preview(rows, T0 - 10.5) is None, "more than 10 s from any preview"
    assert nearest_preview([Row(SEG, T0, None)], T0) is None, "a segment without previews"


class _Catalog:
    def __init__(self, files: list[SegmentFile]) -> None:
        self.files = {f.meta.id: f for f in files}

    def segments(self) -> list[SegmentFile]:
        return list(self.files.values())

    def remove(self, ids: Sequence[Hashable]) -> list[SegmentFile]:
        return [self.files.pop(i) for i in ids]


def _segments_with_previews(root: Path, count: int, *, file_bytes: int,
                            preview_bytes: int) -> list[SegmentFile]:  # fmt: skip
    files = []
    for i in range(count):
        rel = f"recordings/cam/2023-11-14/{i:02d}/00.00.mp4"
        (root / rel).parent.mkdir(parents=True)
        (root / rel).write_bytes(b"v" * file_bytes)
        got = save_previews(root, rel, T0 + i * 10, [(T0 + i * 10 + k, b"p" * preview_bytes)
                                                     for k in range(2)])  # fmt: skip
        # What the catalogs make of a row: the file's size plus its previews'.
        meta = SegmentMeta(i, "cam", T0 + i * 10, T0 + i * 10 + 10, file_bytes + got.size)
        files.append(SegmentFile(meta, root / rel))
    return files


def test_retention_deletes_the_previews_with_their_segment(tmp_path: Path) -> None:
    files = _segments_with_previews(tmp_path, 3, file_bytes=100, preview_bytes=50)
    # 200 bytes per segment with its previews: a quota of 450 keeps two, 300 of file bytes
    # alone would have kept all three.
    job = RetentionJob(_Catalog(files), RetentionPolicy(CameraRetention(max_bytes=450)),
                       tmp_path / "recordings", free_bytes=lambda _: 10**12)  # fmt: skip
    result = job.run(T0 + 100)
    assert result.deleted == [0]
    assert not (tmp_path / preview_dir("recordings/cam/2023-11-14/00/00.00.mp4")).exists()
    assert not (tmp_path / "previews/cam/2023-11-14/00").exists(), "empty folders pruned"
    assert (tmp_path / preview_dir("recordings/cam/2023-11-14/01/00.00.mp4")).is_dir()
    delete_previews(tmp_path, "recordings/cam/2023-11-14/00/00.00.mp4")  # gone already: fine


def test_emergency_retention_counts_and_frees_the_previews(tmp_path: Path) -> None:
    """On a real full disk, the free-space rule reaches its reserve by deleting the oldest
    segments and, with them, their previews (which here take most of the space)."""
    with small_disk(tmp_path / "disk", 4 * 1024 * 1024) as disk:
        files = _segments_with_previews(disk.path, 8, file_bytes=20_000, preview_bytes=100_000)
        disk.fill()
        job = RetentionJob(_Catalog(files), RetentionPolicy(min_free_bytes=600_000),
                           disk.path / "recordings")  # fmt: skip
        result = job.run(T0 + 100)
        assert disk.free >= 600_000, "the previews' space came back too"
        assert result.deleted == [0, 1, 2]
        assert not (disk.path / "previews/cam/2023-11-14/02").exists()
        assert (disk.path / "previews/cam/2023-11-14/03").is_dir()


class _FullCatalog(_Catalog):
    """A catalog on the full disk: its first deletion cannot be recorded (SQLite there)."""

    def __init__(self, files: list[SegmentFile]) -> None:
        super().__init__(files)
        self.refused = 0

    def remove(self, ids: Sequence[Hashable]) -> list[SegmentFile]:
        if not self.refused:
            self.refused += 1
            raise StorageError("database or disk is full")
        return super().remove(ids)


def test_files_first_retention_deletes_the_previews_too(tmp_path: Path) -> None:
    """When the catalog cannot record a deletion, the planned files go first: their
    previews with them, before the rows."""
    with small_disk(tmp_path / "disk", 4 * 1024 * 1024) as disk:
        files = _segments_with_previews(disk.path, 6, file_bytes=20_000, preview_bytes=150_000)
        disk.fill()
        catalog = _FullCatalog(files)
        job = RetentionJob(catalog, RetentionPolicy(min_free_bytes=500_000),
                           disk.path / "recordings")  # fmt: skip
        result = job.run(T0 + 100)
        assert catalog.refused == 1
        assert result.deleted == [0, 1]
        assert disk.free >= 500_000
        assert not (disk.path / "previews/cam/2023-11-14/01").exists()
        assert (disk.path / "previews/cam/2023-11-14/02").is_dir()
