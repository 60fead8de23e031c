"""The batched write path (``upsert_many``, ``increment_many``, ``add_many``, ``publish_many``)
leaves exactly the rows that the one-at-a-time path leaves, on both backends."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from vigil.errors import StorageError
from vigil.store import Database
from vigil.store.models import CountRow, EventRow, SegmentRow
from vigil.store.repo import (
    CountKey,
    CountRepo,
    EventRepo,
    EventWrite,
    SegmentRepo,
    SegmentSpec,
)
from vigil.store.sink import StoreEventSink
from vigil.types import Event, EventState, Snapshot

NOW = 1_700_000_500.0
SHA = "ab" * 32


def _lifecycle(prefix: str) -> list[EventWrite]:
    """Three events' changes, interleaved: a snapshot given at the start only, a box that
    changes, an event still open, a label change."""
    snap = Snapshot(seq=1, time=10.0, box=(10, 20, 110, 220), score=0.9, frame_size=(640, 480))
    later = Snapshot(seq=2, time=12.0, box=(0, 0, 64, 48), score=0.95, frame_size=(640, 480))
    a = Event(
        id=f"{prefix}1",
        camera_id="cam",
        label="car",
        class_id=2,
        track_id=1,
        start=1_700_000_000.0,
        end=None,
        state=EventState.START,
        live=True,
        snapshot=snap,
    )
    b = dataclasses.replace(a, id=f"{prefix}2", track_id=2, snapshot=None)
    c = dataclasses.replace(a, id=f"{prefix}3", track_id=3, label="person", class_id=0)
    return [
        EventWrite(a, f"snapshots/cam/{prefix}1.jpg", SHA, "node-a"),
        EventWrite(b),
        EventWrite(dataclasses.replace(a, state=EventState.UPDATE, zones=["lot"],
                                       zones_now=["lot"], counts={"lot:enter": 1},
                                       measures={"lot:speed_kmh": 12.5}, snapshot=later)),
        EventWrite(c),
        EventWrite(dataclasses.replace(b, state=EventState.UPDATE, label="truck", class_id=7,
                                       lines=["gate"], top_score=0.7)),
        EventWrite(dataclasses.replace(a, state=EventState.END, end=1_700_000_030.0,
                                       zones=["lot"], snapshot=None)),
        EventWrite(dataclasses.replace(b, state=EventState.END, end=1_700_000_020.0,
                                       label="truck", class_id=7, lines=["gate"])),
    ]  # fmt: skip


def _rows(db: Database, prefix: str) -> list[dict[str, Any]]:
    with db.session() as session:
        rows = session.scalars(select(EventRow).where(EventRow.id.like(f"{prefix}%"))
                               .order_by(EventRow.id)).all()  # fmt: skip
        out = []
        for row in rows:
            values = {c.key: getattr(row, c.key) for c in EventRow.__table__.columns}
            values["id"] = values["id"][len(prefix) :]
            values["snapshot_path"] = (values["snapshot_path"] or "").replace(prefix, "")
            out.append(values)
        return out


def test_upsert_many_writes_what_upserting_one_by_one_writes(db: Database) -> None:
    with db.session() as session:
        repo = EventRepo(session)
        for w in _lifecycle("one-"):
            repo.upsert(w.event, snapshot_path=w.snapshot_path, snapshot_sha256=w.snapshot_sha256,
                        node=w.node, now=NOW)  # fmt: skip
    with db.session() as session:
        assert EventRepo(session).upsert_many(_lifecycle("many-"), now=NOW) == 3
    one, many = _rows(db, "one-"), _rows(db, "many-")
    assert len(one) == 3
    assert one == many
    # What the comparison covers: the last state, the kept snapshot and the new box.
    first = many[0]
    assert first["state"] == "end"
    assert first["snapshot_path"] == "snapshots/cam/1.jpg"
    assert first["node"] == "node-a"
    assert first["box"] == [0.0, 0.0, 0.1, 0.1]
    assert many[1]["label"] == "truck"
    assert many[1]["box"] is None


def _numpy_lifecycle(prefix: str) -> list[EventWrite]:
    """A detector's numpy scalars everywhere an event carries numbers."""
    start = Event(
        id=f"{prefix}n",
        camera_id="cam",
        label="car",
        class_id=np.int64(2),
        track_id=np.int32(9),
        start=np.float64(1_700_000_000.25),
        end=None,
        state=EventState.START,
        live=np.bool_(True),
        top_score=np.float32(0.8),
        counts={"lot:enter": np.int64(1)},
        measures={"lot:speed_kmh": np.float32(12.3)},
    )  # type: ignore[arg-type]
    end = dataclasses.replace(
        start,
        state=EventState.END,
        end=np.float32(1_700_000_010.5),
        counts={"lot:enter": np.int64(1), "lot:exit": np.int64(1)},
    )
    return [EventWrite(start), EventWrite(end)]


