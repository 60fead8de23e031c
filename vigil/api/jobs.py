"""Background jobs: event clips and exports rendered off the request, in a bounded queue.

Jobs live in the database (``JobRow``), so they survive a restart: ``JobRunner.start`` queues
again whatever a stopped server left running. A small pool of worker threads (``job_workers``,
one on a 2-core machine) claims the next due job, highest priority first:

- ``PRIORITY_CLIP_WAITED``: a clip someone asked for and is waiting on;
- ``PRIORITY_EXPORT``: an export someone asked for;
- ``PRIORITY_BACKGROUND``: the clip of an event that just ended (``ClipJobSink``), rendered
  before anyone asks, so that opening it later starts at once.

Bounds: at most ``max_queued_jobs`` active jobs in all (503 ``queue_full`` beyond; a
background clip beyond is skipped, to be cut on request) and ``max_user_jobs`` active jobs of
one kind per user (429 ``too_many_jobs``). A handler reports progress (0..1), returns the
job's result (JSON), raises ``Deferred`` to run later, or raises to fail the job; a failure
never stops the worker.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from vigil.api.errors import ApiError, status_of
from vigil.errors import VigilError
from vigil.store import Database, JobRepo, JobRow
from vigil.store.repo import ACTIVE_JOB_STATES

log = logging.getLogger(__name__)

PRIORITY_BACKGROUND = 0
PRIORITY_EXPORT = 5
PRIORITY_CLIP_WAITED = 10

#: Reports a job's progress, 0..1 (written to the database at most a few times a second).
Progress = Callable[[float], None]


class JobHost(Protocol):
    """What the runner needs of the state it hands its handlers (the API's ``AppState``):
    the database. A protocol, so that this module does not import the state, which imports
    it (``tests/test_layering.py``)."""

    @property
    def db(self) -> Database: ...


HostT = TypeVar("HostT", bound=JobHost)
#: Runs one job: returns its result (JSON-serialisable), raises ``Deferred`` or fails.
Handler = Callable[[HostT, JobRow, Progress], dict[str, Any]]

_PROGRESS_EVERY_S = 0.5
_PRUNE_EVERY_S = 600.0
#: Finished jobs are forgotten after this long (their files stay: clips are a cache with
#: its own bound, exports are the user's).
KEEP_FINISHED_S = 7 * 86400.0


class Cancelled(Exception):  # noqa: N818 (not an error: the server is stopping)
    """Raised from a job's progress report when the runner stops: the job is queued again
    (a fresh start renders it whole; the partial output is deleted by the exporter)."""


class Deferred(Exception):  # noqa: N818 (not an error: a request to run the job later)
    """Raised by a handler whose job cannot run yet: queue it again, due at ``not_before``."""

    def __init__(self, not_before: float) -> None:
        super().__init__(f"deferred until {not_before}")
        self.not_before = not_before


@dataclass(frozen=True, slots=True)
class JobLimits:
    """``max_queued`` active jobs in all; ``per_user[kind]`` active jobs of a kind per user."""

    max_queued: int
    per_user: Mapping[str, int]


def submit(
    db: Database, limits: JobLimits, kind: str, params: dict[str, Any], *,
    owner: str | None, priority: int, key: str | None = None,
) -> JobRow:  # fmt: skip
    """Queue a job for ``owner``, or raise 429/503 when a bound is reached.

    With ``key``, a queued or running job that makes the same thing is returned instead
    (promoted to ``priority``): asking twice never renders twice.
    """
    with db.session(immediate=True) as session:
        repo = JobRepo(session)
        existing = repo.active(key) if key is not None else None
        if existing is not None and existing.owner not in (None, owner):
            return existing  # someone else already waits for it: just wait too
        most = limits.per_user.get(kind, limits.max_queued)
        if (
            owner is not None
            and repo.count_active(owner=owner, kind=kind)
            - (existing is not None and existing.owner == owner)
            >= most
        ):
            raise ApiError(429, "too_many_jobs", f"{owner!r} already has "
                           f"{most} {kind} job(s) queued or running; wait for "
                           "one to finish (GET /api/jobs) and try again",
                           headers={"Retry-After": "5"})  # fmt: skip
        if existing is not None:
            repo.promote(existing.id, priority, owner)
            return existing
        if repo.count_active() >= limits.max_queued:
            raise ApiError(
                503,
                "queue_full",
                f"the job queue holds {limits.max_queued} jobs already; try again in a minute",
                headers={"Retry-After": "30"},
            )
        return repo.add(kind, params, priority=priority, key=key, owner=owner)


class JobRunner(Generic[HostT]):
    """Worker threads that run queued jobs through ``handlers`` (by ``JobRow.kind``), each
    given ``state``."""

    def __init__(
        self, state: HostT, handlers: Mapping[str, Handler[HostT]], *, workers: int,
        poll_s: float = 0.5,
    ) -> None:  # fmt: skip
        self.state = state
        self.handlers = dict(handlers)
        self.workers = workers
        self.poll_s = poll_s
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self._pruned = time.time()  # the first prune a while after the start

    def start(self) -> int:
        """Queue again the jobs left running by a stopped server, then start the workers;
        returns how many jobs were queued again."""
        with self.state.db.session(immediate=True) as session:
            again = JobRepo(session).requeue_running()
        if again:
            log.info("jobs: %d job(s) left running by the last server queued again", again)
        for i in range(self.workers):
            thread = threading.Thread(target=self._loop, name=f"vigil-job-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return again

    def wake(self) -> None:
        """A job was queued: look now rather than at the next poll."""
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop: a running job is cancelled at its next progress report and queued again; one
        still running after ``timeout`` stays ``running`` in the database and is queued again
        at the next start."""
        self._stop.set()
        self._wake.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _loop(self) -> None:
        failing = False
        while not self._stop.is_set():
            try:
                ran = self.run_next()
            except Exception as exc:  # the database is down, say: try again at the next poll
                # Once per outage with the traceback, not at every poll (twice a second).
                if not failing:
                    log.exception("jobs: cannot claim the next job; retrying every %.1f s",
                                  self.poll_s)  # fmt: skip
                else:
                    log.debug("jobs: still cannot claim the next job: %s", exc)
                failing, ran = True, False
            else:
                if failing:
                    log.warning("jobs: claiming jobs again")
                failing = False
            if not ran:
                self._prune()
                self._wake.wait(self.poll_s)
                self._wake.clear()

    def _prune(self, now: float | None = None) -> int:
        """Forget jobs finished more than ``KEEP_FINISHED_S`` ago (one clip job per event
        would otherwise grow the table for ever); at most every ``_PRUNE_EVERY_S``."""
        now = time.time() if now is None else now
        if now - self._pruned < _PRUNE_EVERY_S:
            return 0
        self._pruned = now
        try:
            with self.state.db.session(immediate=True) as session:
                return JobRepo(session).delete_finished(now - KEEP_FINISHED_S)
        except VigilError:
            log.exception("jobs: cannot forget old jobs")
            return 0

    def run_next(self) -> bool:
        """Claim and run one due job; False when none was due."""
        # Look before taking the write lock: on SQLite an idle poll holding it now and then
        # would make a request's read-then-write transaction fail at once ("locked").
        with self.state.db.session() as session:
            if not JobRepo(session).any_due():
                return False
        with self.state.db.session(immediate=True) as session:
            job = JobRepo(session).claim()
        if job is None:
            return False
        self._run(job)
        return True

    def _run(self, job: JobRow) -> None:
        handler = self.handlers.get(job.kind)
        db = self.state.db
        try:
            if handler is None:
                raise ApiError(500, "unknown_job", f"no handler for jobs of kind {job.kind!r}")
            result = handler(self.state, job, _throttled(db, job.id, self._stop))
        except Cancelled:
            with db.session(immediate=True) as session:
                JobRepo(session).defer(job.id, 0.0)
            return
        except Deferred as later:
            with db.session(immediate=True) as session:
                JobRepo(session).defer(job.id, later.not_before)
            return
        except Exception as exc:
            status, code = status_of(exc)
            log.warning("jobs: %s job %s failed: %s", job.kind, job.id, exc,
                        exc_info=not isinstance(exc, VigilError))  # fmt: skip
            with db.session(immediate=True) as session:
                JobRepo(session).fail(job.id, f"{status} {code}: {exc}")
            return
        with db.session(immediate=True) as session:
            JobRepo(session).finish(job.id, result)


def _throttled(db: Database, job_id: str, stop: threading.Event) -> Progress:
    last = [0.0]

    def report(progress: float) -> None:
        if stop.is_set():  # checked on every frame: a stop does not wait for a long export
            raise Cancelled
        now = time.monotonic()
        if now - last[0] < _PROGRESS_EVERY_S and progress < 1.0:
            return
        last[0] = now
        with db.session() as session:
            JobRepo(session).set_progress(job_id, progress)

    return report


def wait_for(db: Database, job_id: str, timeout: float, poll_s: float = 0.05) -> JobRow | None:
    """The job once it is no longer active, or its row as it is after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        with db.session() as session:
            row = JobRepo(session).get(job_id)
        if row is None or row.state not in ACTIVE_JOB_STATES or time.monotonic() >= deadline:
            return row
        time.sleep(poll_s)


def failure_of(row: JobRow) -> ApiError:
    """The API error a failed job stands for (its ``STATUS code: message`` text)."""
    text = row.error or "500 job_failed: unknown error"
    head, _, message = text.partition(": ")
    status, _, code = head.partition(" ")
    if not status.isdigit() or not code:
        return ApiError(500, "job_failed", text)
    return ApiError(int(status), code, message)
