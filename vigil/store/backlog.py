"""``WriteBacklog``: database writes that failed, kept in order and retried until they land.

A database restart (PostgreSQL upgraded, failed over, or simply restarted) must not lose the
events the cameras produce meanwhile. A write that fails for a reason that passes (the server
is unreachable, the connection dropped, SQLite is locked or its disk full: SQLAlchemy's
``OperationalError`` and kin) is queued instead of dropped, and so is every later write
while the queue is not empty (so one event's start, updates and end reach the database in
order, and a camera thread never waits on a database that is down: only the first write
notices). A daemon thread retries the oldest write every
``retry_s`` seconds; when the database answers again the queue drains by itself.

What is still lost, and counted in ``stats.dropped`` and logged: the oldest writes once more
than ``limit`` are queued (the bound on memory for a very long outage), a queued write that
fails for a reason that does not pass (a constraint, bad data: retrying would block every
later write for ever), and what is still queued at ``close()``. Such a write submitted while
nothing waits raises its ``StorageError`` as before.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from vigil.errors import StorageError

log = logging.getLogger(__name__)

#: Writes kept while the database is down; beyond it the oldest are dropped (and counted).
DEFAULT_LIMIT = 20_000

#: Seconds between retries of the oldest queued write.
DEFAULT_RETRY_S = 1.0


@dataclass(frozen=True, slots=True)
class BacklogStats:
    """``queued`` writes waiting now; ``late``: stored on a retry; ``dropped``: lost for good;
    ``failing``: True from a failed write until the queue drained."""

    queued: int
    late: int
    dropped: int
    failing: bool


@dataclass(slots=True)
class _Write:
    run: Callable[[], None]
    what: str


_PASSING = (OperationalError, InterfaceError, DisconnectionError, PoolTimeout, OSError)


def transient(exc: BaseException) -> bool:
    """Whether a failed write may work later: the database was unreachable, dropped the
    connection, was locked or full (not a constraint or bad data)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, _PASSING):
            return True
        if isinstance(seen, sqlite3.OperationalError):
            return True
        seen = seen.__cause__
    return False


class WriteBacklog:
    """Runs database writes now, or later in submission order when the database is down."""

    def __init__(self, *, limit: int = DEFAULT_LIMIT, retry_s: float = DEFAULT_RETRY_S) -> None:
        if limit < 1:
            raise ValueError(f"the write backlog limit must be at least 1, got {limit}")
        self.limit = limit
        self.retry_s = retry_s
        self._lock = threading.Lock()
        self._queue: deque[_Write] = deque()
        self._late = 0
        self._dropped = 0
        self._wake = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None

    @property
    def stats(self) -> BacklogStats:
        with self._lock:
            return BacklogStats(len(self._queue), self._late, self._dropped, bool(self._queue))

    def submit(self, run: Callable[[], None], what: str) -> None:
        """Run ``run`` now, or queue it (``what`` names it in the log) when the database
        failed it or earlier writes still wait. Never raises ``StorageError``."""
        with self._lock:
            waiting = bool(self._queue)
            if waiting:
                self._enqueue(_Write(run, what))
                return
        try:
            run()
        except StorageError as exc:
            if not transient(exc):
                raise
            with self._lock:
                first = not self._queue
                self._enqueue(_Write(run, what))
            if first:
                log.error("database write failed (%s): %s; keeping writes in memory (up to "
                          "%d) and retrying every %.0f s", what, exc, self.limit,
                          self.retry_s)  # fmt: skip

    def _enqueue(self, write: _Write) -> None:
        """Append under ``_lock``; the oldest goes when the queue is full."""
        if self._closed:
            self._dropped += 1
            log.error("database write %s lost: the store is closed", write.what)
            return
        if len(self._queue) >= self.limit:
            gone = self._queue.popleft()
            self._dropped += 1
            log.error("database write %s lost: more than %d writes wait for the database",
                      gone.what, self.limit)  # fmt: skip
        self._queue.append(write)
        if self._thread is None:
            self._thread = threading.Thread(target=self._retry_loop, name="store-retry",
                                            daemon=True)  # fmt: skip
            self._thread.start()
        self._wake.set()

    def _retry_loop(self) -> None:
        while not self._closed:
            self._wake.wait(self.retry_s)
            self._wake.clear()
            if self._closed:
                return
            self.drain()

    def drain(self) -> bool:
        """Run queued writes, oldest first, until one fails on a database that is down;
        True when the queue is empty. The retry thread calls it; so does ``close``."""
        stored = 0
        while True:
            with self._lock:
                if not self._queue:
                    break
                write = self._queue[0]
            try:
                write.run()
            except StorageError as exc:
                if transient(exc):
                    return False  # still down: try again later, in the same order
                log.error("database write %s lost: %s", write.what, exc)
                with self._lock:
                    self._dropped += 1
                    self._pop(write)
                continue
            with self._lock:
                self._late += 1
                self._pop(write)
            stored += 1
        if stored:
            log.warning("the database answers again: %d queued write(s) stored late", stored)
        return True

    def _pop(self, write: _Write) -> None:
        """Remove ``write`` from the head (under ``_lock``) unless the limit already did."""
        if self._queue and self._queue[0] is write:
            self._queue.popleft()

    def close(self) -> None:
        """Stop retrying after one last try; what is still queued is lost (and counted)."""
        self.drain()
        with self._lock:
            self._closed = True
            lost = len(self._queue)
            self._dropped += lost
            self._queue.clear()
        self._wake.set()
        if lost:
            log.error("%d database write(s) lost: the database did not answer before the "
                      "store closed", lost)  # fmt: skip