def test_upsert_many_takes_numpy_scalars_as_upsert_does(db: Database) -> None:
    with db.session() as session:
        repo = EventRepo(session)
        for w in _numpy_lifecycle("one-"):
            repo.upsert(w.event, now=NOW)
    with db.session() as session:
        assert EventRepo(session).upsert_many(_numpy_lifecycle("many-"), now=NOW) == 1
    one, many = _rows(db, "one-"), _rows(db, "many-")
    assert one == many
    assert many[0]["class_id"] == 2
    assert many[0]["counts"] == {"lot:enter": 1, "lot:exit": 1}
    assert many[0]["measures"] == {"lot:speed_kmh": pytest.approx(12.3, rel=1e-6)}


def test_upsert_many_keeps_the_json_as_written(db: Database) -> None:
    """The JSON columns read back in the order the pipeline wrote their keys, as the one-by-one
    path stores them (``jsonb`` would sort them: shortest key first)."""
    counts = {"lot:enter": 1, "lot:exit": 1, "a": 2}
    measures = {"road:speed_kmh": 3.5, "road:heading": 90.0}
    for prefix, batched in (("one-", False), ("many-", True)):
        event = Event(id=f"{prefix}j", camera_id="cam", label="car", class_id=2, track_id=1,
                      start=1_700_000_000.0, end=None, state=EventState.START, counts=counts,
                      measures=measures, zones=["z2", "z1"])  # fmt: skip
        with db.session() as session:
            if batched:
                EventRepo(session).upsert_many([EventWrite(event)], now=NOW)
            else:
                EventRepo(session).upsert(event, now=NOW)
    for row in (_rows(db, "one-")[0], _rows(db, "many-")[0]):
        assert list(row["counts"]) == ["lot:enter", "lot:exit", "a"]
        assert list(row["measures"]) == ["road:speed_kmh", "road:heading"]
        assert row["zones"] == ["z2", "z1"]


def test_upsert_many_keeps_the_users_flags(db: Database) -> None:
    writes = _lifecycle("e-")
    with db.session() as session:
        EventRepo(session).upsert_many(writes[:2], now=NOW)
        EventRepo(session).set_evidence_lock("e-1", True)
        EventRepo(session).set_reviewed(["e-2"], True)
    with db.session() as session:
        EventRepo(session).upsert_many(writes[2:], now=NOW + 1)
    with db.session() as session:
        repo = EventRepo(session)
        one, two, three = repo.get("e-1"), repo.get("e-2"), repo.get("e-3")
        assert one is not None
        assert two is not None
        assert three is not None
        assert one.evidence_lock is True
        assert one.reviewed is False
        assert one.state == "end"
        assert two.reviewed is True
        assert two.evidence_lock is False
        assert two.updated == NOW + 1
        # A snapshot given earlier stays when later changes bring none.
        assert one.snapshot_path == "snapshots/cam/e-1.jpg"
        assert one.snapshot_sha256 == SHA
        assert three.evidence_lock is False
        assert three.reviewed is False


def test_upsert_many_checks_the_snapshot_hash(db: Database) -> None:
    event = _lifecycle("x-")[1].event
    with pytest.raises(StorageError, match="SHA-256"), db.session() as session:
        EventRepo(session).upsert_many([EventWrite(event, "snapshots/x.jpg", "nope")])


