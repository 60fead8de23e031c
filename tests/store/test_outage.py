"""A PostgreSQL restart under the event store: writes wait in order and land afterwards.

A real PostgreSQL server of its own (``tests.store.conftest.start_server``: this test stops
it, which the session's shared server must not see) is stopped with ``pg_ctl -m fast`` while
events start, update and end and rule hits are counted, then started again. Nothing raises
into the camera's thread, the writes are counted as queued, and once the server is back
every row is there with its last state and every hit counted, without anyone asking.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

pytest.importorskip("sqlalchemy", reason="the server extra is not installed")

from sqlalchemy.exc import IntegrityError, OperationalError

from tests.store.conftest import PgServer
from vigil.errors import StorageError
from vigil.store import CountRepo, Database, EventFilter, EventRepo
from vigil.store.backlog import WriteBacklog, transient
from vigil.store.sink import StoreEventSink
from vigil.types import Event, EventState, RuleEvent, RuleEventKind

T0 = 1_700_000_000.0


def wait_for(what: Callable[[], bool], timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} within {timeout} s")
        time.sleep(0.2)


def event(n: int, state: EventState) -> Event:
    return Event(id=f"cam-{n}", camera_id="cam", label="person", class_id=0, track_id=n,
                 start=T0 + n, end=None if state is EventState.START else T0 + n + 5,
                 state=state, live=True)  # fmt: skip


def hit(n: int) -> RuleEvent:
    return RuleEvent(rule_id="door", kind=RuleEventKind.ENTER, camera_id="cam", track_id=n,
                     class_id=0, label="person", time=T0 + n, point=(0.5, 0.5))  # fmt: skip


def test_events_and_counts_written_while_postgresql_restarts_are_not_lost(
    own_pg: PgServer,
) -> None:
    own_pg.admin_sql("CREATE DATABASE vigil_outage")
    db = Database(own_pg.url("vigil_outage"))
    db.migrate()
    sink = StoreEventSink(db)
    sink.backlog.retry_s = 0.2
    try:
        sink.publish(event(0, EventState.START))
        sink.publish(event(0, EventState.END))
        assert sink.backlog.stats.queued == 0

        own_pg.halt()
        for n in range(1, 6):  # events that live and die while the server is down
            sink.publish(event(n, EventState.START))
            sink.count([hit(n)])
            sink.publish(event(n, EventState.END))
        sink.publish(event(6, EventState.START))  # still open when the server returns
        down = sink.backlog.stats
        assert (down.failing, down.queued, down.dropped) == (True, 16, 0), down

        own_pg.resume()
        wait_for(lambda: sink.backlog.stats.queued == 0, 60, "the backlog did not drain")
        sink.publish(event(6, EventState.END))
        stats = sink.backlog.stats
        assert (stats.late, stats.dropped, stats.failing) == (16, 0, False), stats

        with db.session() as session:
            rows = {r.id: r.state for r in EventRepo(session).list(EventFilter(camera="cam")).items}
            counts = CountRepo(session).series("cam", since=T0 - 3600, until=T0 + 3600)
        assert rows == {f"cam-{n}": "end" for n in range(7)}, rows
        assert sum(p.count for p in counts) == 5, counts
    finally:
        sink.close()
        db.close()


def test_a_write_that_can_never_work_is_not_retried() -> None:
    """A constraint violation raises as before (nothing queued to block later writes); a
    lost connection is queued."""
    backlog = WriteBacklog(retry_s=3600)

    def broken() -> None:
        raise StorageError("duplicate") from IntegrityError("INSERT", {}, Exception("dup"))

    def unreachable() -> None:
        raise StorageError("down") from OperationalError("SELECT", {}, Exception("refused"))

    assert not transient(StorageError("x"))
    with pytest.raises(StorageError, match="duplicate"):
        backlog.submit(broken, "broken")
    assert backlog.stats.queued == 0
    backlog.submit(unreachable, "unreachable")
    assert backlog.stats.queued == 1
    backlog.close()
    assert backlog.stats.dropped == 1, "what is left at close is counted as lost"
