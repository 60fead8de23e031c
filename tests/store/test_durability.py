"""``kill -9`` of a process writing events: every commit that returned survives, the database
stays consistent, and writing resumes. On SQLite (WAL file) and PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from sqlalchemy import select, text

from vigil.store import AuditLog, Database, EventRepo
from vigil.store.models import EventRow
from vigil.types import Event, EventState

# Writes events (start, then end: two commits per event) and an audit record every 10 events,
# printing each event id only after its end commit returned.
_WRITER = textwrap.dedent("""
    import sys
    from vigil.store import AuditLog, Database, EventRepo
    from vigil.types import Event, EventState
    db = Database(sys.argv[1])
    log = AuditLog(db)
    i = 0
    while True:
        ev = Event(id=f"kill-{i:06d}", camera_id="front", label="person", class_id=0,
                   track_id=i, start=1e9 + i, end=None, state=EventState.START, live=True,
                   zones=["door"])
        with db.session() as s:
            EventRepo(s).upsert(ev)
        ev.end, ev.state = ev.start + 1, EventState.END
        with db.session() as s:
            EventRepo(s).upsert(ev)
        if i % 10 == 0:
            log.append("system", "event.end", ev.id)
        print(ev.id, flush=True)
        i += 1
""")

_MIN_COMMITTED = 150


def _write_then_kill(url: str) -> list[str]:
    """Run the writer until it reported enough commits, SIGKILL it mid-stream, return the ids
    it reported (each one committed before it was printed)."""
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, url], stdout=subprocess.PIPE,
                            text=True)  # fmt: skip
    assert proc.stdout is not None
    reported: list[str] = []
    deadline = time.monotonic() + 120
    while len(reported) < _MIN_COMMITTED and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        reported.append(line.strip())
    os.kill(proc.pid, signal.SIGKILL)  # while it is writing: no clean shutdown of any kind
    rest, _ = proc.communicate(timeout=30)
    reported += rest.split()
    assert proc.returncode == -signal.SIGKILL
    assert len(reported) >= _MIN_COMMITTED, "the writer did not get going"
    return reported


def _check_and_resume(url: str, reported: list[str]) -> None:
    db = Database(url)
    with db.session() as s:
        rows = {r.id: r for r in s.scalars(select(EventRow))}
    missing = [i for i in reported if i not in rows]
    assert missing == []
    assert all(rows[i].state == "end" and rows[i].end is not None for i in reported)
    # Anything past the last report was at most one event in flight.
    assert len(rows) - len(reported) <= 1
    report = AuditLog(db).verify()
    assert report.ok, report.problem
    assert report.records >= len(reported) // 10
    with db.session() as s:  # writing resumes
        EventRepo(s).upsert(
            Event(
                id="after",
                camera_id="front",
                label="person",
                class_id=0,
                track_id=1,
                start=0.0,
                end=None,
                state=EventState.START,
            )
        )
    AuditLog(db).append("system", "restart", "-")
    assert AuditLog(db).verify().ok
    db.close()


def test_kill_9_loses_no_committed_event(db: Database) -> None:
    url = db.engine.url.render_as_string(hide_password=False)
    db.close()
    reported = _write_then_kill(url)
    if db.backend == "sqlite":
        # The writer was in WAL mode and died with its WAL file still there.
        assert Path(f"{db.engine.url.database}-wal").exists()
    _check_and_resume(url, reported)
    if db.backend == "sqlite":
        again = Database(url)
        with again.engine.connect() as conn:
            assert conn.execute(text("PRAGMA integrity_check")).scalar() == "ok"
            assert conn.execute(text("PRAGMA foreign_key_check")).all() == []
        again.close()