def test_increment_many_sums_like_increment(db: Database) -> None:
    line = CountKey("cam", "gate", "line", "car", "a_to_b")
    zone = CountKey("cam", "lot", "zone", "car", "enter")
    hits = [(line, 60.0), (line, 61.0), (zone, 61.0), (line, 125.0), (line, 119.9)]
    with db.session() as session:
        repo = CountRepo(session)
        repo.increment(line, 62.0)  # an existing counter is added to, not replaced
        assert repo.increment_many(hits) == 3
        assert repo.increment_many([]) == 0
    with db.session() as session:
        rows = session.execute(select(CountRow.rule, CountRow.bucket, CountRow.count)
                               .order_by(CountRow.rule, CountRow.bucket)).all()  # fmt: skip
    assert [tuple(r) for r in rows] == [("gate", 60, 4), ("gate", 120, 1), ("lot", 60, 1)]


def _spec(i: int, **changes: Any) -> SegmentSpec:
    base = SegmentSpec(camera="cam", path=f"rec/cam/{i}.mp4", start=10.0 * i,
                       end=10.0 * i + 10, size=1000 + i, sha256=SHA)  # fmt: skip
    return dataclasses.replace(base, **changes)


def test_add_many_records_segments_and_skips_known_paths(db: Database) -> None:
    """A path known on its node is skipped (refused when another segment holds it); the
    same path on another node is another file (0008)."""
    with db.session() as session:
        SegmentRepo(session).add(camera="cam", path="rec/cam/0.mp4", start=0.0, end=10.0,
                                 size=5, sha256=SHA)  # fmt: skip
        refused = SegmentRepo(session).add_many([
            _spec(0), _spec(1, has_motion=True, node="n1"), _spec(2), _spec(1),
            _spec(0, start=3.0)])  # fmt: skip
    assert refused == [_spec(0, start=3.0)], "its place holds another segment"
    with db.session() as session:
        rows = SegmentRepo(session).list("cam")
    assert sorted((r.path, r.node or "", r.size, r.has_motion, r.evidence_lock)
                  for r in rows) == [
        ("rec/cam/0.mp4", "", 5, False, False), ("rec/cam/1.mp4", "", 1001, False, False),
        ("rec/cam/1.mp4", "n1", 1001, True, False),
        ("rec/cam/2.mp4", "", 1002, False, False)]  # fmt: skip


@pytest.mark.parametrize(("change", "problem"), [
    ({"path": "/abs.mp4"}, "relative"), ({"end": 0.0}, "before start"),
    ({"sha256": "x"}, "SHA-256"), ({"sha256": "AB" * 32}, "SHA-256"),
    ({"sha256": "ab" * 31 + "g0"}, "SHA-256")])  # fmt: skip
def test_add_many_refuses_bad_segments(db: Database, change: dict[str, Any], problem: str) -> None:
    with pytest.raises(StorageError, match=problem), db.session() as session:
        SegmentRepo(session).add_many([_spec(1), _spec(2, **change)])
    with db.session() as session:
        assert session.scalars(select(SegmentRow)).all() == []


def test_publish_many_stores_events_and_flags_their_segments(db: Database) -> None:
    with db.session() as session:
        SegmentRepo(session).add_many([_spec(170_000_000), _spec(170_000_010)])
    sink = StoreEventSink(db, node="n1")
    events = [w.event for w in _lifecycle("p-")]
    sink.publish_many(events)
    sink.publish_many([])
    with db.session() as session:
        rows = {r.id: r for r in session.scalars(select(EventRow))}
        flagged = [s.has_events for s in SegmentRepo(session).list("cam")]
    assert sorted(rows) == ["p-1", "p-2", "p-3"]
    assert rows["p-1"].end == 1_700_000_030.0
    assert rows["p-3"].end is None
    # p-1 spans 1_700_000_000..030: the segment from ..._000 and the one from ..._100 after.
    assert flagged == [True, False]
