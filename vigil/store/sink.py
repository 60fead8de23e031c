"""``StoreEventSink``: events, their snapshots and rule counts of the running cameras into
the database.

An ``EventSink`` (``publish``/``close``) that upserts every lifecycle change of an event into
one row (``EventRepo.upsert``), plus ``count(rule_events)``, which adds each rule hit to the
per-minute counters (one batched ``CountRepo.increment_many``). Each call is one
transaction, so what a call returned for is committed (unless the database was down: see
below): a crash loses at most the event being written. ``publish_many`` writes many changes
(a node's cameras over a second) in one transaction of a few statements, which is what lets
one PostgreSQL take a city's cameras (``docs/cluster.md``, City-scale event path). Transactions
read before they write (upsert, increment), so on SQLite they take the write lock at
``BEGIN`` (``immediate``): a deferred one would fail at once with "database is locked" when
another camera's write commits between its read and its write, instead of waiting its turn.

With a ``media_root``, the best frame of each event (``Event.snapshot.image``, full
resolution, **unredacted**: it never leaves the server as is, the API redacts on read) is
written as ``<media_root>/snapshots/<camera>/<YYYY-MM-DD>/<event id>.jpg`` (UTC date of the
event's start) when the event starts and again when it ends with a better view, and the row
gets the path relative to ``media_root`` and the file's SHA-256. The file is complete on disk
(written to a temporary name, then renamed) before the row that points at it commits.

A database that is down (restarted, unreachable) loses nothing at first: the writes of the
rows wait in a bounded ``WriteBacklog`` in memory, in order, and are retried until they land
(``backlog.stats`` counts the late and the lost); the snapshot files are on disk already.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from vigil.errors import StorageError
from vigil.store.backlog import WriteBacklog
from vigil.store.db import Database
from vigil.store.repo import CountKey, CountRepo, EventRepo, EventWrite, SegmentRepo
from vigil.types import Event, EventState, RuleEvent, RuleEventKind

log = logging.getLogger(__name__)

#: JPEG quality of stored snapshots: evidence, so close to lossless.
SNAPSHOT_QUALITY = 92


def count_key(event: RuleEvent) -> CountKey:
    """The counter a rule hit adds to: lines count by direction, zones by what happened.

    ``CountKey(camera, rule, "line", label, "a_to_b"|"b_to_a")`` for a crossing,
    ``CountKey(camera, rule, "zone", label, "enter"|"exit"|"dwell"|"loiter"|"speeding"|
    "wrong_way"|"stopped")`` otherwise (the zone's `RuleEventKind`, so per class too).
    """
    if event.kind is RuleEventKind.CROSS:
        direction = event.direction.value if event.direction is not None else ""
        return CountKey(event.camera_id, event.rule_id, "line", event.label, direction)
    return CountKey(event.camera_id, event.rule_id, "zone", event.label, event.kind.value)


def snapshot_relpath(event: Event) -> str:
    """``snapshots/<camera>/<YYYY-MM-DD>/<event id>.jpg``, POSIX, relative to the media root.

    The date is the UTC day of the event's start (media seconds for files: day 1970-01-01).
    Camera names and event ids are checked by the config and the event manager; anything
    that could leave the folder (``/``, ``..``, a NUL) is refused here once more.
    """
    day = time.strftime("%Y-%m-%d", time.gmtime(max(0.0, event.start)))
    for part in (event.camera_id, event.id):
        if not part or "/" in part or "\\" in part or "\0" in part or part in {".", ".."}:
            raise StorageError(f"cannot name a snapshot file after {part!r}")
    return f"snapshots/{event.camera_id}/{day}/{event.id}.jpg"


def write_snapshot(root: Path, event: Event) -> tuple[str, str] | None:
    """Write the event's best frame under ``root``; ``(relative path, sha256 hex)``, or None
    when the event has no snapshot image. Atomic: a reader sees the old file or the new."""
    snapshot = event.snapshot
    if snapshot is None or snapshot.image is None:
        return None
    ok, encoded = cv2.imencode(".jpg", snapshot.image, [cv2.IMWRITE_JPEG_QUALITY, SNAPSHOT_QUALITY])
    if not ok:
        raise StorageError(f"could not encode the snapshot of event {event.id} as JPEG")
    data = np.asarray(encoded).tobytes()
    rel = snapshot_relpath(event)
    path = root / rel
    tmp = path.with_name(f".{path.name}.{threading.get_ident()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:
        # A half-written temporary file holds space that a full disk needs most: drop it.
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise StorageError(
            f"cannot write the snapshot {path}: {exc}; check that the data directory is "
            "writable and has free space"
        ) from exc
    return rel, hashlib.sha256(data).hexdigest()


class StoreEventSink:
    """Writes events, snapshots and counts through the repositories of ``db`` (thread-safe).

    ``media_root``: the data directory snapshots go under; None stores no snapshot files.
    ``node``: the cluster node whose data dir that is, kept with each snapshot (None: a
    single host).
    """

    def __init__(
        self, db: Database, media_root: Path | None = None, *, node: str | None = None
    ) -> None:
        self.db = db
        self.media_root = media_root
        self.node = node
        self._lock = threading.Lock()
        self._written: dict[str, int] = {}  # event id -> seq of the snapshot on disk
        #: Writes the database failed while down, retried in order (``WriteBacklog``).
        self.backlog = WriteBacklog()

    def publish(self, event: Event) -> None:
        """Insert or update the event's row (and its snapshot); a finished live event flags
        its segments."""
        try:
            stored = self._snapshot(event)
        except StorageError:
            # The event itself matters more than its picture: store the row regardless.
            log.exception("event %s: snapshot not stored", event.id)
            stored = None
        path, digest = stored if stored is not None else (None, None)
        self.backlog.submit(lambda: self._upsert(event, path, digest),
                            f"event {event.id} {event.state.value}")  # fmt: skip

    def _upsert(self, event: Event, path: str | None, digest: str | None) -> None:
        with self.db.session(immediate=True) as session:
            EventRepo(session).upsert(event, snapshot_path=path, snapshot_sha256=digest,
                                      node=self.node)  # fmt: skip
            if event.state is EventState.END and event.live and event.end is not None:
                SegmentRepo(session).mark_events(event.camera_id, event.start, event.end)

    def publish_many(self, events: Sequence[Event]) -> None:
        """``publish`` of many lifecycle changes (of many cameras) in one transaction.

        For a node that gathers what its cameras emit and writes it every second or so: a
        commit (and its WAL flush) per batch instead of per change, and a few multi-row
        upserts (``EventRepo.upsert_many``) instead of a read and a write per event. The rows
        end up as ``publish`` on each event in order would leave them. What the call returned
        for is committed (or queued in the backlog while the database is down, like
        ``publish``); a crash loses the batch being written.
        """
        if not events:
            return
        writes: list[EventWrite] = []
        for event in events:
            try:
                stored = self._snapshot(event)
            except StorageError:
                log.exception("event %s: snapshot not stored", event.id)
                stored = None
            path, digest = stored if stored is not None else (None, None)
            writes.append(EventWrite(event, path, digest, self.node if path else None))
        ended = [(e.camera_id, e.start, e.end) for e in events
                 if e.state is EventState.END and e.live and e.end is not None]  # fmt: skip
        self.backlog.submit(lambda: self._upsert_many(writes, ended),
                            f"{len(writes)} event change(s)")  # fmt: skip

    def _upsert_many(self, writes: list[EventWrite], ended: list[tuple[str, float, float]]) -> None:
        with self.db.session(immediate=True) as session:
            EventRepo(session).upsert_many(writes)
            SegmentRepo(session).mark_events_many(ended)

    def _snapshot(self, event: Event) -> tuple[str, str] | None:
        """Write the snapshot if it is new for this event (first one, or a better frame)."""
        if self.media_root is None or event.snapshot is None:
            return None
        seq = event.snapshot.seq
        with self._lock:
            if event.state is EventState.END:
                previous = self._written.pop(event.id, None)
            else:
                previous = self._written.get(event.id)
        if previous == seq:
            return None
        stored = write_snapshot(self.media_root, event)
        if stored is not None and event.state is not EventState.END:
            with self._lock:
                self._written[event.id] = seq
        return stored

    def count(self, rule_events: Sequence[RuleEvent]) -> None:
        """Add one to the minute counter of every rule hit (none: no transaction at all)."""
        if not rule_events:
            return
        hits = list(rule_events)
        self.backlog.submit(lambda: self._count(hits), f"{len(hits)} count(s) of "
                            f"{hits[0].camera_id}")  # fmt: skip

    def _count(self, rule_events: Sequence[RuleEvent]) -> None:
        with self.db.session(immediate=True) as session:
            # One batched upsert, the hits of a counter and minute summed first.
            CountRepo(session).increment_many((count_key(hit), hit.time) for hit in rule_events)

    def close(self) -> None:
        """One last try of the writes still queued (the database belongs to whoever built
        it and stays open)."""
        self.backlog.close()
