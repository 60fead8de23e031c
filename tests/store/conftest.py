"""Storage fixtures: every ``db`` test runs on SQLite and on a real PostgreSQL server.

The PostgreSQL server is started once per session (see ``pg_server``); each test gets a fresh
database cloned from a migrated template (``CREATE DATABASE ... TEMPLATE``, a file copy), so
tests never see each other's rows and do not pay for the migrations. SQLite tests get a new
migrated file. Without PostgreSQL installed the PostgreSQL half is skipped with the reason, and
fails under ``CI=true``, like ``tests/conftest.py::require_file``.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.importorskip("sqlalchemy", reason="the server extra is not installed")

from vigil.store import Database

BACKENDS = ("sqlite", "postgresql")
_TEMPLATE = "vigil_template"
_counter = itertools.count()

# -- a throw-away PostgreSQL server ------------------------------------------------------------
# initdb in a temp dir, TCP on 127.0.0.1. PostgreSQL refuses to run as root, so as root the
# server runs as the ``postgres`` user (via ``runuser``) in a folder that user owns. fsync is
# off: the tests kill clients, never the server, and the data folder is deleted afterwards.

SUPERUSER = "postgres"


def find_bindir() -> Path | None:
    """The folder of ``initdb``/``pg_ctl``: Debian's versioned folder, else the PATH."""
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(candidate, "pg_ctl").is_file():
            return Path(candidate)
    found = shutil.which("pg_ctl")
    return Path(found).parent if found else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PgServer:
    bindir: Path
    root: Path
    port: int
    as_user: str | None  # run commands as this OS user (when we are root)

    @property
    def datadir(self) -> Path:
        return self.root / "data"

    def _cmd(self, args: Sequence[str]) -> list[str]:
        prefix = ["runuser", "-u", self.as_user, "--"] if self.as_user else []
        return [*prefix, *args]

    def _run(self, args: Sequence[str], timeout: float = 60) -> None:
        result = subprocess.run(self._cmd(args), capture_output=True, text=True,
                                timeout=timeout, check=False)  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {result.stdout}\n{result.stderr}")

    #: The tests' throw-away settings: the data folder is deleted afterwards.
    TEST_SETTINGS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")

    def start(self) -> None:
        self.init()
        self.launch(self.TEST_SETTINGS)

    def resume(self) -> None:
        """Start the server on its existing data folder (after ``start`` and ``halt``)."""
        self.launch(self.TEST_SETTINGS)

    def init(self) -> None:
        """Create the data folder (``initdb``)."""
        self._run([str(self.bindir / "initdb"), "-D", str(self.datadir), "-A", "trust",
                   "-U", SUPERUSER, "-E", "UTF8", "--no-sync"])  # fmt: skip

    def launch(self, settings: Sequence[str] = (), timeout: float = 60) -> None:
        """Start the server on the data folder with these ``name=value`` settings (the
        tests' throw-away ones; ``bench/city.py`` runs a durable one on a kept folder)."""
        options = " ".join([f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1",
                            *(f"-c {s}" for s in settings)])  # fmt: skip
        self._run([str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-o", options,
                   "-l", str(self.root / "server.log"), "-w", "-t", str(int(timeout)),
                   "start"], timeout=timeout + 10)  # fmt: skip

    def halt(self) -> None:
        """Stop the server the way an administrator restarting it does (``-m fast``: open
        connections are closed, clients see the server go); ``resume`` starts it again."""
        self._run([str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "fast", "-w",
                   "stop"])  # fmt: skip

    def stop(self) -> None:
        subprocess.run(self._cmd([str(self.bindir / "pg_ctl"), "-D", str(self.datadir),
                                  "-m", "immediate", "-w", "stop"]),
                       capture_output=True, timeout=60, check=False)  # fmt: skip

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def admin_sql(self, sql: str) -> None:
        """Run ``sql`` (e.g. CREATE DATABASE) outside a transaction on the ``postgres`` db."""
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user={SUPERUSER} "
                             "dbname=postgres", autocommit=True) as conn:  # fmt: skip
            conn.execute(sql)  # type: ignore[arg-type]


def start_server() -> PgServer:
    bindir = find_bindir()
    if bindir is None:
        raise FileNotFoundError("PostgreSQL's pg_ctl")
    as_user = SUPERUSER if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="vigil-pg-"))
    if as_user is not None:
        entry = pwd.getpwnam(as_user)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    root.chmod(0o700)
    server = PgServer(bindir, root, free_port(), as_user)
    deadline = time.monotonic() + 5
    while True:
        try:
            server.start()
            return server
        except RuntimeError:
            # Another process may have taken the port between free_port() and start.
            if time.monotonic() > deadline:
                shutil.rmtree(root, ignore_errors=True)
                raise
            shutil.rmtree(server.datadir, ignore_errors=True)
            server.port = free_port()


# -- fixtures ----------------------------------------------------------------------------------


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A running PostgreSQL server with a migrated template database."""
    try:
        server = start_server()
    except FileNotFoundError:
        _unavailable("PostgreSQL is not installed (apt-get install postgresql)")
        raise
    try:
        server.admin_sql(f"CREATE DATABASE {_TEMPLATE}")
        template = Database(server.url(_TEMPLATE))
        template.migrate()
        template.close()
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.root, ignore_errors=True)


@pytest.fixture
def own_pg() -> Iterator[PgServer]:
    """A PostgreSQL server for one test alone, which may stop (``halt``) and start
    (``resume``) it mid-test: the session's shared ``pg_server`` must never see that."""
    try:
        server = start_server()
    except FileNotFoundError:
        _unavailable("PostgreSQL is not installed (apt-get install postgresql)")
        raise
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.root, ignore_errors=True)


def new_pg_database(server: PgServer, *, migrated: bool = True) -> str:
    """A URL of a new, empty (or migrated) database on ``server``."""
    name = f"vigil_test_{os.getpid()}_{next(_counter)}"
    template = f" TEMPLATE {_TEMPLATE}" if migrated else ""
    server.admin_sql(f"CREATE DATABASE {name}{template}")
    return server.url(name)


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty, unmigrated database on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'vigil.db'}"
    server: PgServer = request.getfixturevalue("pg_server")
    return new_pg_database(server, migrated=False)


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated database on each backend, closed after the test."""
    if request.param == "sqlite":
        database = Database(f"sqlite:///{tmp_path / 'vigil.db'}")
        database.migrate()
    else:
        server: PgServer = request.getfixturevalue("pg_server")
        database = Database(new_pg_database(server))
    yield database
    database.close()
