"""The hash-chained audit log: who read which media or changed what, tamper-evident.

Each record's hash covers the previous record's hash and the record's own fields::

    hash = sha256(prev_hash + canonical_json({seq, time, actor, action, target, source,
                                              reason, details}))

``canonical_json`` sorts keys, has no spaces, keeps non-ASCII as UTF-8, and writes ``time``
as a string with exactly six decimals (microseconds), so a float that the database returns with
a different last digit cannot break the chain. The first record's ``prev_hash`` is 64 zeros.

What ``verify`` detects, and what it relies on:

* an edited record: its hash no longer matches its content;
* a deleted record in the middle: a gap in ``seq`` (or, if the rest were renumbered, a
  ``prev_hash`` that is not the previous record's hash);
* reordered records: ``seq`` is inside the hash and each record names its predecessor;
* a truncated tail (the last records deleted): only through the separate one-row
  ``audit_head`` table, which every append updates in the same transaction. Someone who can
  write to the database can delete the tail *and* rewrite the head consistently; to catch that,
  copy ``AuditLog.head()`` somewhere they cannot write (a log shipper, a printout) and pass it to
  ``verify(anchor=...)``, which then checks that record against the copy.

Appends are serialised so the chain never forks: on PostgreSQL by ``SELECT ... FOR UPDATE`` on
the head row, on SQLite by an ``IMMEDIATE`` transaction (the database's write lock).
"""

from __future__ import annotations

import hashlib
import json
import math
import time as _time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from vigil.errors import StorageError
from vigil.store.db import Database
from vigil.store.models import GENESIS_HASH, AuditHeadRow, AuditRow

_HEAD_ID = 1
_BATCH = 1000


@dataclass(frozen=True, slots=True)
class AuditReport:
    """The verdict of ``AuditLog.verify``.

    ``records``: how many records were read. ``first_bad_seq``: the first record found wrong
    (for a gap, the first missing ``seq``; for a truncated tail, the first missing one after the
    last present); None when ``ok``. ``problem``: a sentence saying what is wrong.
    """

    ok: bool
    records: int
    first_bad_seq: int | None = None
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class AuditHead:
    """The end of the chain: the last record's ``seq`` and ``hash`` (0 and zeros when empty)."""

    seq: int
    hash: str


def canonical_json(record: Mapping[str, Any]) -> str:
    """The exact text that is hashed for a record (see the module docstring)."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)  # fmt: skip


def record_hash(
    prev_hash: str, *, seq: int, time: float, actor: str, action: str, target: str,
    source: str | None, reason: str | None, details: Mapping[str, Any],
) -> str:  # fmt: skip
    """``sha256(prev_hash + canonical_json(fields))`` as 64 hex digits."""
    fields = {
        "seq": seq, "time": f"{time:.6f}", "actor": actor, "action": action, "target": target,
        "source": source, "reason": reason, "details": dict(details),
    }  # fmt: skip
    return hashlib.sha256((prev_hash + canonical_json(fields)).encode("utf-8")).hexdigest()


def _row_hash(row: AuditRow) -> str:
    return record_hash(row.prev_hash, seq=row.seq, time=row.time, actor=row.actor,
                       action=row.action, target=row.target, source=row.source,
                       reason=row.reason, details=row.details)  # fmt: skip


class AuditLog:
    """Append and verify the audit chain of one ``Database``.

    Each ``append`` is its own transaction (committed when it returns), so a record exists
    before the audited action goes ahead: the API appends, then serves the media.
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    def append(
        self, actor: str, action: str, target: str, *, source: str | None = None,
        reason: str | None = None, details: Mapping[str, Any] | None = None,
        now: float | None = None,
    ) -> AuditRow:  # fmt: skip
        """Add a record at the end of the chain and return it.

        ``actor``: the user name (or ``system``); ``action``: a verb such as
        ``segment.read``; ``target``: what it concerns (a path, an event id, a user name);
        ``source``: the client address; ``reason``: why, required by the API for unredacted
        access; ``details``: any JSON-serialisable mapping.
        """
        if not actor or not action:
            raise StorageError("an audit record needs an actor and an action")
        when = round(_time.time() if now is None else now, 6)
        if not math.isfinite(when):
            raise StorageError(f"audit time must be finite, got {when}")
        try:
            # Normalised through JSON, so what is stored is what was hashed.
            clean = json.loads(canonical_json(dict(details or {})))
        except (TypeError, ValueError) as exc:
            raise StorageError(f"audit details must be JSON-serialisable: {exc}") from exc
        with self.db.session(immediate=True) as session:
            head = session.scalars(
                select(AuditHeadRow).where(AuditHeadRow.id == _HEAD_ID).with_for_update()
            ).one_or_none()
            if head is None:
                raise StorageError(
                    f"database {self.db.display_url} has no audit head row; run the migrations"
                )
            row = AuditRow(seq=head.seq + 1, time=when, actor=actor, action=action,
                           target=target, source=source, reason=reason, details=clean,
                           prev_hash=head.hash, hash="")  # fmt: skip
            row.hash = _row_hash(row)
            session.add(row)
            head.seq, head.hash = row.seq, row.hash
        return row

    def head(self) -> AuditHead:
        """The chain head as recorded in the head row (copy it elsewhere to anchor the log)."""
        with self.db.session() as session:
            row = session.get(AuditHeadRow, _HEAD_ID)
            return AuditHead(0, GENESIS_HASH) if row is None else AuditHead(row.seq, row.hash)

    def records(self, *, after_seq: int = 0, limit: int = 100) -> list[AuditRow]:
        """Records with ``seq > after_seq`` in chain order, at most ``limit`` (for auditors)."""
        with self.db.session() as session:
            query = (select(AuditRow).where(AuditRow.seq > after_seq)
                     .order_by(AuditRow.seq).limit(limit))  # fmt: skip
            return list(session.scalars(query))

    def verify(self, *, anchor: AuditHead | None = None) -> AuditReport:
        """Walk the whole chain and report the first problem (see the module docstring).

        Reads in batches of ``seq`` order, so memory stays flat for long logs. ``anchor``: a
        head copied earlier; the record at its ``seq`` must still carry its hash.
        """
        with self.db.session() as session:
            head = session.get(AuditHeadRow, _HEAD_ID)
            walker = _ChainWalker(anchor)
            after = 0
            while True:
                rows = list(session.scalars(
                    select(AuditRow).where(AuditRow.seq > after)
                    .order_by(AuditRow.seq).limit(_BATCH)
                ))  # fmt: skip
                for row in rows:
                    bad = walker.step(row)
                    if bad is not None:
                        return bad
                if len(rows) < _BATCH:
                    break
                after = rows[-1].seq
                session.expunge_all()
            return walker.finish(head)


