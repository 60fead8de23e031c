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
(``RayBackend.promote``: it adopts the running camera actors, as a head that starts does).

The lock's connection can also break under a process that lives on (the database restarted,
a network cut, an administrator's ``pg_terminate_backend``): PostgreSQL has released the lock
then, and another process may have taken it. The supervising process sees it within
``takeover_interval`` (``SupervisionLock.alive``) and steps down (``RayBackend.demote``: it
drains, acknowledges, publishes and places nothing more, and keeps serving the API as a
replica; the camera actors run on), then stands by like any replica.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

#: The advisory lock's key (64 bits, the same in every process): "VIGIL" and a 9, issue 9.
SUPERVISION_LOCK = 0x5649_4749_4C00_0009
#: The advisory lock each standing-by replica holds shared (``SupervisionLock.stand_by``):
#: how a supervisor that stops cleanly sees whom it can hand the cameras over to.
STANDBY_LOCK = 0x5649_4749_4C00_0019


class SupervisionLock:
    """The supervision lock on ``database_url`` (PostgreSQL), held on a connection of its
    own for as long as this process supervises."""

    def __init__(self, database_url: str) -> None:
        from vigil.store import Database

        self._db = Database(database_url)
        self._connection: Any = None
        self.held = False
        #: The PostgreSQL backend process of the lock's connection (``pg_backend_pid``),
        #: while held: what ``pg_terminate_backend`` would end.
        self.backend_pid: int | None = None
        #: Whether this connection holds ``STANDBY_LOCK`` (shared locks count: taken once).
        self.standing_by = False

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
            got, pid = self._connection.execute(
                text("SELECT pg_try_advisory_lock(:key), pg_backend_pid()"),
                {"key": SUPERVISION_LOCK},
            ).one()
        except Exception as exc:  # the database down: try again later, on a new connection
            log.warning("supervision lock not checked (%s: %s)", type(exc).__name__, exc)
            self._drop()
            return False
        self.held = bool(got)
        self.backend_pid = int(pid) if self.held else None
        return self.held

    def stand_by(self) -> None:
        """Say that this process stands by to take over (``STANDBY_LOCK``, shared, on the
        lock's connection: it goes when the connection does, a process killed included).
        A database that does not answer is logged; the next try says it again."""
        from sqlalchemy import text

        if self.standing_by:
            return
        try:
            if self._connection is None:
                self._connection = self._db.engine.connect().execution_options(
                    isolation_level="AUTOCOMMIT"
                )
            self._connection.execute(text("SELECT pg_advisory_lock_shared(:key)"),
                                     {"key": STANDBY_LOCK})  # fmt: skip
        except Exception as exc:  # the database down: try_acquire finds out too
            log.warning("standby not registered (%s: %s)", type(exc).__name__, exc)
            self._drop()
            return
        self.standing_by = True

    def leave_standby(self) -> None:
        """No longer stand by (this process stops): a supervisor stopping meanwhile must not
        hand its cameras to a process that will not take them."""
        from sqlalchemy import text

        if not self.standing_by or self._connection is None:
            return
        try:
            self._connection.execute(text("SELECT pg_advisory_unlock_shared(:key)"),
                                     {"key": STANDBY_LOCK})  # fmt: skip
        except Exception:  # a broken connection: the server released it already
            log.debug("standby lock not unlocked", exc_info=True)
        self.standing_by = False

    def standbys(self) -> int:
        """How many other processes stand by (hold ``STANDBY_LOCK``); 0 when the database
        does not answer. A bigint advisory key is ``classid`` (high 32 bits) and ``objid``
        (low 32) in ``pg_locks``, which lists every database's locks: this one's only."""
        from sqlalchemy import text

        if self._connection is None:
            return 0
        query = text(
            "SELECT count(DISTINCT pid) FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND classid = CAST(:high AS oid) AND objid = CAST(:low AS oid) AND objsubid = 1"
            " AND pid <> pg_backend_pid()"
        )
        try:
            found = self._connection.execute(
                query, {"high": STANDBY_LOCK >> 32, "low": STANDBY_LOCK & 0xFFFF_FFFF}
            ).scalar_one()
        except Exception as exc:  # nobody known to hand over to: end the cameras
            log.warning("standbys not counted (%s: %s)", type(exc).__name__, exc)
            return 0
        return int(found)

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

    def lost(self) -> None:
        """The lock's connection broke: it is closed, and the lock no longer held (the
        next ``try_acquire`` opens a new connection)."""
        self._drop()

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
        self.backend_pid = None
        self.standing_by = False

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
    """Tries the lock every ``interval`` s until it gets it, then calls ``take_over`` (in
    its thread); while this process supervises, checks every ``interval`` s that the lock's
    connection still answers. When it does not (the database restarted, the connection was
    cut: PostgreSQL released the lock, and another process may take it), it calls
    ``step_down`` at once, so that two processes never supervise for longer than that, and
    stands by again: it re-takes the lock on a new connection when nobody else holds it,
    and ``take_over`` runs again. A failing ``take_over`` or ``step_down`` is logged; the
    watch goes on."""

    def __init__(self, lock: SupervisionLock, interval: float, take_over: Callable[[], None],
                 step_down: Callable[[], None] | None = None) -> None:  # fmt: skip
        self.lock, self.interval, self.take_over = lock, interval, take_over
        self.step_down = step_down
        #: Times this process stepped down (lost the lock while it supervised).
        self.step_downs = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vigil-standby", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self.lock.held and not self._acquire():
                return  # stopped
            self._watch()
            if self._stop.is_set():
                return
            self._lost()

    def _acquire(self) -> bool:
        """Try the lock every ``interval`` s until it is taken (then take over: True) or
        the standby stops (False)."""
        while not self._stop.wait(self.interval):
            self.lock.stand_by()
            if self.lock.try_acquire():
                log.warning("took the supervision lock: this server supervises the cluster now")
                if _guarded(self.take_over, "taking over the cluster's supervision failed"):
                    log.warning("took over the cluster's supervision; watching the lock")
                return True
        return False

    def _watch(self) -> None:
        """Return when the lock's connection broke, or the standby stops."""
        while not self._stop.wait(self.interval):
            if not self.lock.alive():
                return

    def _lost(self) -> None:
        self.step_downs += 1
        log.error("the supervision lock's database connection broke (PostgreSQL released "
                  "the lock: another server may supervise now): stepping down, serving as an "
                  "API replica; the lock is tried again every %g s", self.interval)  # fmt: skip
        self.lock.lost()
        if self.step_down is not None:
            _guarded(self.step_down, "stepping down from the cluster's supervision failed")

    def stop(self) -> None:
        """Stop trying and watching; stand by no more (once the thread no longer uses the
        lock's connection)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        if not self._thread.is_alive():
            self.lock.leave_standby()


def _guarded(call: Callable[[], None], failed: str) -> bool:
    """``call()``; False when it raised (logged)."""
    try:
        call()
    except Exception:  # logged; the API serves on, and the standby keeps watching the lock
        log.exception(failed)
        return False
    return True
