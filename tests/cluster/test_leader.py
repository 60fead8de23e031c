"""The supervision lock (``vigil.cluster.leader``) on a real PostgreSQL: one holder per
database, released when its process dies, and the standby that takes over once."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

from tests.cluster.conftest import wait_for
from tests.store.conftest import PgServer, new_pg_database
from vigil.cluster.leader import Standby, SupervisionLock

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
