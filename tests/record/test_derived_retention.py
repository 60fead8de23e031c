"""Retention of exports and cached clips (``vigil.record.derived``) in ``vigil serve``'s one
retention path: real segments (FFmpeg's test stream, segmented) indexed in a real SQLite
database, real exports and clips cut from them with signed manifests, and
``Supervisor.run_retention`` (the ``RetentionJob``) deciding.

Wanted: an export goes ``server.export_max_age`` after it was written unless its footage is
evidence-locked; a cached clip goes with the recording it was cut from (deleted by retention,
or older than the camera's ``max_age``) unless a lock keeps that recording; nothing else is
touched.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest.importorskip("sqlalchemy", reason="the server extra is not installed")

from tests.record.conftest import T0, segment_file
from vigil.config.models import VigilConfig
from vigil.privacy import unredacted_access
from vigil.record.derived import UNKNOWN_GRACE_S, DerivedFile, plan_derived
from vigil.record.export import export_range, manifest_path
from vigil.record.segmenter import SegmentInfo
from vigil.record.signing import load_or_create_key
from vigil.runtime.serve import Supervisor
from vigil.store import Database, SegmentRepo

HOUR, DAY = 3600.0, 86400.0


def _cut(data: Path, out: Path, segment: SegmentInfo) -> Path:
    """A stream copy of ``segment``'s first 3 s at ``out`` (an export or a cached clip)."""
    grant = unredacted_access("test of retention", "tester", data / "audit" / "u.jsonl",
                              str(out.name))  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    export_range([segment.path], segment.start, segment.start + 3, out,
                 key=load_or_create_key(data / "keys" / "k.pem"), redactor_factory=None,
                 grant=grant, camera="cam1", starts=[segment.start])  # fmt: skip
    return out


def _age(path: Path, when: float) -> None:
    os.utime(path, (when, when))


def test_exports_and_clips_follow_their_retention(stream35: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    segments = segment_file(stream35, data, seconds=10)  # three segments from T0, cam1
    assert len(segments) >= 3
    first, locked, third = segments[:3]
    db = Database(f"sqlite:///{tmp_path / 'vigil.db'}")
    db.migrate()
    try:
        with db.session() as session:
            repo = SegmentRepo(session)
            for s in segments:
                repo.add(camera="cam1", path=s.path.relative_to(data).as_posix(), start=s.start,
                         end=s.end, size=s.size, sha256=s.sha256)  # fmt: skip
            repo.set_lock("cam1", locked.start + 1, locked.end - 1, True)
        exports, clips = data / "exports", data / "clips" / "cam1"
        old_export = _cut(data, exports / "old.mp4", first)
        evidence = _cut(data, exports / "evidence.mp4", locked)
        new_export = _cut(data, exports / "new.mp4", first)
        clip_first = _cut(data, clips / "first.mp4", first)
        clip_locked = _cut(data, clips / "locked.mp4", locked)
        clip_third = _cut(data, clips / "segment-3-abc.mp4", third)  # a masked segment copy
        orphan = clips / "no-manifest.mp4"
        orphan.write_bytes(b"not a clip")
        config = VigilConfig.model_validate({
            "data_dir": str(data), "record": {"max_age": HOUR},
            "server": {"free_space_reserve": 0},  # export_max_age: the default, 7 days
        })  # fmt: skip
        supervisor = Supervisor(config, db=db)

        # The recordings are young; one export was written 8 days ago, one 6 days ago.
        now = T0 + 60
        for path in (old_export, evidence):
            _age(path, now - 8 * DAY)
        _age(new_export, now - 6 * DAY)
        _age(orphan, now)
        assert supervisor.run_retention(now) == []
        assert not old_export.exists(), "8 days old: past export_max_age"
        assert not manifest_path(old_export).exists()
        assert evidence.exists(), "evidence-locked footage: kept while the lock holds"
        assert new_export.exists()
        assert all(p.exists() for p in (clip_first, clip_locked, clip_third))
        assert orphan.exists(), "no manifest, but young: it may be being written"

        # Two hours later the unlocked segments age out: so do the clips cut from them.
        later = T0 + 2 * HOUR
        removed = supervisor.run_retention(later)
        assert locked.path.relative_to(data).as_posix() not in removed
        assert first.path.relative_to(data).as_posix() in removed
        assert not clip_first.exists(), "cut from a segment retention deleted"
        assert not manifest_path(clip_first).exists()
        assert not clip_third.exists(), "a masked copy of a deleted segment"
        assert clip_locked.exists(), "its recording is locked: it would only be cut again"
        assert later - now > UNKNOWN_GRACE_S
        assert not orphan.exists(), "no manifest, and older than the grace for one being cut"
        assert evidence.exists()
        assert new_export.exists(), "exports age by their own rule, not the footage's"
        supervisor.stop()
    finally:
        db.close()


def _file(kind: str, *, written: float, footage: tuple[str, float, float] | None) -> DerivedFile:
    return DerivedFile(kind, Path(f"/x/{kind}-{written}-{footage}.mp4"), written,  # type: ignore[arg-type]
                       footage)  # fmt: skip


@pytest.mark.parametrize(("file", "gone"), [
    (_file("export", written=0, footage=("a", 0, 10)), True),  # old
    (_file("export", written=95, footage=("a", 0, 10)), False),  # young
    (_file("export", written=0, footage=("a", 50, 60)), False),  # locked footage
    (_file("export", written=0, footage=("b", 50, 60)), True),  # another camera's lock
    (_file("export", written=0, footage=None), True),  # no manifest: by its time only
    (_file("clip", written=99, footage=("a", 20, 30)), True),  # cut from a removed segment
    (_file("clip", written=99, footage=("a", 70, 80)), True),  # footage past max_age (10 s)
    (_file("clip", written=99, footage=("a", 55, 58)), False),  # past max_age, but locked
    (_file("clip", written=99, footage=("a", 95, 99)), False),  # young footage
    (_file("clip", written=0, footage=("b", 85, 99)), False),  # b has no max_age
])  # fmt: skip
def test_plan_derived(file: DerivedFile, gone: bool) -> None:
    doomed = plan_derived([file], 100.0, export_max_age=50.0,
                          clip_max_age=lambda camera: 10.0 if camera == "a" else None,
                          locked=[("a", 50.0, 60.0)], removed=[("a", 25.0, 35.0)])  # fmt: skip
    assert (file in doomed) == gone
