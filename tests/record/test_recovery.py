"""Start-up recovery: partial segments left by ``kill -9`` and stray temporary files.

A real recording process (the ``Segmenter`` fed in real time from a subprocess) is killed
with SIGKILL mid-segment: its ``.partial`` file has no MP4 index and is deleted at the next
start. A partial that is complete (the process died between finishing and renaming it) is
recovered: renamed, indexed, and from then on subject to retention like any segment.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import av
import pytest

from tests.record.conftest import T0
from vigil.record.layout import parse_segment_path
from vigil.record.recovery import recover
from vigil.record.segmenter import SegmentInfo, partial_path, sha256_file

# Feeds the packets of argv[1] to a Segmenter under argv[2] at about real time, for ever.
FEEDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import av
    from vigil.record.segmenter import Segmenter
    seg = Segmenter("cam1", Path(sys.argv[2]), segment_seconds=60.0, clock=lambda: 1.7e9)
    with av.open(sys.argv[1]) as inp:
        video = inp.streams.video[0]
        seg.set_streams(video, None)
        for packet in inp.demux(video):
            seg.write(packet)
            time.sleep(0.01)
    time.sleep(60)
""")


def _partials(root: Path) -> list[Path]:
    return sorted(root.rglob("*.partial"))


def test_kill_9_partial_is_deleted_at_start(stream35: Path, tmp_path: Path) -> None:
    root = tmp_path / "data"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    feeder = subprocess.Popen([sys.executable, "-c", FEEDER, str(stream35), str(root)], env=env)
    try:
        deadline = time.monotonic() + 60
        while not any(p.stat().st_size > 32_768 for p in _partials(root)):
            assert feeder.poll() is None, "the feeder died on its own"
            assert time.monotonic() < deadline, "the feeder wrote no partial segment"
            time.sleep(0.05)
    finally:
        feeder.send_signal(signal.SIGKILL)
        feeder.wait(10)
    [partial] = _partials(root)
    with pytest.raises(av.error.FFmpegError):  # no MP4 index: unplayable, as kill -9 leaves it
        av.open(str(partial)).close()
    reported: list[SegmentInfo] = []
    report = recover(root, reported.append)
    assert report.deleted == [partial]
    assert not partial.exists()
    assert reported == [], "nothing playable to index"


def test_complete_partial_is_recovered_and_indexed(
    segments35: list[SegmentInfo], tmp_path: Path
) -> None:
    root = tmp_path / "data"
    source = segments35[1]
    rel = source.path.relative_to(source.path.parents[3])
    target = root / "recordings" / rel
    target.parent.mkdir(parents=True)
    # Died after the MP4 was complete but before its rename: a playable partial.
    shutil.copy(source.path, partial_path(target))
    reported: list[SegmentInfo] = []
    report = recover(root, reported.append)
    assert report.recovered == [target]
    assert target.exists()
    assert not partial_path(target).exists()
    [info] = reported
    assert info.path == target
    assert (info.camera, info.start) == parse_segment_path(target)
    assert info.start == pytest.approx(source.start, abs=1.0)
    assert info.duration == pytest.approx(source.duration, abs=0.2)
    assert info.sha256 == sha256_file(source.path)
    assert info.size == source.size
    assert info.has_audio


def test_partial_of_a_segment_already_complete_is_deleted(
    segments35: list[SegmentInfo], tmp_path: Path
) -> None:
    root = tmp_path / "data"
    source = segments35[0]
    target = root / "recordings" / source.path.relative_to(source.path.parents[3])
    target.parent.mkdir(parents=True)
    shutil.copy(source.path, target)
    shutil.copy(source.path, partial_path(target))
    report = recover(root)
    assert report.deleted == [partial_path(target)]
    assert sha256_file(target) == source.sha256, "the complete segment is untouched"


def test_stray_temporary_files_are_deleted_and_nothing_else(tmp_path: Path) -> None:
    root = tmp_path / "data"
    stray = [root / "snapshots/cam1/2023-11-14/.e1.jpg.1234.tmp",
             root / "recordings/cam1/.probe-1-2.tmp",
             root / "previews/cam1/2023-11-14/22/13.20/.2000.jpg.tmp"]  # fmt: skip
    kept = [root / "snapshots/cam1/2023-11-14/e1.jpg", root / "recordings/cam1/notes.tmp",
            root / "exports/.x.tmp", root / "previews/cam1/2023-11-14/22/13.20/0.jpg"]  # fmt: skip
    for path in (*stray, *kept):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    report = recover(root)
    assert sorted(report.temps) == sorted(stray)
    assert not any(p.exists() for p in stray)
    assert all(p.exists() for p in kept), "only our own hidden temporary files go"


def test_one_camera_is_cleaned_without_touching_its_neighbours(tmp_path: Path) -> None:
    """A cluster node's camera actors share a data dir and start one by one: a restarting
    camera must not delete the open segment of another camera recording on that node."""
    root = tmp_path / "data"
    own = [root / "recordings/cam1/2023-11-14/10/.00.00.mp4.partial",
           root / "snapshots/cam1/2023-11-14/.e1.jpg.1.tmp"]  # fmt: skip
    neighbour = [root / "recordings/cam2/2023-11-14/10/.00.00.mp4.partial",
                 root / "snapshots/cam2/2023-11-14/.e2.jpg.1.tmp"]  # fmt: skip
    for path in (*own, *neighbour):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    report = recover(root, camera="cam1")
    assert sorted([*report.deleted, *report.temps]) == sorted(own)
    assert all(p.exists() for p in neighbour)


def test_supervisor_start_indexes_recovered_segments_for_retention(
    segments35: list[SegmentInfo], tmp_path: Path
) -> None:
    """Through ``vigil serve``'s start: the recovered segment gets a row, and retention
    deletes it once it is older than ``max_age`` (it was invisible to retention before)."""
    pytest.importorskip("sqlalchemy", reason="the server extra is not installed")
    from vigil.config.models import VigilConfig
    from vigil.runtime.serve import Supervisor
    from vigil.store import Database, SegmentRepo

    data = tmp_path / "data"
    source = segments35[2]
    target = data / "recordings" / source.path.relative_to(source.path.parents[3])
    target.parent.mkdir(parents=True)
    shutil.copy(source.path, partial_path(target))
    config = VigilConfig.model_validate({"data_dir": str(data), "record": {"max_age": 3600}})
    db = Database(f"sqlite:///{tmp_path / 'vigil.db'}")
    db.migrate()
    try:
        supervisor = Supervisor(config, db=db)
        supervisor.start()
        supervisor.stop()
        with db.session() as session:
            rows = SegmentRepo(session).list()
        assert [(r.camera, r.path, r.sha256) for r in rows] == [
            ("cam1", target.relative_to(data).as_posix(), source.sha256)
        ]
        assert supervisor.run_retention(T0 + 86_400) == [target.relative_to(data).as_posix()]
        assert not target.exists()
        assert not (data / "recordings" / "cam1").exists(), "emptied folders are pruned"
    finally:
        db.close()
