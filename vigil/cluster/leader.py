"""Who supervises the cluster's cameras: the ``vigil serve`` holding a PostgreSQL lock.

Every ``vigil serve`` in cluster mode (the head, and each ``--replica``) serves the API; only
one *supervises*: places and adopts the camera groups, drains their outboxes (MQTT,
webhooks, the live feed), hands restarted actors their settings, keeps a media actor on
every node, and ends it all on a clean stop. That one is whichever holds the session-level
advisory lock ``SUPERVISION_LOCK`` on the cluster's PostgreSQL (``SupervisionLock``): the
database every process already reaches, so no other coordinator is needed.

A process that does not get it at start serves as a replica and stands by
(``Standby``): every ``cluster.takeover_interval`` seconds it tries the lock again. PostgreSQL
releases a session lock when its connection ends, which for a process killed (``-9``, a
crash, its machine lost) is when the server sees the connection close: at once for a
process that died on a machine that still runs (its kernel closes the socket), after TCP
keepalive gives up for a machine gone. The standby that gets it takes over
(``ReplicaBackend.promote``: it adopts the running camera actors, as a head that starts does).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

#: The advisory lock's key (64 bits, the same in every process): "VIGIL" and a 9, issue 9.
SUPERVISION_LOCK = 0x5649_4749_4C00_0009


class SupervisionLock:
    """The supervision lock on ``database_url`` (PostgreSQL), held on a connection of its
    own for as long as this process supervises."""

    def __init__(self, database_url: str) -> None:
        from vigil.store import Database

        self._db = Database(database_url)
        self._connection: Any = None
        self.held = False

    def try_acquire(self) -> bool:
        """Take the lock if nobody holds it; True when this process holds it (now or
        already). A database that does not answer is a False, logged."""
        from sqlalchemy import text

        if self.held:
            return True
        try:
            if self._connection is None:
                self._connection = self._db.engine.connect().execution_options(
                    isolation_level="AUTOCOMMIT"
                )
            got = self._connection.execute(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": SUPERVISION_LOCK}
            ).scalar()
        except Exception as exc:  # the database down: try again later, on a new connection
            log.warning("supervision lock not checked (%s: %s)", type(exc).__name__, exc)
            self._drop()
            return False
        self.held = bool(got)
        return self.held

    def alive(self) -> bool:
        """Whether the connection that holds the lock still answers (if it broke, the
        server released the lock, and another process may take it)."""
        from sqlalchemy import text

        if not self.held or self._connection is None:
            return False
        try:
            self._connection.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    def _drop(self) -> None:
        """Close the lock's connection for good (never back into the pool, where it would
        hold the lock on)."""
        if self._connection is not None:
            try:
                self._connection.invalidate()
                self._connection.close()
            except Exception:  # a broken connection: nothing left to close
                log.debug("supervision lock connection not closed cleanly", exc_info=True)
        self._connection = None
        self.held = False

    def release(self) -> None:
        """Let the lock go: unlocked first, so that another process can take it as soon as
        this returns (a closed connection's lock goes only when the server has seen it
        close)."""
        from sqlalchemy import text

        if self.held and self._connection is not None:
            try:
                self._connection.execute(text("SELECT pg_advisory_unlock(:key)"),
                                         {"key": SUPERVISION_LOCK})  # fmt: skip
            except Exception:  # a broken connection: the server released it already
                log.debug("supervision lock not unlocked", exc_info=True)
        self._drop()
        self._db.close()


class Standby:
    """Tries the lock every ``interval`` s until it gets it, then calls ``take_over`` once
    (in its thread); while this process supervises, checks that the lock's connection still
    answers, and says so in the log when it does not (another process may supervise too
    then: the database was restarted or unreachable)."""

    def __init__(self, lock: SupervisionLock, interval: float,
                 take_over: Callable[[], None]) -> None:  # fmt: skip
        self.lock, self.interval, self.take_over = lock, interval, take_over
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vigil-standby", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self.lock.held and not self._stop.wait(self.interval):
            if self.lock.try_acquire():
                log.warning("took the supervision lock: this server supervises the cluster now")
                try:
                    self.take_over()
                except Exception:  # logged; the API serves on, as a replica would
                    log.exception("taking over the cluster's supervision failed")
        warned = False
        while not self._stop.wait(self.interval):
            if not self.lock.alive() and not warned:
                warned = True
                log.error("the supervision lock's database connection broke: another server "
                          "may supervise the cluster too; restart this one")  # fmt: skip

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
