"""``Database``: one engine per URL, sessions, migrations, and errors translated at the edge.

Supported URLs:

* ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db`` — the embedded default.
  Every connection sets ``journal_mode=WAL`` (readers never block the writer),
  ``synchronous=NORMAL`` (in WAL mode a commit survives a crash of the process, though the
  last commits may be lost if the *machine* loses power: the usual trade for a 24/7 writer),
  ``foreign_keys=ON`` and a busy timeout, so a second writer waits instead of failing at once.
  The parent folder is created. Transactions begin with a plain ``BEGIN``; a session opened
  with ``immediate=True`` begins with ``BEGIN IMMEDIATE`` and takes the write lock up front,
  which is how SQLite serialises read-then-write sequences such as audit appends.
* ``postgresql://user:password@host:port/db`` (or ``postgres://``) — driven by psycopg 3
  (``postgresql+psycopg://`` is accepted as is).

Nothing connects at import time; the engine is built when a ``Database`` is created and the
first connection is made on first use. Driver errors become ``StorageError`` naming the
database (password masked) and what to do.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from vigil.config.models import VigilConfig
from vigil.errors import ConfigError, StorageError


def _json_default(value: Any) -> Any:
    """What ``json.dumps`` cannot encode by itself: numpy scalars (a detector's ints and
    floats) become Python's; anything else is an error naming the type."""
    item = getattr(value, "item", None)
    if callable(item):
        return item()
    raise TypeError(f"cannot store a {type(value).__name__} in a JSON column: {value!r}")


def json_dumps(value: Any) -> str:
    """The JSON of what Vigil stores (JSON columns, batched rows): ``json.dumps`` that also
    takes numpy scalars."""
    return json.dumps(value, default=_json_default)


#: How long a SQLite connection waits for another writer's lock before giving up.
SQLITE_BUSY_TIMEOUT_S = 30.0

#: The file name of the embedded database inside ``data_dir``.
DEFAULT_SQLITE_NAME = "vigil.db"

_IMMEDIATE = "vigil_sqlite_immediate"
_MIGRATIONS = Path(__file__).resolve().parent / "migrations"

Backend = Literal["sqlite", "postgresql"]


def default_database_url(data_dir: Path) -> str:
    """The embedded default: a SQLite file ``vigil.db`` inside the data folder."""
    return f"sqlite:///{Path(data_dir) / DEFAULT_SQLITE_NAME}"


def database_url_for(config: VigilConfig) -> str:
    """The database URL of a ``VigilConfig``: its ``database_url`` or the embedded default."""
    return config.database_url or default_database_url(config.data_dir)


