"""Segments the store did not take: journaled on their first failed report, indexed again
from their files once the store answers (at start and with each retention pass), moved to
quarantine when they no longer read; the ``segments_unindexed`` figure goes down with them.
Real H.264 segments, a real SQLite database, the real Supervisor."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.record.test_recorder_storage import _feed
from vigil.errors import StorageError
from vigil.record import Recorder
from vigil.record.quarantine import quarantine_usage
from vigil.record.segmenter import MAX_REPORT_ATTEMPTS, Segmenter, SegmentInfo
from vigil.record.unindexed import JOURNAL, QUARANTINE, UnindexedJournal, reindex

pytest.importorskip("sqlalchemy", reason="the server extra is not installed")

from vigil.config.models import VigilConfig
from vigil.runtime.serve import Supervisor, reindex_with
from vigil.runtime.view import CameraStatus
from vigil.store import Database, SegmentRepo


def _down(info: SegmentInfo) -> None:
    raise StorageError("cannot reach the database server")


def _give_up_one(stream35: Path, segmenter: Segmenter) -> None:
    """One segment of ``segmenter`` (whose store is down) reported until it is given up."""
    journal = segmenter.recordings / segmenter.camera / JOURNAL
    _feed(stream35, segmenter, until=5.0)
    segmenter.finish_segment()  # finished, reported once
    assert journal.is_file(), "journaled at the first failure"
    for _ in range(MAX_REPORT_ATTEMPTS - 1):  # each finish retries the waiting ones
        segmenter.finish_segment()
    assert (segmenter.given_up, segmenter.unreported) == (1, [])


def _outage(stream35: Path, data: Path) -> tuple[SegmentInfo, SegmentInfo]:
    """A run of ``cam1`` under ``data`` while the database is down: its first segment is
    given up on, its second has failed once (still retried) when the process stops."""
    recorder = Recorder("rtsp://127.0.0.1:9/x", "cam1", data, segment_seconds=10.0,
                        on_segment=_down)  # fmt: skip
    segmenter = recorder.segmenter
    _give_up_one(stream35, segmenter)
    (first,) = segmenter.segments
    _feed(stream35, segmenter, until=5.0)  # a new timeline: one more segment, failed once
    segmenter.finish_segment()
    (second,) = segmenter.unreported
    assert segmenter.given_up == 1, "the second is being retried, not given up"
    return first, second


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'vigil.db'}")
    database.migrate()
    yield database
    database.close()


def _supervisor(data: Path, db: Database, camera: str = "cam1") -> Supervisor:
    config = VigilConfig.model_validate({
        "data_dir": str(data), "record": {"max_age": 3600},
        "server": {"free_space_reserve": 0},
        "cameras": {camera: {"sources": [{"url": "rtsp://127.0.0.1:9/x"}],
                             "detect": {"model": "motion"}}},
    })  # fmt: skip
    return Supervisor(config, db=db)


def _rows(db: Database) -> list[tuple[str, str, float, float, int, str]]:
    with db.session() as session:
        return [(r.camera, r.path, r.start, r.end, r.size, r.sha256)
                for r in SegmentRepo(session).list()]  # fmt: skip


def _unindexed(supervisor: Supervisor) -> int:
    return supervisor._with_recording(CameraStatus("cam1", True, "running")).segments_unindexed


def test_segments_given_up_in_a_run_are_indexed_at_the_next_start(
    stream35: Path, tmp_path: Path, db: Database
) -> None:
    """The run that lost the database stops; the next start finds both segments in the
    journal (the given-up one and the one still retried), indexes them from their files
    before recording, and retention now sees them."""
    data = tmp_path / "data"
    first, second = _outage(stream35, data)
    supervisor = _supervisor(data, db)
    assert _unindexed(supervisor) == 2, "after a restart nothing retries either of them"
    supervisor.start()
    supervisor.stop()
    rel = [s.path.relative_to(data).as_posix() for s in (first, second)]
    assert _rows(db) == [
        ("cam1", rel[0], first.start, first.end, first.size, first.sha256),
        ("cam1", rel[1], second.start, second.end, second.size, second.sha256),
    ], "the files are those the recorder wrote: the recorder's own spans"
    assert _unindexed(supervisor) == 0, "the figure goes down once they are indexed"
    assert not (data / "recordings" / "cam1" / JOURNAL).exists()
    assert sorted(supervisor.run_retention(time.time() + 86_400)) == sorted(rel)
    assert not first.path.exists(), "retention frees them like any other segment"


def test_the_journal_of_a_camera_removed_from_the_configuration_is_swept_at_start(
    stream35: Path, tmp_path: Path, db: Database
) -> None:
    """cam1 lost the database, then left the configuration: its journal has no recorder to
    read it. The start indexes its segments all the same (as cam1's), so retention ages
    them by the default limits like every stored segment of a removed camera; a journal
    that lists nothing (only a damaged line) is deleted, one of the cameras recorded now is
    left to its recorder."""
    data = tmp_path / "data"
    first, second = _outage(stream35, data)
    empty = data / "recordings" / "cam3" / JOURNAL
    empty.parent.mkdir(parents=True)
    empty.write_text('{"camera": "cam3", "pa')
    supervisor = _supervisor(data, db, camera="cam2")
    assert "cam1" not in supervisor.recorders
    supervisor.start()
    supervisor.stop()
    rel = [s.path.relative_to(data).as_posix() for s in (first, second)]
    assert [(r[0], r[1], r[4], r[5]) for r in _rows(db)] == [
        ("cam1", rel[0], first.size, first.sha256),
        ("cam1", rel[1], second.size, second.sha256),
    ]
    assert not (data / "recordings" / "cam1" / JOURNAL).exists()
    assert not empty.exists(), "an empty journal is deleted"
    assert supervisor.run_retention(time.time() + 60) == [], "young: kept"
    assert sorted(supervisor.run_retention(time.time() + 86_400)) == sorted(rel), (
        "aged by the default record.max_age, as a removed camera's stored segments are"
    )
    assert not first.path.exists()
    assert not second.path.exists()


def test_a_removed_cameras_journal_waits_for_the_store_and_is_swept_by_a_retention_pass(
    stream35: Path, tmp_path: Path, db: Database
) -> None:
    data = tmp_path / "data"
    _outage(stream35, data)
    supervisor = _supervisor(data, db, camera="cam2")
    supervisor._reindex_segment = _down  # type: ignore[method-assign]
    assert supervisor.reindex_unindexed() == 0
    assert (data / "recordings" / "cam1" / JOURNAL).is_file(), "kept for the next sweep"
    del supervisor._reindex_segment
    assert supervisor.run_retention(time.time() + 60) == []
    assert len(_rows(db)) == 2
    assert not (data / "recordings" / "cam1" / JOURNAL).exists()


def test_a_segment_given_up_while_running_is_indexed_by_the_next_retention_pass(
    stream35: Path, tmp_path: Path, db: Database
) -> None:
    data = tmp_path / "data"
    supervisor = _supervisor(data, db)
    recorder = supervisor.recorders["cam1"]
    segmenter = recorder.segmenter
    segmenter.on_segment = _down  # the database is down for longer than the retries
    _give_up_one(stream35, segmenter)
    assert _unindexed(supervisor) == 1
    assert supervisor.run_retention(time.time() + 60) == [], "young: indexed, not deleted"
    (row,) = _rows(db)
    assert row[1] == segmenter.segments[0].path.relative_to(data).as_posix()
    assert _unindexed(supervisor) == 0


def test_a_segment_indexed_meanwhile_only_leaves_the_journal(
    stream35: Path, tmp_path: Path, db: Database
) -> None:
    """A report whose commit went through but whose answer was lost looks failed: the sweep
    finds the row and stores nothing twice."""
    data = tmp_path / "data"
    first, _ = _outage(stream35, data)
    supervisor = _supervisor(data, db)
    supervisor._reindex_segment(first)
    assert supervisor.reindex_unindexed() == 1, "the second one"
    assert len(_rows(db)) == 2
    assert _unindexed(supervisor) == 0


def test_an_unreadable_segment_goes_to_quarantine_and_a_missing_one_is_dropped(
    stream35: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    first, second = _outage(stream35, data)
    first.path.write_bytes(b"\x00" * 4096)  # no longer an MP4
    second.path.unlink()
    journal = UnindexedJournal(data / "recordings" / "cam1")
    indexed: list[SegmentInfo] = []
    report = reindex(journal, data, indexed.append)
    assert indexed == []
    target = data / QUARANTINE / first.path.relative_to(data / "recordings")
    assert [(p, "does not play" in why) for p, why in report.quarantined] == [(first.path, True)]
    assert target.read_bytes() == b"\x00" * 4096
    assert not first.path.exists()
    assert report.missing == [second.path]
    assert journal.count == 0
    assert not journal.path.exists()


def test_a_quarantined_segment_is_counted_and_aged_by_its_cameras_max_age(
    stream35: Path, tmp_path: Path, db: Database
) -> None:
    """Unredacted footage does not outlive ``max_age`` because it stopped playing."""
    data = tmp_path / "data"
    first, _ = _outage(stream35, data)
    first.path.write_bytes(b"\x00" * 4096)  # no longer an MP4
    supervisor = _supervisor(data, db)
    supervisor.start()
    supervisor.stop()
    target = data / QUARANTINE / first.path.relative_to(data / "recordings")
    assert target.is_file(), "the start's sweep moved it"
    assert quarantine_usage(data / QUARANTINE) == {"cam1": (1, 4096)}
    supervisor.run_retention(time.time() + 60)
    assert target.is_file(), "young: kept for the administrator to look at"
    supervisor.run_retention(time.time() + 86_400)
    assert not target.exists(), "past cam1's record.max_age (1 h)"
    assert quarantine_usage(data / QUARANTINE) == {}


def test_a_store_still_down_keeps_the_journal_for_the_next_sweep(
    stream35: Path, tmp_path: Path, db: Database
) -> None:
    data = tmp_path / "data"
    first, second = _outage(stream35, data)
    journal = UnindexedJournal(data / "recordings" / "cam1")
    report = reindex(journal, data, _down)
    assert report.stopped is not None
    assert "cannot reach the database server" in report.stopped
    assert (report.indexed, journal.count) == ([], 2)
    again = UnindexedJournal(data / "recordings" / "cam1")
    assert [i.path for i in again.given_up()] == [first.path, second.path], "kept on disk"
    assert reindex_with(db, data, again, None, node="node-1") == 2
    with db.session() as session:
        assert {r.node for r in SegmentRepo(session).list()} == {"node-1"}, "a node's rows"


def test_a_damaged_journal_line_does_not_hide_the_others(stream35: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    first, second = _outage(stream35, data)
    path = data / "recordings" / "cam1" / JOURNAL
    lines = path.read_text().splitlines()
    assert [json.loads(x)["path"] for x in lines] == [
        s.path.relative_to(data / "recordings" / "cam1").as_posix() for s in (first, second)
    ], "paths relative to the camera's folder: a moved data dir keeps its journal"
    path.write_text(lines[0] + "\n" + lines[1][:20])  # the last write was cut short
    assert [i.path for i in UnindexedJournal(path.parent).given_up()] == [first.path]


def test_a_file_changed_since_it_was_journaled_is_indexed_as_it_is_now(
    stream35: Path, tmp_path: Path
) -> None:
    """A segment rewritten since (here: its last second cut off, as a repair might) is
    indexed with the span PyAV reads from it and its new size and digest."""
    import av

    data = tmp_path / "data"
    first, _ = _outage(stream35, data)
    copy = tmp_path / "copy.mp4"
    with av.open(str(first.path)) as inp, av.open(str(copy), "w", format="mp4") as out:
        video = inp.streams.video[0]
        stream = out.add_stream_from_template(video)
        for packet in inp.demux(video):  # GOPs of 1 s: 4 whole ones are kept
            if packet.dts is not None and packet.dts * packet.time_base < 4.0:
                packet.stream = stream
                out.mux(packet)
    copy.replace(first.path)
    indexed: list[SegmentInfo] = []
    reindex(UnindexedJournal(data / "recordings" / "cam1"), data, indexed.append)
    again = indexed[0]
    assert again.path == first.path
    assert again.sha256 != first.sha256
    assert again.size == first.path.stat().st_size
    assert again.start == first.start, "the journal's start: the name has only the second"
    assert first.end - first.start > 4.5
    assert again.end - again.start == pytest.approx(4.0, abs=0.2), "the span the file holds"
