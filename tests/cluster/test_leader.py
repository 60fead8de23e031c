"""The supervision lock (``vigil.cluster.leader``) on a real PostgreSQL: one holder per
database, released when its process dies, and the standby that takes over once."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

from tests.cluster.conftest import lock_holder, wait_for
from tests.store.conftest import PgServer, new_pg_database
from vigil.cluster.leader import Standby, SupervisionLock
from vigil.store import Database

_HOLDER = """
import sys, time
from vigil.cluster.leader import SupervisionLock
lock = SupervisionLock(sys.argv[1])
assert lock.try_acquire()
print("held", flush=True)
time.sleep(600)
"""


def test_one_process_holds_the_lock_of_a_database_until_it_lets_it_go(
    pg_server: PgServer,
) -> None:
    url = new_pg_database(pg_server, migrated=False)
    first, second = SupervisionLock(url), SupervisionLock(url)
    elsewhere = SupervisionLock(new_pg_database(pg_server, migrated=False))
    try:
        assert first.try_acquire()
        assert first.try_acquire(), "held already: still True"
        assert not second.try_acquire()
        assert elsewhere.try_acquire(), "another database, another lock"
        assert first.alive()
        first.release()
        assert not first.held
        assert second.try_acquire()
    finally:
        for lock in (first, second, elsewhere):
            lock.release()


def test_the_supervisor_counts_the_replicas_standing_by_in_its_database(
    pg_server: PgServer,
) -> None:
    """``standbys()``: the other processes standing by on this database (what a clean stop
    hands over to), not those of another database, nor a standby that went, nor itself."""
    url = new_pg_database(pg_server, migrated=False)
    supervisor, one, two = SupervisionLock(url), SupervisionLock(url), SupervisionLock(url)
    elsewhere = SupervisionLock(new_pg_database(pg_server, migrated=False))
    try:
        assert supervisor.try_acquire()
        assert supervisor.standbys() == 0
        elsewhere.stand_by()
        assert supervisor.standbys() == 0, "a standby of another database counted"
        one.stand_by()
        one.stand_by()  # again each round: still one
        two.stand_by()
        assert supervisor.standbys() == 2
        supervisor.stand_by()
        assert supervisor.standbys() == 2, "the supervisor counted itself"
        one.lost()  # its connection closed: as for a process that died
        wait_for(lambda: supervisor.standbys() == 1, 30, "a standby that went still counts")
        assert not one.try_acquire(), "standing by takes nothing"
        two.leave_standby()  # it stops: nobody to hand over to
        assert supervisor.standbys() == 0
    finally:
        for lock in (supervisor, one, two, elsewhere):
            lock.release()


def test_a_standby_that_stops_stands_by_no_more(pg_server: PgServer) -> None:
    """A replica that stops says so at once: a supervisor stopping at the same time (a
    whole deployment stopped) ends its cameras instead of handing them to nobody."""
    url = new_pg_database(pg_server, migrated=False)
    supervisor, replica = SupervisionLock(url), SupervisionLock(url)
    standby = Standby(replica, 0.1, lambda: None)
    try:
        assert supervisor.try_acquire()
        standby.start()
        wait_for(lambda: supervisor.standbys() == 1, 30, "the replica does not stand by")
        standby.stop()
        assert supervisor.standbys() == 0, "a stopped replica still stands by"
    finally:
        standby.stop()
        for lock in (supervisor, replica):
            lock.release()


def test_a_holder_killed_frees_the_lock_and_the_standby_takes_over_once(
    pg_server: PgServer,
) -> None:
    url = new_pg_database(pg_server, migrated=False)
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, url], stdout=subprocess.PIPE,
                              text=True)  # fmt: skip
    lock = SupervisionLock(url)
    took: list[float] = []
    standby = Standby(lock, 0.2, lambda: took.append(time.monotonic()))
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        assert not lock.try_acquire()
        standby.start()
        time.sleep(1.0)
        assert took == [], "no take-over while the holder lives"
        killed = time.monotonic()
        holder.kill()  # kill -9: its connection closes with it
        holder.wait()
        wait_for(lambda: bool(took), 60, "the standby did not take over")
        print(f"\nlock free and taken {took[0] - killed:.2f} s after the holder's kill")
        time.sleep(1.0)
        assert len(took) == 1, "taken over once"
        assert lock.held
    finally:
        standby.stop()
        holder.kill()
        holder.wait()
        holder.stdout.close()  # type: ignore[union-attr]
        lock.release()


def test_a_take_over_that_fails_leaves_the_standby_running(pg_server: PgServer) -> None:
    url = new_pg_database(pg_server, migrated=False)
    lock = SupervisionLock(url)
    called = threading.Event()

    def fails() -> None:
        called.set()
        raise RuntimeError("the cluster is unreachable")

    standby = Standby(lock, 0.1, fails)
    try:
        standby.start()
        assert called.wait(60)
        time.sleep(0.5)
        assert standby._thread.is_alive(), "it logs, and keeps watching the lock"
    finally:
        standby.stop()
        lock.release()


def _terminate(url: str, pid: int) -> None:
    """Cut a backend's connection on the server's side (what a database restart or a
    network cut does to the lock's connection): PostgreSQL releases its locks."""
    from sqlalchemy import text

    db = Database(url)
    try:
        with db.engine.connect() as connection:
            assert connection.execute(text("SELECT pg_terminate_backend(:pid)"),
                                      {"pid": pid}).scalar()  # fmt: skip
    finally:
        db.close()


def test_a_supervisor_whose_lock_connection_breaks_steps_down_then_takes_the_lock_again(
    pg_server: PgServer,
) -> None:
    url = new_pg_database(pg_server, migrated=False)
    lock = SupervisionLock(url)
    calls: list[str] = []
    standby = Standby(lock, 0.2, lambda: calls.append("take over"),
                      lambda: calls.append("step down"))  # fmt: skip
    try:
        assert lock.try_acquire()  # the head: it supervises from the start
        first = lock.backend_pid
        assert first is not None
        holder = Database(url)
        try:
            assert lock_holder(holder) == first, "pg_locks names the lock's backend"
        finally:
            holder.close()
        standby.start()
        time.sleep(0.5)
        assert calls == [], "the connection answers: nothing to do"
        _terminate(url, first)
        wait_for(lambda: calls == ["step down", "take over"], 60,
                 "no step-down and re-take after the lock's connection broke")  # fmt: skip
        assert lock.held
        assert lock.backend_pid not in (None, first), "taken again on a new connection"
        assert standby.step_downs == 1
        assert standby._thread.is_alive()
    finally:
        standby.stop()
        lock.release()


_STANDBY = """
import sys, time
from vigil.cluster.leader import Standby, SupervisionLock
from vigil.store import Database
lock = SupervisionLock(sys.argv[1])
standby = Standby(lock, 0.1, lambda: print("took", flush=True))
standby.start()
print("standing by", flush=True)
time.sleep(600)
"""


def test_while_the_supervisor_is_down_another_process_takes_over_and_it_stays_a_replica(
    pg_server: PgServer,
) -> None:
    url = new_pg_database(pg_server, migrated=False)
    lock = SupervisionLock(url)
    calls: list[str] = []
    # This process looks at its lock every 1 s, the other tries every 0.1 s: the other
    # gets the lock first once it is free.
    standby = Standby(lock, 1.0, lambda: calls.append("take over"),
                      lambda: calls.append("step down"))  # fmt: skip
    other = subprocess.Popen([sys.executable, "-c", _STANDBY, url], stdout=subprocess.PIPE,
                             text=True)  # fmt: skip
    try:
        assert other.stdout is not None
        assert lock.try_acquire()
        standby.start()
        assert other.stdout.readline().strip() == "standing by"
        pid = lock.backend_pid
        assert pid is not None
        _terminate(url, pid)
        assert other.stdout.readline().strip() == "took", "the other process took over"
        wait_for(lambda: calls == ["step down"], 60, "this process did not step down")
        time.sleep(3.0)  # several of this standby's tries
        assert calls == ["step down"], "the lock is the other's: this one stays a replica"
        assert not lock.held
        other.kill()  # the other one dies: this one takes over again
        other.wait()
        wait_for(lambda: calls == ["step down", "take over"], 60, "not taken back")
        assert lock.held
    finally:
        standby.stop()
        other.kill()
        other.wait()
        other.stdout.close()  # type: ignore[union-attr]
        lock.release()
