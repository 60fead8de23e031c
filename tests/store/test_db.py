"""Database: URLs, SQLite settings, migrations (idempotent, matching the ORM), clear errors."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from vigil.config.models import VigilConfig
from vigil.errors import ConfigError, StorageError
from vigil.store import Database, database_url_for, default_database_url
from vigil.store.db import alembic_config, normalise_url
from vigil.store.models import Base

TABLES = {
    "cameras",
    "events",
    "segments",
    "counts",
    "users",
    "tokens",
    "audit",
    "audit_head",
    "login_attempts",
}


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("sqlite:///vigil.db", "sqlite"),
        ("sqlite:////var/lib/vigil/vigil.db", "sqlite"),
        ("postgresql://u:p@db:5432/vigil", "postgresql+psycopg"),
        ("postgres://u:p@db/vigil", "postgresql+psycopg"),
        ("postgresql+psycopg://u@db/vigil", "postgresql+psycopg"),
        ("postgresql+psycopg2://u@db/vigil", "postgresql+psycopg"),
    ],
)
def test_urls_pick_the_vigil_driver(url: str, driver: str) -> None:
    assert normalise_url(url).drivername == driver


@pytest.mark.parametrize("url", ["mysql://u@h/db", "not a url", "oracle+cx_oracle://u@h/x"])
def test_unsupported_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError, match="sqlite:///PATH or postgresql://"):
        normalise_url(url)


def test_password_is_masked() -> None:
    db = Database("postgresql://vigil:s3cret@127.0.0.1:1/vigil")
    assert "s3cret" not in db.display_url
    assert "s3cret" not in repr(db)
    db.close()


def test_unreachable_server_is_a_storage_error_without_the_password() -> None:
    # Port 1 on loopback: nothing listens, the connection is refused at once.
    db = Database("postgresql://vigil:s3cret@127.0.0.1:1/vigil?connect_timeout=2")
    with pytest.raises(StorageError) as info:
        db.migrate()
    message = str(info.value)
    assert "s3cret" not in message
    assert "127.0.0.1:1" in message
    assert "check it is running" in message
    db.close()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_unwritable_sqlite_folder_is_a_storage_error(tmp_path: Path) -> None:
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(StorageError, match="permissions"):
            Database(f"sqlite:///{tmp_path / 'sub' / 'vigil.db'}")
    finally:
        tmp_path.chmod(0o700)


def test_not_a_database_is_a_storage_error(tmp_path: Path) -> None:
    path = tmp_path / "vigil.db"
    path.write_bytes(b"this is not SQLite" * 512)
    db = Database(f"sqlite:///{path}")
    with pytest.raises(StorageError, match="not a valid SQLite database"):
        db.migrate()
    db.close()


def test_sqlite_connection_settings(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'deep' / 'er' / 'vigil.db'}")  # parents created
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    db.close()


def test_migrate_creates_schema_and_is_idempotent(db_url: str) -> None:
    db = Database(db_url)
    assert db.current_revision() is None
    db.migrate()
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    assert db.current_revision() == head
    with db.engine.connect() as conn:
        assert set(inspect(conn).get_table_names()) >= TABLES
        before = conn.execute(text("SELECT seq, hash FROM audit_head")).all()
    db.migrate()  # already at head: a no-op
    assert db.current_revision() == head
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT seq, hash FROM audit_head")).all() == before
        assert before == [(0, "0" * 64)]
    db.close()


def test_orm_matches_the_migrated_schema(db: Database) -> None:
    with db.engine.connect() as conn, warnings.catch_warnings():
        # SQLAlchemy cannot reflect SQLite's expression indexes (ix_segments_span); the
        # PostgreSQL run compares them, and test_segment_span_index checks SQLite's.
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based")
        warnings.filterwarnings("ignore", "autogenerate skipping metadata-specified expression")
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []


def test_default_url_is_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    assert default_database_url(tmp_path) == f"sqlite:///{tmp_path / 'vigil.db'}"
    assert database_url_for(VigilConfig(data_dir=tmp_path)) == default_database_url(tmp_path)
    configured = VigilConfig(data_dir=tmp_path, database_url="postgresql://u@h/db")
    assert database_url_for(configured) == "postgresql://u@h/db"


def test_session_rolls_back_on_error(db: Database) -> None:
    from vigil.store import CameraRepo

    def failing_unit_of_work() -> None:
        with db.session() as session:
            CameraRepo(session).ensure("front", now=1.0)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        failing_unit_of_work()
    with db.session() as session:
        assert CameraRepo(session).list() == []


def test_sqlite_writer_blocked_past_the_busy_timeout_gets_a_storage_error(tmp_path: Path) -> None:
    from vigil.store import CameraRepo

    url = f"sqlite:///{tmp_path / 'vigil.db'}"
    holder = Database(url)
    holder.migrate()
    waiter = Database(url, busy_timeout_s=0.2)
    with holder.session(immediate=True) as session:
        CameraRepo(session).ensure("front")  # holds the write lock until the block ends
        with (
            pytest.raises(StorageError, match=r"database is locked.*another process"),
            waiter.session(immediate=True) as other,
        ):
            CameraRepo(other).ensure("back")
    with waiter.session() as session:  # the lock is free again
        assert [c.name for c in CameraRepo(session).list()] == ["front"]
    holder.close()
    waiter.close()


def test_migration_gives_old_api_tokens_an_expiry(db_url: str) -> None:
    """Tokens minted when they never expired get 90 days from their creation; sessions (which
    always had an expiry) and tokens that had one keep theirs."""
    db = Database(db_url)
    db.migrate("0001_initial")
    with db.engine.begin() as conn:
        conn.execute(text("INSERT INTO users (id, name, role, password_hash, disabled, created) "
                          "VALUES (1, 'ann', 'admin', 'h', false, 0)"))  # fmt: skip
        for i, (kind, expires) in enumerate([("api", None), ("api", 500.0), ("session", 9.0)]):
            conn.execute(text("INSERT INTO tokens (token_hash, user_id, kind, created, expires) "
                              "VALUES (:h, 1, :k, 100, :e)"),
                         {"h": f"{i:064d}", "k": kind, "e": expires})  # fmt: skip
    db.migrate()
    with db.engine.connect() as conn:
        rows = conn.execute(text("SELECT kind, expires FROM tokens ORDER BY token_hash")).all()
    assert [(k, e) for k, e in rows] == [
        ("api", 100 + 90 * 86400.0),
        ("api", 500.0),
        ("session", 9.0),
    ]
    db.close()
