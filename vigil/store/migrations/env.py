"""Alembic environment: runs migrations on the connection ``Database.migrate`` hands over.

``Database.migrate`` puts an open connection in ``config.attributes["connection"]``; the
``sqlalchemy.url`` option is a fallback for running Alembic by hand. ``render_as_batch`` makes
future ``ALTER``s work on SQLite (which rebuilds the table), and is harmless on PostgreSQL.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from vigil.store.models import Base


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("run migrations through vigil.store.Database.migrate()")
    with create_engine(url).begin() as own:
        _run(own)


run_migrations_online()
