"""A segment's place is its node and its path (0009, ``uq_segments_node_path``): two nodes
may hold one path (a camera that failed over names its first segment on the new node as its
last one on the old node was named); one node, or the single host, may not."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event, text

from vigil.errors import StorageError
from vigil.store import Database
from vigil.store.repo import SegmentRepo, SegmentSpec

SHA, OTHER = "cd" * 32, "ef" * 32
PATH = "recordings/cam/2026/12/01/14/00.05.mp4"


def _add(db: Database, node: str | None, sha256: str = SHA) -> None:
    with db.session() as session:
        SegmentRepo(session).add(camera="cam", path=PATH, start=5.0, end=15.0, size=1,
                                 sha256=sha256, node=node)  # fmt: skip


def test_one_path_is_one_row_per_node(db: Database) -> None:
    for node in ("node-1", "node-2", None):
        _add(db, node)
    for node in ("node-1", None):  # the single host keeps one row per path too
        with pytest.raises(StorageError, match="already recorded"):
            _add(db, node, OTHER)
    with db.session() as session:
        rows = SegmentRepo(session).list("cam")
    assert sorted((r.node or "", r.sha256) for r in rows) == [
        ("", SHA), ("node-1", SHA), ("node-2", SHA)]  # fmt: skip


def test_add_many_returns_the_rows_whose_place_holds_another(db: Database) -> None:
    _add(db, "node-1")
    mine = SegmentSpec("cam", PATH, 5.0, 15.0, 1, SHA, node="node-2")
    clash = SegmentSpec("cam", PATH, 5.0, 15.0, 1, OTHER, node="node-1")
    fresh = SegmentSpec("cam", "recordings/cam/b.mp4", 15.0, 25.0, 1, SHA, node="node-1")
    twin = SegmentSpec("cam", "recordings/cam/b.mp4", 15.0, 25.0, 1, OTHER, node="node-1")
    with db.session() as session:  # ``twin``: the same place as ``fresh`` in one batch
        assert SegmentRepo(session).add_many([mine, clash, fresh, twin]) == [clash, twin]
    with db.session() as session:  # a batch sent again (its commit reply was lost): stored once
        assert SegmentRepo(session).add_many([mine, fresh]) == []
    with db.session() as session:
        rows = SegmentRepo(session).list("cam")
    assert sorted((r.node, r.path, r.sha256) for r in rows) == [
        ("node-1", PATH, SHA),
        ("node-1", "recordings/cam/b.mp4", SHA),
        ("node-2", PATH, SHA),
    ]


def _downgrade(database: Database) -> None:
    """To 0008, in one transaction (rolled back when it fails)."""
    from alembic import command

    from vigil.store.db import alembic_config

    with database.engine.begin() as connection:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, "0008_segment_previews")


def test_the_migration_keeps_the_rows_and_goes_down_while_paths_are_unique(
    db_url: str,
) -> None:
    database = Database(db_url)
    try:
        database.migrate("0008_segment_previews")
        _add(database, "node-1")
        with pytest.raises(StorageError):  # before: unique across the cluster
            _add(database, "node-2")
        database.migrate("0009_segment_node_path")
        _add(database, "node-2")
        with pytest.raises(Exception, match=r"(?i)unique"):  # two nodes hold PATH
            _downgrade(database)
        assert database.current_revision() == "0009_segment_node_path"
        with database.session() as session:
            repo = SegmentRepo(session)
            for row in repo.list("cam"):
                if row.node == "node-2":
                    session.delete(row)
        _downgrade(database)
        assert database.current_revision() == "0008_segment_previews"
        with database.session() as session:
            assert [r.node for r in SegmentRepo(session).list("cam")] == ["node-1"]
    finally:
        database.close()


def test_the_refusal_check_reads_the_unique_index(db: Database) -> None:
    """``add_many``'s look-up of what it stored asks the index's own expression, so a node's
    batch never scans the segments of the whole cluster."""
    if db.backend != "postgresql":
        pytest.skip("the plan is PostgreSQL's")
    specs = [SegmentSpec("cam", f"recordings/cam/{i}.mp4", 10.0 * i, 10.0 * i + 10, 1, SHA,
                         node="node-1") for i in range(2_000)]  # fmt: skip
    with db.session() as session:
        SegmentRepo(session).add_many(specs[:1_900])
    with db.engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE segments"))
    statements: list[tuple[str, Any]] = []

    def capture(_c: Any, _cur: Any, statement: str, params: Any, *_: Any) -> None:
        statements.append((statement, params))

    event.listen(db.engine, "before_cursor_execute", capture)
    try:
        with db.session() as session:  # 50 known (a batch sent again), 100 new
            assert SegmentRepo(session).add_many(specs[1_850:]) == []
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)
    statement, params = next((s, p) for s, p in statements if s.lstrip().startswith("SELECT"))
    with db.engine.connect() as conn:
        # A table this small is cheaper to scan: ask whether the index can answer at all.
        conn.exec_driver_sql("SET enable_seqscan = off")
        plan = "\n".join(conn.exec_driver_sql(f"EXPLAIN {statement}", params).scalars())
    assert "uq_segments_node_path" in plan, plan
    assert "Seq Scan" not in plan, plan