def normalise_url(url: str) -> URL:
    """Parse ``url`` and pick the driver Vigil uses for its backend (psycopg 3 for PostgreSQL)."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(
            f"database_url {url!r} is not a database URL; use sqlite:///PATH or "
            "postgresql://USER:PASSWORD@HOST:PORT/DB"
        ) from exc
    # Split by hand: SQLAlchemy's own accessors load the dialect, which fails for "postgres".
    backend, _, driver = parsed.drivername.partition("+")
    if backend in ("postgresql", "postgres") and driver in ("", "psycopg2", "psycopg"):
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite" and driver in ("", "pysqlite"):
        return parsed.set(drivername="sqlite")
    raise ConfigError(
        f"database_url {parsed.render_as_string(hide_password=True)!r}: unsupported database "
        f"{parsed.drivername!r}; use sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DB"
    )


class Database:
    """A database Vigil stores into: engine, session factory and migrations for one URL.

    Thread-safe: sessions come from a pool. Not fork-safe: build one per process.
    ``busy_timeout_s``: how long a SQLite writer waits for another's lock (ignored by
    PostgreSQL, where row locks wait until the holder commits).
    """

    def __init__(
        self, url: str, *, echo: bool = False, busy_timeout_s: float = SQLITE_BUSY_TIMEOUT_S
    ) -> None:
        self._url = normalise_url(url)
        self.busy_timeout_s = busy_timeout_s
        self.backend: Backend = (
            "sqlite" if self._url.get_backend_name() == "sqlite" else "postgresql"
        )
        self.engine = self._build_engine(echo)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def display_url(self) -> str:
        """The URL with its password masked: safe in logs and error messages."""
        return self._url.render_as_string(hide_password=True)

    @property
    def url(self) -> str:
        """The URL with its password: for another process that must open the same database
        (a camera actor on a cluster node); never log it (``display_url`` is for that)."""
        return self._url.render_as_string(hide_password=False)

    def __repr__(self) -> str:
        return f"Database({self.display_url!r})"

    # -- engine -------------------------------------------------------------------------------

    def _build_engine(self, echo: bool) -> Engine:
        if self.backend == "postgresql":
            return create_engine(
                self._url, echo=echo, pool_pre_ping=True, json_serializer=json_dumps
            )
        database = self._url.database
        memory = database in (None, "", ":memory:")
        if not memory:
            self._make_parent(Path(str(database)))
        engine = create_engine(
            self._url, echo=echo,
            connect_args={"timeout": self.busy_timeout_s, "check_same_thread": False},
            poolclass=StaticPool if memory else None, json_serializer=json_dumps,
        )  # fmt: skip
        busy_ms = int(self.busy_timeout_s * 1000)

        def on_connect(dbapi_connection: Any, _record: Any) -> None:
            _sqlite_on_connect(dbapi_connection, busy_ms)

        event.listen(engine, "connect", on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine

    def _make_parent(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"cannot create the folder of the database {self.display_url}: {exc.strerror}; "
                "check data_dir and its permissions"
            ) from exc

    # -- sessions -----------------------------------------------------------------------------

    @contextmanager
    def session(self, *, immediate: bool = False) -> Iterator[Session]:
        """A unit of work: commits when the block ends, rolls back if it raises.

        ``immediate=True`` takes the write lock at the start on SQLite (``BEGIN IMMEDIATE``);
        on PostgreSQL it changes nothing (lock rows with ``SELECT ... FOR UPDATE`` instead).
        Driver errors leave as ``StorageError``.
        """
        with self.translate_errors():
            session = self._sessions()
            try:
                if immediate and self.backend == "sqlite":
                    session.connection(execution_options={_IMMEDIATE: True})
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise
            finally:
                session.close()

    @contextmanager
    def translate_errors(self) -> Iterator[None]:
        """Turn SQLAlchemy and driver errors raised in the block into ``StorageError``."""
        try:
            yield
        except StorageError:
            raise
        except (SQLAlchemyError, sqlite3.Error, OSError) as exc:
            raise StorageError(describe_error(self.display_url, exc)) from exc

    # -- schema -------------------------------------------------------------------------------

    def migrate(self, revision: str = "head") -> None:
        """Bring the schema up to ``revision`` with Alembic (a no-op when already there).

        The Alembic configuration is built in code and points at the migrations shipped inside
        the package, so no ``alembic.ini`` is needed where Vigil is installed.
        """
        from alembic import command

        with self.translate_errors(), self.engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, revision)

    def current_revision(self) -> str | None:
        """The Alembic revision the database is at; None for a database never migrated."""
        from alembic.runtime.migration import MigrationContext

        with self.translate_errors(), self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    def close(self) -> None:
        """Close every pooled connection. The object must not be used afterwards."""
        self.engine.dispose()


def alembic_config() -> Any:
    """An Alembic ``Config`` for Vigil's packaged migrations (no ini file)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    return config


def _sqlite_on_connect(dbapi_connection: Any, busy_ms: int) -> None:
    # Hand transaction control to SQLAlchemy's "begin" event below: pysqlite's own implicit
    # BEGIN comes too late (only before DML) to make a read-then-write sequence atomic.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {busy_ms}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _sqlite_on_begin(connection: Any) -> None:
    immediate = connection.get_execution_options().get(_IMMEDIATE, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


_HINTS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("database is locked", "database table is locked"),
     "another process holds the write lock for longer than the busy timeout; stop the other "
     "writer or use PostgreSQL for several writers"),
    (("disk is full", "no space left", "disk full"),
     "the disk is full; free space or lower the retention quotas"),
    (("unable to open database file", "readonly database", "read-only", "permission denied"),
     "the database file or its folder cannot be written; check data_dir and its permissions"),
    (("malformed", "not a database", "file is encrypted"),
     "the file is not a valid SQLite database; restore it from a backup or point "
     "database_url elsewhere"),
    (("password authentication failed", "no password supplied", "role \"", "authentication"),
     "the server refused the credentials; check the user and password in database_url"),
    (("does not exist",),
     "the database or table does not exist; create the database, then run the migrations"),
    (("connection refused", "could not connect", "connection failed", "timeout expired",
      "could not translate host name", "server closed the connection", "connection is bad"),
     "cannot reach the database server; check it is running and the host/port in "
     "database_url"),
)  # fmt: skip


def describe_error(display_url: str, exc: BaseException) -> str:
    """A one-paragraph message for a database failure: what happened, where, and the fix."""
    original = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    text = " ".join(str(original).split())
    lowered = text.lower()
    for needles, hint in _HINTS:
        if any(needle in lowered for needle in needles):
            return f"database {display_url}: {text}; {hint}"
    return f"database {display_url}: {text}"
