"""``kill -9`` of ``vigil serve`` during heavy event writes loses no committed event, and a
restart on the same data directory resumes cleanly (events left open are closed).

Eight synthetic cameras at 25 fps, each with a counting line, write events and counts into
SQLite; the test reads the committed events just before the ``SIGKILL``, then checks the
database file, finds every one of them again, restarts ``vigil serve`` and sees new events
while no event of the killed run stays open.
"""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("sqlalchemy", reason="the server extra is not installed")

from vigil.store import Database, EventFilter, EventRepo
from vigil.store.models import EventRow
from vigil.types import Event, EventState

CAMERAS = 8


def config_text(data: Path, workers: int = 0) -> str:
    cameras = "".join(
        f"  cam{i}:\n"
        f'    sources: [{{url: "synthetic://?width=320&height=180&fps=25&duration={4 + i}"}}]\n'
        "    lines: {middle: {points: [[0.05, 0.5], [0.95, 0.5]]}}\n"
        for i in range(CAMERAS)
    )
    return (
        "detect: {model: motion, fps: 25}\n"
        "tracker: {new_track_threshold: 0.5, high_threshold: 0.4}\n"
        f"data_dir: {data}\n"
        f"server: {{worker_processes: {workers}}}\n"
        f"cameras:\n{cameras}"
    )


def serve(config: Path) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "vigil.cli", "serve", "--config", str(config), "--no-api"]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def all_events(db_file: Path) -> dict[str, EventRow]:
    """Every event row, read page by page through the repository (each must load)."""
    db = Database(f"sqlite:///{db_file}")
    try:
        with db.session() as session:
            repo = EventRepo(session)
            rows: dict[str, EventRow] = {}
            page = repo.list(EventFilter(), limit=1000)
            while True:
                rows.update((r.id, r) for r in page.items)
                if page.next_cursor is None:
                    return rows
                page = repo.list(EventFilter(), limit=1000, after=page.next_cursor)
    except Exception:
        return {}  # not created or not migrated yet
    finally:
        db.close()


def wait_until(process: subprocess.Popen[bytes], what: Callable[[], bool], timeout: float,
               message: str) -> None:  # fmt: skip
    deadline = time.monotonic() + timeout
    while not what():
        if process.poll() is not None:
            output = process.stdout.read().decode() if process.stdout else ""
            raise AssertionError(f"vigil serve exited ({process.returncode}): {output}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} within {timeout} s")
        time.sleep(0.1)


def integrity(db_file: Path) -> str:
    with sqlite3.connect(db_file) as connection:
        return str(connection.execute("PRAGMA integrity_check").fetchone()[0])


def children(pid: int) -> set[int]:
    """The processes ``pid`` started (its worker processes, multiprocessing's helpers)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found.update(int(c) for c in (task / "children").read_text().split())
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie does not: it only waits to be reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 2], ids=["threads", "processes"])
def test_kill_9_loses_no_committed_event_and_restart_resumes(tmp_path: Path, workers: int) -> None:
    config = tmp_path / "vigil.yaml"
    config.write_text(config_text(tmp_path / "data", workers))
    db_file = tmp_path / "data" / "vigil.db"
    process = serve(config)
    try:
        wait_until(process, lambda: len(all_events(db_file)) >= 12, 60,
                   "no burst of events reached the database")  # fmt: skip
        committed = all_events(db_file)
        spawned = children(process.pid)
        if workers:
            assert len(spawned) >= workers, f"the worker processes: {spawned}"
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    killed_at = time.time()
    assert process.returncode == -signal.SIGKILL
    # Nothing the killed server started lives on (an orphaned worker would keep decoding).
    deadline = time.monotonic() + 60
    while left := [p for p in spawned if alive(p)]:
        assert time.monotonic() < deadline, f"orphans of the killed server: {left}"
        time.sleep(0.2)

    assert integrity(db_file) == "ok"
    after_kill = all_events(db_file)
    assert after_kill, "the database still reads"
    missing = sorted(set(committed) - set(after_kill))
    assert not missing, f"committed events lost by kill -9: {missing}"
    for event_id, row in committed.items():
        if row.end is not None:  # what was committed as ended stays ended, unchanged
            assert after_kill[event_id].end == row.end
    open_before = [r.id for r in after_kill.values() if r.end is None]

    process = serve(config)
    try:

        def resumed() -> bool:
            rows = all_events(db_file)
            new = [r for r in rows.values() if r.start > killed_at]
            return len(new) >= 5 and all(rows[i].end is not None for i in after_kill)

        wait_until(process, resumed, 60, "the restarted server wrote no new events")
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=30)[0].decode()
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, output
    assert integrity(db_file) == "ok"
    final = all_events(db_file)
    for event_id in open_before:
        row = final[event_id]
        assert row.state == "end"
        assert row.end is not None
        assert row.start <= row.end <= killed_at + 1
    still_open = [(r.id, r.state, r.start, r.updated) for r in final.values() if r.end is None]
    assert not still_open, f"a clean stop leaves nothing open: {still_open} {output[-3000:]}"


def _event(camera: str, track: int, start: float, *, live: bool = True,
           end: float | None = None) -> Event:  # fmt: skip
    return Event(
        id=f"{camera}-{start:.3f}-{track}",
        camera_id=camera,
        label="person",
        class_id=0,
        track_id=track,
        start=start,
        end=end,
        state=EventState.END if end is not None else EventState.START,
        live=live,
    )


def test_close_dangling_ends_open_events_at_their_last_update(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'vigil.db'}")
    db.migrate()
    t0 = 1_714_564_800.0
    try:
        with db.session() as session:
            repo = EventRepo(session)
            repo.upsert(_event("a", 1, t0), now=t0 + 7)  # open, live: ends at its update
            repo.upsert(_event("a", 2, t0, end=t0 + 3), now=t0 + 3)  # ended: untouched
            repo.upsert(_event("a", 3, 12.5, live=False), now=t0 + 9)  # a file's: end = start
            repo.upsert(_event("a", 4, t0 + 50), now=t0 + 99)  # updated "after" now: capped
            repo.upsert(_event("b", 1, t0), now=t0 + 5)  # another camera: untouched
        with db.session(immediate=True) as session:
            assert EventRepo(session).close_dangling("a", now=t0 + 60) == 3
        with db.session() as session:
            rows = {(r.camera, r.track_id): r for r in EventRepo(session).list().items}
        expected = {("a", 1): t0 + 7, ("a", 2): t0 + 3, ("a", 3): 12.5, ("a", 4): t0 + 60,
                    ("b", 1): None}  # fmt: skip
        assert {k: r.end for k, r in rows.items()} == expected
        assert {k: r.state for k, r in rows.items()} == {
            k: "start" if v is None else "end" for k, v in expected.items()
        }
    finally:
        db.close()
