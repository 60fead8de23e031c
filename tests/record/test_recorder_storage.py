"""How the recorder treats storage failures, piece by piece (the whole story, with a real
full disk under ``vigil serve``, is ``tests/runtime/test_disk_full.py``)."""

from __future__ import annotations

import errno
from pathlib import Path

import av
import pytest

from tests.record.conftest import T0
from tests.small_disk import small_disk
from vigil.errors import StorageError
from vigil.ingest import Backoff
from vigil.record import Recorder
from vigil.record.recorder import storage_problem
from vigil.record.segmenter import MAX_REPORT_ATTEMPTS, Segmenter, SegmentInfo


def test_storage_retries_wait_at_most_one_segment(tmp_path: Path) -> None:
    recorder = Recorder(
        "rtsp://127.0.0.1:1/x",
        "cam1",
        tmp_path,
        segment_seconds=4.0,
        backoff=Backoff(initial=1.0, factor=10.0, max=300.0, jitter=0.0),
    )
    assert [recorder.storage_retry_delay() for _ in range(4)] == [1.0, 4.0, 4.0, 4.0]


def test_segments_the_store_did_not_take_make_recording_failed(tmp_path: Path) -> None:
    recorder = Recorder("rtsp://127.0.0.1:1/x", "cam1", tmp_path)
    recorder.state = "recording"
    assert recorder.status() == ("recording", None)
    recorder.segmenter.report_error = "segment 00.00.mp4 not indexed: database is full"
    assert recorder.status() == (
        "failed", "recording failed: segment 00.00.mp4 not indexed: database is full")  # fmt: skip


def test_storage_problems_in_words() -> None:
    full = StorageError("cannot write segment x.mp4")
    full.__cause__ = OSError(errno.ENOSPC, "No space left on device")
    assert storage_problem(full) == "recording failed: disk full"
    assert storage_problem(StorageError("a av.error.OSError: No space left on device: 'x'")) == (
        "recording failed: disk full")  # fmt: skip
    read_only = StorageError("cannot write")
    read_only.__cause__ = OSError(errno.EROFS, "Read-only file system")
    assert storage_problem(read_only) == "recording failed: the disk is read-only"
    assert storage_problem(StorageError("gone")) == "recording failed: gone"


def _feed(stream: Path, segmenter: Segmenter, *, until: float | None = None) -> None:
    with av.open(str(stream)) as inp:
        video = inp.streams.video[0]
        segmenter.set_streams(video, None)
        for packet in inp.demux(video):
            late = packet.pts is not None and packet.pts * packet.time_base > (until or 1e9)
            if late:
                break
            segmenter.write(packet)


def test_a_failed_report_is_retried_with_the_next_segment(stream35: Path, tmp_path: Path) -> None:
    """The store is full for a moment: the segment file is kept and reported later."""
    reported: list[SegmentInfo] = []
    calls = 0

    def on_segment(info: SegmentInfo) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise StorageError("database: disk is full")
        reported.append(info)

    segmenter = Segmenter("cam1", tmp_path, segment_seconds=10.0, on_segment=on_segment,
                          clock=lambda: T0)  # fmt: skip
    _feed(stream35, segmenter, until=15.0)
    assert segmenter.report_error is not None
    assert "not indexed" in segmenter.report_error
    assert [s.path for s in segmenter.unreported] == [segmenter.segments[0].path]
    segmenter.close()
    assert [r.path for r in reported] == [s.path for s in segmenter.segments]
    assert segmenter.report_error is None
    assert segmenter.unreported == []


def test_a_segment_the_store_never_takes_is_counted_when_given_up(
    stream35: Path, tmp_path: Path
) -> None:
    """The database refuses for good: after ``MAX_REPORT_ATTEMPTS`` reports the segment is
    given up on (its file stays) and counted, and the count reaches the camera's status."""
    from vigil.config.models import VigilConfig
    from vigil.runtime.serve import Supervisor
    from vigil.runtime.view import CameraStatus

    def on_segment(info: SegmentInfo) -> None:
        raise StorageError("database: disk is full")

    recorder = Recorder("rtsp://127.0.0.1:1/x", "cam1", tmp_path, on_segment=on_segment)
    segmenter = recorder.segmenter
    _feed(stream35, segmenter, until=5.0)
    segmenter.finish_segment()  # one finished segment, reported once
    (first,) = segmenter.unreported
    for _ in range(MAX_REPORT_ATTEMPTS - 2):
        segmenter.finish_segment()  # each finish retries the waiting ones
    assert (segmenter.given_up, segmenter.unreported) == (0, [first])
    segmenter.finish_segment()  # the last attempt
    assert (segmenter.given_up, segmenter.unreported) == (1, [])
    assert first.path.exists(), "the file stays on disk"

    supervisor = Supervisor(VigilConfig.model_validate({"data_dir": str(tmp_path / "data")}))
    supervisor.recorders["cam1"] = recorder
    status = supervisor._with_recording(CameraStatus("cam1", True, "running"))
    assert status.segments_unindexed == 1


def test_a_full_disk_fails_the_write_at_once_and_leaves_no_partial(
    stream35: Path, tmp_path: Path
) -> None:
    """On a real full disk the error comes from ``write`` (not a whole segment later from
    the trailer) and ``abort_segment`` leaves no partial file holding space."""
    with small_disk(tmp_path / "disk", 256 * 1024) as disk:
        segmenter = Segmenter("cam1", disk.path, segment_seconds=60.0, clock=lambda: T0)
        disk.fill()
        with pytest.raises(StorageError, match="No space left"):
            _feed(stream35, segmenter, until=30.0)
        segmenter.abort_segment()
        assert [p for p in disk.path.rglob("*") if p.is_file() and p.name != "ballast"] == []