class _ChainWalker:
    """Checks records one by one in ``seq`` order; keeps only the previous hash."""

    def __init__(self, anchor: AuditHead | None) -> None:
        self.anchor = anchor
        self.count = 0
        self.expected_seq = 1
        self.prev_hash = GENESIS_HASH

    def _bad(self, seq: int, problem: str) -> AuditReport:
        return AuditReport(False, self.count, seq, problem)

    def step(self, row: AuditRow) -> AuditReport | None:
        if row.seq != self.expected_seq:
            return self._bad(self.expected_seq, f"record {self.expected_seq} is missing (the "
                             f"next record is {row.seq}): records were deleted")  # fmt: skip
        if row.prev_hash != self.prev_hash:
            return self._bad(
                row.seq,
                f"record {row.seq} does not follow record {row.seq - 1} "
                "(prev_hash differs): records were deleted or reordered",
            )
        if _row_hash(row) != row.hash:
            return self._bad(row.seq, f"record {row.seq} was altered (its hash does not match "
                             "its content)")  # fmt: skip
        if self.anchor is not None and row.seq == self.anchor.seq and row.hash != self.anchor.hash:
            return self._bad(row.seq, f"record {row.seq} differs from the anchored head hash")
        self.count += 1
        self.expected_seq += 1
        self.prev_hash = row.hash
        return None

    def finish(self, head: AuditHeadRow | None) -> AuditReport:
        last = self.expected_seq - 1
        if head is None:
            return self._bad(last + 1, "the audit_head row is missing: it was deleted, so a "
                             "truncated tail could not be detected")  # fmt: skip
        if head.seq > last:
            return self._bad(
                last + 1,
                f"the chain ends at record {last} but the head says "
                f"{head.seq}: the last {head.seq - last} record(s) were deleted",
            )
        if head.seq < last or head.hash != self.prev_hash:
            return self._bad(head.seq if head.seq < last else last,
                             f"the audit_head row (seq {head.seq}) does not match the last "
                             f"record ({last}): the head was altered")  # fmt: skip
        if self.anchor is not None and self.anchor.seq > last:
            return self._bad(last + 1, f"the anchored head is record {self.anchor.seq} but the "
                             f"chain ends at {last}: records were deleted")  # fmt: skip
        return AuditReport(True, self.count)
