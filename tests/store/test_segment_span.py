"""Segment time ranges are bounded below by the longest segment (``ix_segments_span``,
0007): the same rows as before, without reading the camera's older history."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import event, text

from vigil.store import Database
from vigil.store.repo import SegmentRepo, SegmentSpec

SHA = "cd" * 32


def _segments(n: int, camera: str = "cam") -> list[SegmentSpec]:
    return [SegmentSpec(camera, f"rec/{camera}/{i}.mp4", 10.0 * i, 10.0 * i + 10, 1, SHA)
            for i in range(n)]  # fmt: skip


def test_a_long_segment_still_overlaps_the_range(db: Database) -> None:
    long = SegmentSpec("cam", "rec/cam/long.mp4", 0.0, 100_000.0, 1, SHA)
    with db.session() as session:
        SegmentRepo(session).add_many([*_segments(50), long])
        SegmentRepo(session).add_many(_segments(5, camera="other"))
    with db.session() as session:
        repo = SegmentRepo(session)
        assert [r.path for r in repo.list("cam", 50_000, 50_001)] == ["rec/cam/long.mp4"]
        assert repo.recorded("cam", 99_999, 100_500)
        assert not repo.recorded("cam", 100_000, 100_500)
        assert [r.path for r in repo.list("cam", 485, 505)] == [
            "rec/cam/long.mp4", "rec/cam/48.mp4", "rec/cam/49.mp4"]  # fmt: skip
        assert repo.mark_events("cam", 95, 105) == 3  # 9, 10 and the long one
        assert repo.set_lock("other", 0, 15, True) == 2


def test_an_empty_table_has_no_range(db: Database) -> None:
    with db.session() as session:
        assert SegmentRepo(session).list("cam", 0, 10) == []


def test_the_index_exists(db: Database) -> None:
    with db.engine.connect() as conn:
        if db.backend == "sqlite":
            names = [r[1] for r in conn.execute(text("PRAGMA index_list('segments')"))]
        else:
            names = list(
                conn.execute(
                    text("SELECT indexname FROM pg_indexes WHERE tablename = 'segments'")
                ).scalars()
            )
    assert "ix_segments_span" in names


def test_a_day_of_a_long_history_reads_only_that_day(db: Database) -> None:
    if db.backend != "postgresql":
        pytest.skip("EXPLAIN ANALYZE's row counts are PostgreSQL's")
    with db.session() as session:
        SegmentRepo(session).add_many(_segments(20_000))
        SegmentRepo(session).add_many(_segments(2_000, camera="other"))
    with db.engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE segments"))
    statements: list[tuple[str, Any]] = []

    def capture(_c: Any, _cur: Any, statement: str, params: Any, *_: Any) -> None:
        statements.append((statement, params))

    event.listen(db.engine, "before_cursor_execute", capture)
    try:
        with db.session() as session:  # the last hour of 55 h of 10 s segments
            assert len(SegmentRepo(session).list("cam", 196_400, 200_000)) == 360
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)
    statement, params = statements[-1]
    with db.engine.connect() as conn:
        plan = "\n".join(conn.exec_driver_sql(f"EXPLAIN (ANALYZE) {statement}", params).scalars())
    assert "ix_segments_span" in plan, plan
    # Without the lower bound, the 19 640 older segments are read and dropped by the filter.
    removed = sum(int(n) for n in re.findall(r"Rows Removed by Filter: (\d+)", plan))
    assert removed < 100, plan


def test_mark_events_many_flags_what_mark_events_flags(db: Database) -> None:
    spans = [("cam", 95.0, 105.0), ("cam", 100.0, 131.0), ("cam", 300.0, 300.0),
             ("cam", 300.0, 301.0), ("other", 0.0, 10.0), ("cam", 1e6, 1e6 + 5)]  # fmt: skip
    with db.session() as session:
        SegmentRepo(session).add_many([*_segments(40), *_segments(3, camera="other")])
    with db.session() as session:
        one = SegmentRepo(session)
        expected = {(r.camera, r.path) for span in spans for r in one.list(*span)}
        assert SegmentRepo(session).mark_events_many(spans) == len(expected) == 7
        assert SegmentRepo(session).mark_events_many(spans) == 0  # flagged already
        assert SegmentRepo(session).mark_events_many([]) == 0
        flagged = {(r.camera, r.path) for r in one.list() if r.has_events}
    assert flagged == expected


def test_recorded_many_answers_like_recorded(db: Database) -> None:
    spans = [
        ("cam", 5.0, 6.0),
        ("cam", 400.0, 401.0),
        ("other", 15.0, 16.0),
        ("cam", 395.0, 400.0),
        ("nobody", 0.0, 1e9),
    ] * 90  # two chunks of 200
    with db.session() as session:
        SegmentRepo(session).add_many([*_segments(40), *_segments(2, camera="other")])
    with db.session() as session:
        repo = SegmentRepo(session)
        assert repo.recorded_many(spans) == [repo.recorded(*span) for span in spans]
        assert repo.recorded_many(spans)[:5] == [True, False, True, True, False]
        assert repo.recorded_many([]) == []


def test_the_migration_goes_down_and_up_with_the_segments_kept(db_url: str) -> None:
    from alembic import command
    from alembic.script import ScriptDirectory

    from vigil.store.db import alembic_config

    database = Database(db_url)
    try:
        database.migrate("0006_segment_node")
        # Raw SQL at old revisions: the model has columns of later ones (0008's previews).
        with database.engine.begin() as connection:
            connection.execute(
                text(
                    'INSERT INTO segments (camera, path, start, "end", size, sha256, '
                    "evidence_lock, has_motion, has_events) VALUES "
                    "('cam', 'rec/a.mp4', 0, 10, 1, :sha, false, false, false)"
                ),
                {"sha": SHA},
            )
        database.migrate()
        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
        assert database.current_revision() == head
        test_the_index_exists(database)
        with database.session() as session:
            (row,) = SegmentRepo(session).list("cam", 5, 6)
            assert (row.path, row.previews, row.preview_bytes) == ("rec/a.mp4", None, 0)
        with database.engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.downgrade(config, "0006_segment_node")
        assert database.current_revision() == "0006_segment_node"
        with database.engine.begin() as connection:
            paths = connection.execute(text("SELECT path FROM segments")).scalars().all()
        assert paths == ["rec/a.mp4"]
        with pytest.raises(AssertionError):
            test_the_index_exists(database)
    finally:
        database.close()
