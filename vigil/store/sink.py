"""``StoreEventSink``: events and rule counts of the running cameras into the database.

An ``EventSink`` (``publish``/``close``) that upserts every lifecycle change of an event into
one row (``EventRepo.upsert``), plus ``count(rule_events)``, which adds each rule hit to the
per-minute counters (``CountRepo.increment``). Each call is one transaction, so what a call
returned for is committed: a crash loses at most the event being written.
"""

from __future__ import annotations

from collections.abc import Sequence

from vigil.store.db import Database
from vigil.store.repo import CountKey, CountRepo, EventRepo, SegmentRepo
from vigil.types import Event, EventState, RuleEvent, RuleEventKind


def count_key(event: RuleEvent) -> CountKey:
    """The counter a rule hit adds to: lines count by direction, zones by what happened.

    ``CountKey(camera, rule, "line", label, "a_to_b"|"b_to_a")`` for a crossing,
    ``CountKey(camera, rule, "zone", label, "enter"|"exit"|"dwell"|"loiter")`` otherwise.
    """
    if event.kind is RuleEventKind.CROSS:
        direction = event.direction.value if event.direction is not None else ""
        return CountKey(event.camera_id, event.rule_id, "line", event.label, direction)
    return CountKey(event.camera_id, event.rule_id, "zone", event.label, event.kind.value)


class StoreEventSink:
    """Writes events and counts through the repositories of ``db`` (thread-safe)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def publish(self, event: Event) -> None:
        """Insert or update the event's row; a finished live event flags its segments."""
        with self.db.session() as session:
            EventRepo(session).upsert(event)
            if event.state is EventState.END and event.live and event.end is not None:
                SegmentRepo(session).mark_events(event.camera_id, event.start, event.end)

    def count(self, rule_events: Sequence[RuleEvent]) -> None:
        """Add one to the minute counter of every rule hit (none: no transaction at all)."""
        if not rule_events:
            return
        with self.db.session() as session:
            repo = CountRepo(session)
            for hit in rule_events:
                repo.increment(count_key(hit), hit.time)

    def close(self) -> None:
        """Nothing to release: the database belongs to whoever built it."""
