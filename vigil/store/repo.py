"""Repositories: every query Vigil runs lives here, behind typed methods.

Each repository wraps a ``Session`` that the caller opens with ``Database.session()``, so several
calls can share one transaction (the session commits when its block ends). Rows come back as
the ORM classes of ``vigil.store.models``; the session factory does not expire them on commit,
so they stay readable after the block. Times are UNIX seconds (see ``models``).

Time-range filters select rows that *overlap* ``[since, until)``: a 10 s segment from 09:59:55
belongs to the range that starts at 10:00:00.
"""

from __future__ import annotations

import base64
import builtins
import enum
import functools
import hashlib
import math
import re
import secrets
import time as _time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from sqlalchemy import (
    ColumnElement,
    and_,
    column,
    delete,
    exists,
    func,
    literal,
    literal_column,
    or_,
    select,
    union_all,
)
from sqlalchemy import cast as sa_cast
from sqlalchemy import text as sa_text
from sqlalchemy import update as sa_update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from vigil.errors import StorageError
from vigil.events.schema import normalised_box
from vigil.store.db import json_dumps
from vigil.store.models import (
    AuditRow,
    CameraRow,
    CountRow,
    EventRow,
    JobRow,
    LoginAttemptRow,
    Role,
    SegmentRow,
    TokenKind,
    TokenRow,
    UserRow,
)
from vigil.types import Event


class AnyNode(enum.Enum):
    """The type of ``ANY_NODE``: a node filter that keeps every row."""

    ANY = "any"


#: A ``node`` filter that keeps rows of every node (the single host's view). Any other value
#: keeps the rows of that node only; None the rows without one (the server's own media).
ANY_NODE = AnyNode.ANY
NodeFilter = str | None | AnyNode


def _node_is(col: Any, node: NodeFilter) -> ColumnElement[bool] | None:
    if node is ANY_NODE:
        return None
    where: ColumnElement[bool] = col.is_(None) if node is None else col == node
    return where


#: Largest page ``EventRepo.list`` returns, whatever the caller asks.
MAX_PAGE = 1000

_SHA256_HEX = 64
_HEX = re.compile("[0-9a-f]*")


def _now(now: float | None) -> float:
    return _time.time() if now is None else now


def _check_sha256(value: str | None, what: str) -> None:
    if value is None:
        return
    if len(value) != _SHA256_HEX or _HEX.fullmatch(value) is None:
        raise StorageError(f"{what} must be 64 lower-case hex digits (a SHA-256), got {value!r}")


# -- cameras ----------------------------------------------------------------------------------


class CameraRepo:
    """The cameras table: one row per configured camera name."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def ensure(self, name: str, *, now: float | None = None) -> CameraRow:
        """The camera's row, created (enabled) when missing."""
        row = self.session.get(CameraRow, name)
        if row is None:
            row = CameraRow(name=name, created=_now(now), last_seen=None, enabled=True)
            self.session.add(row)
            self.session.flush()
        return row

    def seen(self, name: str, when: float) -> None:
        """Record the time of the camera's latest frame."""
        self.ensure(name).last_seen = when

    def list(self) -> list[CameraRow]:
        return list(self.session.scalars(select(CameraRow).order_by(CameraRow.name)))

    def switches(self, name: str) -> dict[str, bool]:
        """The camera's switches as last set (``detection``, ``recording``); a switch never
        set is left out (it is on)."""
        row = self.session.get(CameraRow, name)
        if row is None:
            return {}
        states = {"detection": row.detection, "recording": row.recording}
        return {switch: bool(on) for switch, on in states.items() if on is not None}

    def set_switch(self, name: str, switch: str, on: bool) -> None:
        """Keep the state of the camera's ``detection`` or ``recording`` switch."""
        row = self.ensure(name)
        if switch == "detection":
            row.detection = bool(on)
        elif switch == "recording":
            row.recording = bool(on)
        else:
            raise ValueError(f"unknown switch {switch!r}; use 'detection' or 'recording'")


# -- events -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventFilter:
    """What ``EventRepo.list`` selects; every field left None matches all rows.

    ``zone``/``line``: events whose zones/lines include that rule name. ``since``/``until``:
    events overlapping ``[since, until)`` (an open event overlaps everything after its start).
    """

    camera: str | None = None
    cameras: Sequence[str] | None = None  # a user's camera scope; None = all
    label: str | None = None
    zone: str | None = None
    line: str | None = None
    since: float | None = None
    until: float | None = None
    locked: bool | None = None
    reviewed: bool | None = None


@dataclass(frozen=True, slots=True)
class EventCursor:
    """Keyset position in the newest-first event order: the last row's ``(start, id)``.

    ``encode()`` gives an opaque URL-safe string for the API; ``decode`` reads it back and
    raises ``StorageError`` on anything else.
    """

    start: float
    id: str

    def encode(self) -> str:
        raw = f"{self.start!r}|{self.id}".encode()
        return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")

    @classmethod
    def decode(cls, text: str) -> EventCursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
            start, event_id = raw.split("|", 1)
            value = float(start)
        except (ValueError, UnicodeDecodeError) as exc:
            raise StorageError(
                f"invalid page cursor {text!r}; pass back the next_cursor of a previous page"
            ) from exc
        if not math.isfinite(value):
            raise StorageError(f"invalid page cursor {text!r}")
        return cls(value, event_id)


@dataclass(slots=True)
class EventPage:
    """One page of events, newest first; ``next_cursor`` is None on the last page."""

    items: list[EventRow]
    next_cursor: EventCursor | None = None


@dataclass(frozen=True, slots=True)
class EventWrite:
    """One lifecycle change for ``EventRepo.upsert_many``: the event and, when a new one was
    written, its snapshot (path relative to the media root, SHA-256, node holding it)."""

    event: Event
    snapshot_path: str | None = None
    snapshot_sha256: str | None = None
    node: str | None = None


#: Spans OR-ed in one ``UPDATE`` by ``SegmentRepo.mark_events_many``, and ``EXISTS`` tests
#: in one query of ``SegmentRepo.recorded_many`` (SQLite allows 500 terms in a compound one).
_SPANS_PER_UPDATE = 200
#: Rows per executemany on SQLite (in-process, so rows cost no round trips there).
_BATCH_ROWS = 1000

WriteMode = Literal["replace", "add", "ignore"]


@dataclass(frozen=True)
class _Rows:
    """Rows for ``_bulk_write``: per row a tuple of the values of ``columns`` and, for a table
    with JSON columns, one of the values of ``json_columns`` (``json_values[i]`` goes with
    ``values[i]``; never None: a JSON null would be stored as JSON, not as SQL's NULL)."""

    columns: tuple[str, ...]
    values: Sequence[tuple[Any, ...]]
    json_columns: tuple[str, ...] = ()
    json_values: Sequence[tuple[Any, ...]] = ()


def _bulk_write(
    session: Session, model: type[Any], rows: _Rows, *, key: Sequence[str], mode: WriteMode,
    new_only: dict[str, Any] | None = None, returning: Sequence[str] = (),
) -> builtins.list[tuple[Any, ...]] | None:  # fmt: skip
    """Insert ``rows`` into ``model``'s table; a row whose ``key`` exists already:
    ``replace`` overwrites the given columns, ``add`` adds ``count``, ``ignore`` leaves it
    (an empty ``key`` with ``ignore``: any unique index, e.g. one on an expression).
    ``new_only``: columns and the one value they get in new rows only (an update leaves them
    as they are). ``returning``: columns of the rows written, returned on PostgreSQL (None
    elsewhere: not known).

    PostgreSQL gets one ``INSERT ... SELECT FROM jsonb_array_elements(<the rows as one JSON
    array of arrays>) ON CONFLICT`` per call: one round trip, one parameter the C JSON
    encoder makes from the tuples as they are (no dict per row, no column names repeated in
    every row), a statement text that does not depend on the number of rows. The JSON
    columns' values come in a second array of arrays, read as ``json`` (walked in step,
    ``ROWS FROM``), so that they are stored as written, as the ORM stores them (``jsonb``
    would reorder their keys). Measured (``bench/city.py``), the alternatives cost more: an
    executemany sends a statement per row, a multi-row ``VALUES`` takes SQLAlchemy longer to
    compile than PostgreSQL to run, arrays per column (``unnest``) are escaped element by
    element, an object per row (``json_to_recordset``) took the client twice as long (a dict
    per row, the names encoded in every row), ``COPY`` into a staging table saved under 10 %,
    and positions in ``json`` (not ``jsonb``) are found by parsing the row again for each
    column. SQLite gets an executemany of the dialect's ``INSERT ... ON CONFLICT``.
    """
    if not rows.values:
        return [] if returning else None
    table = model.__table__
    extra = dict(new_only or {})
    if session.get_bind().dialect.name == "postgresql":
        statement = _positional_upsert(session, table, rows.columns, rows.json_columns,
                                       tuple(extra), key=tuple(key), mode=mode,
                                       returning=tuple(returning))  # fmt: skip
        params = {"rows": json_dumps(rows.values),
                  **{f"new_{i}": v for i, v in enumerate(extra.values())}}  # fmt: skip
        if rows.json_columns:
            params["docs"] = json_dumps(rows.json_values)
        result = session.execute(statement, params)
        return [tuple(row) for row in result] if returning else None
    insert = sqlite.insert(table)
    columns = (*rows.columns, *rows.json_columns)
    if mode == "ignore":
        stmt = insert.on_conflict_do_nothing(index_elements=list(key) or None)
    elif mode == "add":
        stmt = insert.on_conflict_do_update(
            index_elements=list(key), set_={"count": table.c.count + insert.excluded.count}
        )
    else:
        stmt = insert.on_conflict_do_update(index_elements=list(key), set_={
            c: insert.excluded[c] for c in columns if c not in key})  # fmt: skip
    docs = rows.json_values if rows.json_columns else [()] * len(rows.values)
    dicts = [{**dict(zip(columns, (*row, *doc), strict=True)), **extra}
             for row, doc in zip(rows.values, docs, strict=True)]  # fmt: skip
    for i in range(0, len(dicts), _BATCH_ROWS):
        session.execute(stmt, dicts[i : i + _BATCH_ROWS])
    return None


@functools.lru_cache(maxsize=64)
def _positional_sql(
    table_name: str, types: tuple[tuple[str, str], ...], *, json_columns: tuple[str, ...],
    extra: tuple[str, ...], key: tuple[str, ...], mode: WriteMode, returning: tuple[str, ...],
) -> Any:  # fmt: skip
    """The statement of ``_bulk_write`` on PostgreSQL (built once per shape, then cached):
    element ``i`` of a row's array is column ``i``, cast by the server; ``types``: (name, SQL
    type) of the plain columns; the JSON ones come from ``docs``."""

    def quote(name: str) -> str:  # the model's own names: no quote character in any
        return f'"{name}"'

    values = [f"CAST(r ->> {i} AS {sql_type})" for i, (_, sql_type) in enumerate(types)]
    values += [f"d -> {i}" for i in range(len(json_columns))]
    values += [f":new_{i}" for i in range(len(extra))]
    names = [name for name, _ in types] + list(json_columns) + list(extra)
    source = ("ROWS FROM (jsonb_array_elements(CAST(:rows AS JSONB)), "
              "json_array_elements(CAST(:docs AS JSON))) AS t(r, d)" if json_columns
              else "jsonb_array_elements(CAST(:rows AS JSONB)) AS t(r)")  # fmt: skip
    sql = (
        f"INSERT INTO {quote(table_name)} ({', '.join(quote(c) for c in names)}) "
        f"SELECT {', '.join(values)} FROM {source} "
        f"ON CONFLICT {'(' + ', '.join(quote(c) for c in key) + ') ' if key else ''}"
    )
    if mode == "ignore":
        sql += "DO NOTHING"
    elif mode == "add":
        sql += f"DO UPDATE SET count = {quote(table_name)}.count + EXCLUDED.count"
    else:
        sql += "DO UPDATE SET " + ", ".join(
            f"{quote(c)} = EXCLUDED.{quote(c)}" for c in names if c not in key and c not in extra
        )
    if returning:
        sql += " RETURNING " + ", ".join(quote(c) for c in returning)
    return sa_text(sql)


def _positional_upsert(
    session: Session, table: Any, columns: tuple[str, ...], json_columns: tuple[str, ...],
    extra: tuple[str, ...], *, key: tuple[str, ...], mode: WriteMode,
    returning: tuple[str, ...] = (),
) -> Any:  # fmt: skip
    dialect = session.get_bind().dialect
    types = tuple((c, str(table.c[c].type.compile(dialect=dialect))) for c in columns)
    return _positional_sql(
        table.name,
        types,
        json_columns=json_columns,
        extra=extra,
        key=key,
        mode=mode,
        returning=returning,
    )


#: The plain and the JSON columns of an event's row that the pipeline owns (what ``upsert``
#: sets always), in ``_event_row``'s order.
_EVENT_COLUMNS = ("id", "camera", "label", "class_id", "track_id", "start", "end", "state",
                  "live", "top_score", "updated")  # fmt: skip
_EVENT_JSON = ("zones", "lines", "counts", "zones_now", "measures")
_SNAPSHOT_COLUMNS = ("snapshot_path", "snapshot_sha256", "node")
#: The users' flags: written into new rows only, never by an update.
_EVENT_NEW_ONLY = {"evidence_lock": False, "reviewed": False}


def _event_row(event: Event, updated: float) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """The values of ``_EVENT_COLUMNS`` and ``_EVENT_JSON``. Scalars are made Python's (a
    detector's numpy ones bind nowhere); lists and dicts go as they are: the JSON encoder
    takes them (and numpy scalars inside, ``json_dumps``) without a copy each."""
    end = event.end
    return (
        (
            event.id,
            event.camera_id,
            event.label,
            int(event.class_id),
            int(event.track_id),
            float(event.start),
            None if end is None else float(end),
            event.state.value,
            bool(event.live),
            float(event.top_score),
            updated,
        ),
        (event.zones, event.lines, event.counts, event.zones_now, event.measures),
    )


class EventRepo:
    """Events: upsert from the pipeline, list/get for users, evidence lock."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def upsert(
        self,
        event: Event,
        *,
        snapshot_path: str | None = None,
        snapshot_sha256: str | None = None,
        now: float | None = None,
        node: str | None = None,
    ) -> EventRow:
        """Insert the event, or update its row: start, updates and end share one row.

        Keeps what the pipeline does not own: ``evidence_lock`` is never touched, and a
        snapshot path/hash stays until a new one is given. Assumes one writer per event id
        (the camera worker that owns the track). ``node``: the cluster node whose data dir
        holds the snapshot (kept with it; None on a single host).
        """
        _check_sha256(snapshot_sha256, "snapshot_sha256")
        row = self.session.get(EventRow, event.id)
        if row is None:
            row = EventRow(id=event.id, evidence_lock=False, snapshot_path=None,
                           snapshot_sha256=None, reviewed=False)  # fmt: skip
            self.session.add(row)
        row.camera = event.camera_id
        row.label = event.label
        row.class_id = int(event.class_id)
        row.track_id = int(event.track_id)
        row.start = float(event.start)
        row.end = None if event.end is None else float(event.end)
        row.state = event.state.value
        row.live = bool(event.live)
        row.zones = list(event.zones)
        row.lines = list(event.lines)
        row.counts = {str(k): int(v) for k, v in event.counts.items()}
        row.top_score = float(event.top_score)
        row.zones_now = list(event.zones_now)
        row.measures = {str(k): float(v) for k, v in event.measures.items()}
        if event.snapshot is not None:  # the box of the snapshot that was kept
            row.box = normalised_box(event.snapshot)
        row.updated = _now(now)
        if snapshot_path is not None:
            row.snapshot_path = snapshot_path
            row.snapshot_sha256 = snapshot_sha256
            row.node = node
        self.session.flush()
        return row

    def upsert_many(self, writes: Iterable[EventWrite], *, now: float | None = None) -> int:
        """``upsert`` of many lifecycle changes at once: a few statements, not one per event.

        The rows end up exactly as calling ``upsert`` on each write in order would leave
        them (the test suite compares the two): several states of one event in the batch
        collapse into its last, keeping the last snapshot given and the box of the last
        state that had a snapshot; ``evidence_lock`` and ``reviewed`` are set only when the
        row is new. One ``INSERT ... ON CONFLICT (id) DO UPDATE`` per shape of row (with or
        without a snapshot, with or without a box), rows in id order so that concurrent
        writers lock them in the same order. Returns how many rows were written.
        """
        when = _now(now)
        # Per event id: its last state's values, the box of the last state with a snapshot,
        # the last snapshot file given (None: not in this batch).
        merged: dict[
            str,
            tuple[
                tuple[tuple[Any, ...], tuple[Any, ...]], list[float] | None, tuple[Any, ...] | None
            ],
        ] = {}
        for write in writes:
            event = write.event
            _check_sha256(write.snapshot_sha256, "snapshot_sha256")
            _, box, snap = merged.get(event.id, (((), ()), None, None))
            if event.snapshot is not None:
                box = normalised_box(event.snapshot)
            if write.snapshot_path is not None:
                snap = (write.snapshot_path, write.snapshot_sha256, write.node)
            merged[event.id] = (_event_row(event, when), box, snap)
        shapes: dict[
            tuple[bool, bool], tuple[builtins.list[tuple[Any, ...]], builtins.list[tuple[Any, ...]]]
        ] = {}
        for event_id in sorted(merged):
            (row, doc), box, snap = merged[event_id]
            values, docs = shapes.setdefault((box is not None, snap is not None), ([], []))
            values.append(row if snap is None else row + snap)
            docs.append(doc if box is None else (*doc, box))
        for (has_box, has_snap), (values, docs) in shapes.items():
            rows = _Rows(
                (*_EVENT_COLUMNS, *(_SNAPSHOT_COLUMNS if has_snap else ())),
                values,
                (*_EVENT_JSON, *(("box",) if has_box else ())),
                docs,
            )
            _bulk_write(self.session, EventRow, rows, key=["id"], mode="replace",
                        new_only=_EVENT_NEW_ONLY)  # fmt: skip
        return len(merged)

    def get(self, event_id: str) -> EventRow | None:
        return self.session.get(EventRow, event_id)

    def list(
        self, where: EventFilter | None = None, *, limit: int = 100,
        after: EventCursor | None = None,
    ) -> EventPage:  # fmt: skip
        """A page of events, newest ``start`` first (ties by ``id``), keyset-paginated.

        Keyset rather than offset pagination: a page costs the same at any depth and rows
        inserted meanwhile do not shift later pages. Pass ``page.next_cursor`` as ``after``.
        ``limit`` is clamped to 1..``MAX_PAGE``.
        """
        limit = max(1, min(int(limit), MAX_PAGE))
        query = select(EventRow).where(*self._conditions(where or EventFilter()))
        if after is not None:
            query = query.where(
                or_(EventRow.start < after.start,
                    and_(EventRow.start == after.start, EventRow.id < after.id))
            )  # fmt: skip
        query = query.order_by(EventRow.start.desc(), EventRow.id.desc()).limit(limit + 1)
        rows = list(self.session.scalars(query))
        if len(rows) <= limit:
            return EventPage(rows)
        rows = rows[:limit]
        return EventPage(rows, EventCursor(rows[-1].start, rows[-1].id))

    def count(self, where: EventFilter | None = None) -> int:
        query = select(func.count()).select_from(EventRow)
        return int(self.session.scalar(query.where(*self._conditions(where or EventFilter()))) or 0)

    def set_evidence_lock(self, event_id: str, locked: bool) -> bool:
        """Lock (or unlock) an event against retention; False when there is no such event."""
        row = self.session.get(EventRow, event_id)
        if row is None:
            return False
        row.evidence_lock = locked
        self.session.flush()
        return True

    def set_reviewed(
        self, ids: Sequence[str], reviewed: bool, cameras: Sequence[str] | None = None
    ) -> builtins.list[str]:
        """Mark events reviewed (or not); only those in ``cameras`` (a user's scope, None:
        all). Returns the ids that exist there, in the order given."""
        query = select(EventRow).where(EventRow.id.in_(list(ids)))
        if cameras is not None:
            query = query.where(EventRow.camera.in_(list(cameras)))
        rows = {row.id: row for row in self.session.scalars(query)}
        for row in rows.values():
            row.reviewed = reviewed
        self.session.flush()
        return [i for i in dict.fromkeys(ids) if i in rows]

    def snapshot_cameras(self, *, node: NodeFilter = ANY_NODE) -> builtins.list[str]:
        """The cameras with a live event's snapshot stored (``node``: on that node), whether
        configured or not: a camera removed from the configuration keeps its snapshots, which
        expire by the default limits as its segments do."""
        query = select(EventRow.camera).where(
            EventRow.snapshot_path.is_not(None), EventRow.live.is_(True)
        ).distinct()  # fmt: skip
        on_node = _node_is(EventRow.node, node)
        if on_node is not None:
            query = query.where(on_node)
        return sorted(self.session.scalars(query).all())

    def expire_snapshots(self, camera: str, before: float, *,
                         node: NodeFilter = ANY_NODE) -> builtins.list[str]:  # fmt: skip
        """Forget the snapshots of ``camera``'s ended, unlocked live events that ended before
        ``before`` (UNIX s; a file's events are in media seconds and are kept). Returns
        their paths, for the caller to delete after the commit (a crash in between leaves
        an orphan file, never a row pointing at nothing). ``node``: only the snapshots that
        node holds (a cluster node expires its own files only)."""
        query = select(EventRow).where(
            EventRow.camera == camera, EventRow.snapshot_path.is_not(None),
            EventRow.end.is_not(None), EventRow.end < before,
            EventRow.evidence_lock.is_(False), EventRow.live.is_(True),
        )  # fmt: skip
        on_node = _node_is(EventRow.node, node)
        if on_node is not None:
            query = query.where(on_node)
        rows = self.session.scalars(query).all()
        paths = [row.snapshot_path for row in rows if row.snapshot_path is not None]
        for row in rows:
            row.snapshot_path = row.snapshot_sha256 = None
        self.session.flush()
        return paths

    def close_dangling(self, camera: str, now: float | None = None) -> int:
        """End the events of ``camera`` left open by a crash (``kill -9``, power loss):
        ``end`` = their last update time (capped at ``now``), state ``end``. Call before the
        camera's worker starts: it owns no open event yet. Returns how many were closed."""
        now = _now(now)
        rows = self.session.scalars(
            select(EventRow).where(EventRow.camera == camera, EventRow.end.is_(None))
        ).all()
        for row in rows:
            # A live event's times are UTC like ``updated``; a file's are media seconds, of
            # which nothing later than the start is known.
            row.end = max(row.start, min(row.updated, now)) if row.live else row.start
            row.state = "end"
            row.updated = now
        self.session.flush()
        return len(rows)

    def _conditions(self, where: EventFilter) -> builtins.list[ColumnElement[bool]]:
        out: builtins.list[ColumnElement[bool]] = []
        if where.camera is not None:
            out.append(EventRow.camera == where.camera)
        if where.cameras is not None:
            out.append(EventRow.camera.in_(list(where.cameras)))
        if where.label is not None:
            out.append(EventRow.label == where.label)
        if where.until is not None:
            out.append(EventRow.start < where.until)
        if where.since is not None:
            out.append(or_(EventRow.end.is_(None), EventRow.end >= where.since))
        if where.locked is not None:
            out.append(EventRow.evidence_lock.is_(where.locked))
        if where.reviewed is not None:
            out.append(EventRow.reviewed.is_(where.reviewed))
        if where.zone is not None:
            out.append(self._json_contains(EventRow.zones, where.zone))
        if where.line is not None:
            out.append(self._json_contains(EventRow.lines, where.line))
        return out

    def _json_contains(self, col: Any, name: str) -> ColumnElement[bool]:
        """``name`` is an element of the JSON array in ``col``, in each backend's dialect."""
        if self.session.get_bind().dialect.name == "postgresql":
            return sa_cast(col, postgresql.JSONB).contains([name])
        items = func.json_each(col).table_valued("value")
        return exists(select(1).select_from(items).where(column("value") == name))


# -- segments ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SegmentSpec:
    """A finished segment for ``SegmentRepo.add_many`` (the arguments of ``add``)."""

    camera: str
    path: str
    start: float
    end: float
    size: int
    sha256: str
    has_motion: bool = False
    has_events: bool = False
    node: str | None = None
    #: Its preview thumbnails (``vigil.record.previews.PreviewSet.column``) and their bytes.
    previews: str | None = None
    preview_bytes: int = 0


def check_segment(seg: SegmentSpec) -> None:
    """Raise ``StorageError`` for a segment ``add`` would refuse before writing (a path
    outside the media root, an end before the start, a bad digest)."""
    _check_segment(seg.path, seg.start, seg.end, seg.size, seg.sha256)


def _check_segment(path: str, start: float, end: float, size: int, sha256: str) -> None:
    _check_sha256(sha256, "sha256")
    if path.startswith("/") or ".." in path.split("/"):
        raise StorageError(f"segment path {path!r} must be relative to the media root")
    if end < start or size < 0:
        raise StorageError(f"segment {path!r}: end {end} before start {start} or size < 0")


_MARK_EVENTS_PG = """
UPDATE segments AS s SET has_events = true
FROM (SELECT CAST(r ->> 0 AS VARCHAR) AS camera, CAST(r ->> 1 AS DOUBLE PRECISION) AS since,
             CAST(r ->> 2 AS DOUBLE PRECISION) AS until
      FROM json_array_elements(CAST(:spans AS JSON)) AS j(r)) AS t
WHERE s.camera = t.camera AND s."end" > t.since AND s.start < t.until
  AND s.start >= t.since - (SELECT coalesce(max("end" - start), 0) FROM segments)
  AND NOT s.has_events
"""
_MARK_EVENTS_STATEMENT = sa_text(_MARK_EVENTS_PG)


_RECORDED_PG = """
SELECT t.i FROM unnest(CAST(:cams AS VARCHAR[]), CAST(:sinces AS DOUBLE PRECISION[]),
                       CAST(:untils AS DOUBLE PRECISION[]))
                WITH ORDINALITY AS t(camera, since, until, i)
WHERE EXISTS (SELECT 1 FROM segments AS s
              WHERE s.camera = t.camera AND s."end" > t.since AND s.start < t.until
                AND s.start >= t.since - (SELECT coalesce(max("end" - start), 0)
                                          FROM segments))
"""


class SegmentEntry(NamedTuple):
    """A segment as ``SegmentRepo.timeline`` reads it: the columns, no ORM object."""

    id: int
    camera: str
    start: float
    end: float
    size: int
    sha256: str
    evidence_lock: bool
    has_motion: bool
    has_events: bool
    node: str | None
    previews: str | None


_ENTRY_COLUMNS = SegmentEntry._fields


#: The columns ``SegmentRepo.add_many`` writes, in the order of its rows.
_SEGMENT_COLUMNS = ("camera", "path", "start", "end", "size", "sha256", "has_motion",
                    "has_events", "node", "previews", "preview_bytes")  # fmt: skip


class SegmentRepo:
    """Recorded segments: add, list, sizes, retention deletes, evidence locks."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(
        self, *, camera: str, path: str, start: float, end: float, size: int, sha256: str,
        has_motion: bool = False, has_events: bool = False, node: str | None = None,
        previews: str | None = None, preview_bytes: int = 0,
    ) -> SegmentRow:  # fmt: skip
        """Record a finished segment; ``path`` is relative to the media root (of ``node``'s
        data dir in a cluster) and unique on its node. ``previews``/``preview_bytes``: its preview
        thumbnails (``vigil.record.previews.PreviewSet.column``) and their size."""
        _check_segment(path, start, end, size, sha256)
        if preview_bytes < 0:
            raise StorageError(f"segment {path!r}: preview_bytes must be >= 0")
        row = SegmentRow(camera=camera, path=path, start=float(start), end=float(end),
                         size=int(size), sha256=sha256, evidence_lock=False,
                         has_motion=has_motion, has_events=has_events,
                         node=node, previews=previews,
                         preview_bytes=int(preview_bytes))  # fmt: skip
        try:
            # A savepoint, so a duplicate does not undo the caller's whole transaction.
            with self.session.begin_nested():
                self.session.add(row)
        except IntegrityError as exc:
            where = f" on node {node}" if node else ""
            raise StorageError(f"segment {path!r} is already recorded{where}") from exc
        return row

    def add_many(self, segments: Iterable[SegmentSpec]) -> builtins.list[SegmentSpec]:
        """Record many finished segments in a few statements (many cameras' recorders on one
        node). Checked as ``add`` checks one; a path already recorded is skipped, not an
        error, so that a batch retried after a lost commit reply stores nothing twice.

        Returns the segments refused: those whose place (node and path) holds another
        segment (another camera, start or digest), where ``add`` would raise; a segment
        found stored as given (a retried batch) is not refused."""
        specs = builtins.list(segments)
        rows: builtins.list[tuple[Any, ...]] = []
        for seg in specs:
            check_segment(seg)
            rows.append((seg.camera, seg.path, float(seg.start), float(seg.end), int(seg.size),
                         seg.sha256, bool(seg.has_motion), bool(seg.has_events), seg.node,
                         seg.previews, int(seg.preview_bytes)))  # fmt: skip
        if not rows:
            return []
        # No conflict target: the unique key is an expression (``uq_segments_node_path``).
        written = _bulk_write(self.session, SegmentRow, _Rows(_SEGMENT_COLUMNS, rows), key=[],
                              mode="ignore", new_only={"evidence_lock": False},
                              returning=("node", "path"))  # fmt: skip
        if written is not None:  # only the rows not written can be refused: look those up
            new = {(node or "", path) for node, path in written}
            left = []
            for spec in specs:  # each row written stands for the first of its place only
                place = (spec.node or "", spec.path)
                if place in new:
                    new.discard(place)
                else:
                    left.append(spec)
            specs = left
        return self._not_stored(specs) if specs else []

    def _not_stored(self, specs: Sequence[SegmentSpec]) -> builtins.list[SegmentSpec]:
        """Which of ``specs`` have no row of their own (same node, path, camera, start and
        digest): one query per node and 500 paths, on the unique index (node, path)."""
        # The index's own expression, with the literal: a bound '' would not match it.
        place = func.coalesce(SegmentRow.node, literal_column("''"))
        stored: set[tuple[str | None, str, str, float, str]] = set()
        by_node: dict[str, builtins.list[str]] = {}
        for spec in specs:
            by_node.setdefault(spec.node or "", []).append(spec.path)
        for node, paths in by_node.items():
            unique = sorted(set(paths))
            for i in range(0, len(unique), 500):
                query = select(SegmentRow.node, SegmentRow.path, SegmentRow.camera,
                               SegmentRow.start, SegmentRow.sha256).where(
                    place == node, SegmentRow.path.in_(unique[i:i + 500]))  # fmt: skip
                stored.update((n, p, c, float(t), d)
                              for n, p, c, t, d in self.session.execute(query))  # fmt: skip
        return [s for s in specs
                if (s.node, s.path, s.camera, float(s.start), s.sha256) not in stored]  # fmt: skip

    def get(self, segment_id: int) -> SegmentRow | None:
        return self.session.get(SegmentRow, segment_id)

    def stored_at(self, path: str, node: str | None = None) -> bool:
        """Whether a segment row holds ``path`` on ``node`` (None: a single host's), on the
        unique index (node, path)."""
        place = func.coalesce(SegmentRow.node, literal_column("''"))
        query = select(SegmentRow.id).where(place == (node or ""), SegmentRow.path == path)
        return self.session.execute(query.limit(1)).first() is not None

    def list(
        self, camera: str | None = None, since: float | None = None,
        until: float | None = None, *, limit: int | None = None, node: NodeFilter = ANY_NODE,
    ) -> list[SegmentRow]:  # fmt: skip
        """Segments overlapping ``[since, until)``, oldest first (retention's order);
        ``node``: only those recorded by that node (None: the server's own)."""
        query = self._listing(select(SegmentRow), camera, since, until, limit=limit, node=node)
        return list(self.session.scalars(query))

    def timeline(
        self, camera: str | None = None, since: float | None = None,
        until: float | None = None, *, limit: int | None = None, node: NodeFilter = ANY_NODE,
    ) -> builtins.list[SegmentEntry]:  # fmt: skip
        """``list``, as plain rows of the columns a recordings timeline shows: a day of a
        camera is 8 640 segments, and ORM objects (identity map, state tracking) cost the
        client several times what the query costs the server (``bench/city.py``)."""
        query = self._listing(select(*(SegmentRow.__table__.c[c] for c in _ENTRY_COLUMNS)),
                              camera, since, until, limit=limit, node=node)  # fmt: skip
        return [SegmentEntry(*row) for row in self.session.execute(query)]

    def _listing(
        self, query: Any, camera: str | None, since: float | None, until: float | None, *,
        limit: int | None, node: NodeFilter,
    ) -> Any:  # fmt: skip
        query = self._range(query, camera, since, until)
        on_node = _node_is(SegmentRow.node, node)
        if on_node is not None:
            query = query.where(on_node)
        query = query.order_by(SegmentRow.start, SegmentRow.id)
        return query if limit is None else query.limit(limit)

    def recorded(self, camera: str, since: float, until: float) -> bool:
        """Whether any segment of ``camera`` overlaps ``[since, until]``."""
        query = self._range(select(SegmentRow.id), camera, since, until).limit(1)
        return self.session.scalar(query) is not None

    def recorded_many(self, spans: Sequence[tuple[str, float, float]]) -> builtins.list[bool]:
        """``recorded`` of each ``(camera, since, until)``, in one query per 200 spans (a page
        of events asks for all its rows at once instead of a round trip each)."""
        if not spans:
            return []
        if self.session.get_bind().dialect.name == "postgresql":
            # One statement whatever the page size (compiled once, cached).
            cams, sinces, untils = (list(col) for col in zip(*spans, strict=True))
            rows = self.session.scalars(sa_text(_RECORDED_PG), {
                "cams": cams, "sinces": sinces, "untils": untils})  # fmt: skip
            hit = {int(v) for v in rows}
            return [k in hit for k in range(1, len(spans) + 1)]
        found: set[int] = set()
        for i in range(0, len(spans), _SPANS_PER_UPDATE):
            parts = [
                select(literal(i + k).label("i")).where(
                    exists(select(SegmentRow.id).where(*self._overlapping(camera, since, until)))
                )
                for k, (camera, since, until) in enumerate(spans[i : i + _SPANS_PER_UPDATE])
            ]
            found.update(int(v) for v in self.session.scalars(union_all(*parts)))
        return [k in found for k in range(len(spans))]

    def total_size(self, camera: str | None = None) -> int:
        """Bytes recorded (segments and their previews), for one camera or all of them."""
        query = select(func.coalesce(func.sum(SegmentRow.size + SegmentRow.preview_bytes), 0))
        if camera is not None:
            query = query.where(SegmentRow.camera == camera)
        return int(self.session.scalar(query) or 0)

    def size_by_camera(self) -> dict[str, int]:
        """Bytes recorded per camera, segments and their previews."""
        query = select(SegmentRow.camera,
                       func.sum(SegmentRow.size + SegmentRow.preview_bytes),
                       ).group_by(SegmentRow.camera)  # fmt: skip
        return {cam: int(size) for cam, size in self.session.execute(query)}

    def delete(self, ids: Iterable[int], *,
               node: NodeFilter = ANY_NODE) -> builtins.list[SegmentRow]:  # fmt: skip
        """Delete the unlocked segments among ``ids`` (of ``node`` only, when given); returns
        the rows deleted.

        Locked segments are never deleted, whatever the caller asks. The caller removes the
        files *after* the transaction commits: a crash in between leaves an orphan file (found
        by a scan) rather than a row pointing at nothing.
        """
        wanted = list(ids)
        if not wanted:
            return []
        query = select(SegmentRow).where(SegmentRow.id.in_(wanted),
                                         SegmentRow.evidence_lock.is_(False))  # fmt: skip
        on_node = _node_is(SegmentRow.node, node)
        if on_node is not None:
            query = query.where(on_node)
        rows = list(self.session.scalars(query))
        if rows:
            self.session.execute(
                delete(SegmentRow)
                .where(SegmentRow.id.in_([r.id for r in rows]), SegmentRow.evidence_lock.is_(False))
            )  # fmt: skip
        return rows

    def set_lock(self, camera: str, since: float, until: float, locked: bool) -> int:
        """Lock (or unlock) the camera's segments overlapping ``[since, until)``; how many."""
        query = self._range(sa_update(SegmentRow), camera, since, until)
        result = self.session.execute(
            query.values(evidence_lock=locked).execution_options(synchronize_session="fetch")
        )
        return int(getattr(result, "rowcount", 0))

    def mark_motion(self, camera: str, since: float, until: float) -> int:
        """Flag the camera's segments overlapping ``[since, until]`` as holding motion."""
        query = self._range(sa_update(SegmentRow), camera, since, max(until, since + 1e-3))
        result = self.session.execute(
            query.values(has_motion=True).execution_options(synchronize_session="fetch")
        )
        return int(getattr(result, "rowcount", 0))

    def mark_events(self, camera: str, since: float, until: float) -> int:
        """Flag the camera's segments overlapping ``[since, until)`` as holding an event."""
        query = self._range(sa_update(SegmentRow), camera, since, until)
        result = self.session.execute(
            query.values(has_events=True).execution_options(synchronize_session="fetch")
        )
        return int(getattr(result, "rowcount", 0))

    def mark_events_many(self, spans: Iterable[tuple[str, float, float]]) -> int:
        """``mark_events`` for many ``(camera, since, until)`` spans in a few statements (the
        events a batch ended): one ``UPDATE`` per chunk of spans, an OR of their ranges, and
        only of segments not flagged yet. Returns how many segments were flagged."""
        merged: builtins.list[tuple[str, float, float]] = []
        for camera, since, until in sorted(spans):
            last = merged[-1] if merged else None
            if last is not None and last[0] == camera and since <= last[2]:
                merged[-1] = (camera, last[1], max(last[2], until))  # overlapping: one range
            else:
                merged.append((camera, since, until))
        if not merged:
            return 0
        if self.session.get_bind().dialect.name == "postgresql":
            # One statement for the lot: the spans as one JSON array (psycopg escapes text
            # arrays element by element in Python), joined to the index on (camera, start),
            # bounded below as in ``_overlapping``.
            result = self.session.execute(_MARK_EVENTS_STATEMENT, {"spans": json_dumps(merged)})
            return int(getattr(result, "rowcount", 0))
        flagged = 0
        for i in range(0, len(merged), _SPANS_PER_UPDATE):
            ranges = [
                and_(*self._overlapping(camera, since, until))
                for camera, since, until in merged[i : i + _SPANS_PER_UPDATE]
            ]
            result = self.session.execute(
                sa_update(SegmentRow)
                .where(SegmentRow.has_events.is_(False), or_(*ranges))
                .values(has_events=True)
                .execution_options(synchronize_session=False)
            )
            flagged += int(getattr(result, "rowcount", 0))
        return flagged

    @staticmethod
    def _range(query: Any, camera: str | None, since: float | None, until: float | None) -> Any:
        return query.where(*SegmentRepo._overlapping(camera, since, until))

    @staticmethod
    def _overlapping(
        camera: str | None, since: float | None, until: float | None
    ) -> builtins.list[ColumnElement[bool]]:
        """Segments (of ``camera``) overlapping ``[since, until)``."""
        out: builtins.list[ColumnElement[bool]] = []
        if camera is not None:
            out.append(SegmentRow.camera == camera)
        if since is not None:
            # ``end > since`` alone cannot bound an index on (camera, start): every older
            # segment of the camera would be read and dropped. No segment is longer than the
            # longest one, so an overlapping one starts after ``since - longest`` (the same
            # rows, exactly; one lookup of ix_segments_span).
            longest = select(func.coalesce(func.max(SegmentRow.end - SegmentRow.start), 0.0))
            out += [SegmentRow.end > since, SegmentRow.start >= since - longest.scalar_subquery()]
        if until is not None:
            out.append(SegmentRow.start < until)
        return out


# -- counts -----------------------------------------------------------------------------------

Period = Literal["minute", "hour", "day", "week"]
_PERIOD_S: dict[str, int] = {"minute": 60, "hour": 3600, "day": 86400, "week": 7 * 86400}
#: Weeks are ISO weeks (Monday 00:00 UTC). The UNIX epoch fell on a Thursday, so bucketing
#: ``bucket + _WEEK_SHIFT`` by whole weeks and shifting back starts each week on a Monday
#: (1969-12-29 is one); the shift keeps every operand positive, so SQL's integer division,
#: which truncates, floors.
_WEEK_SHIFT = 3 * 86400


@dataclass(frozen=True, slots=True)
class CountPoint:
    """One point of a count time series: ``time`` is the UTC start of the period."""

    time: int
    label: str
    metric: str
    count: int


@dataclass(frozen=True, slots=True)
class CountKey:
    """Which counter: a camera's rule (``kind`` ``line``/``zone``), a class, a direction."""

    camera: str
    rule: str
    kind: str
    label: str
    metric: str = ""


def minute_bucket(when: float) -> int:
    """The UNIX second at which the UTC minute holding ``when`` starts."""
    return math.floor(when / 60.0) * 60


class CountRepo:
    """Counts per rule, class and direction, in UTC minute buckets."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def increment(self, key: CountKey, when: float, n: int = 1) -> None:
        """Add ``n`` to the key's counter for the minute holding ``when`` (an atomic upsert)."""
        values: dict[str, Any] = {
            "camera": key.camera, "rule": key.rule, "kind": key.kind, "label": key.label,
            "metric": key.metric, "bucket": minute_bucket(when), "count": int(n),
        }  # fmt: skip
        unique = ["camera", "rule", "kind", "label", "metric", "bucket"]
        dialect = self.session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        stmt = insert(CountRow).values(**values)
        stmt = stmt.on_conflict_do_update(
            index_elements=unique, set_={"count": CountRow.count + stmt.excluded.count}
        )
        self.session.execute(stmt)

    def increment_many(self, hits: Iterable[tuple[CountKey, float]]) -> int:
        """``increment`` by one for each ``(key, when)``, summed per counter and minute first,
        in one batched upsert (counters in key order, so concurrent writers lock them in the
        same order and cannot deadlock). Returns how many counters changed."""
        totals: dict[tuple[str, str, str, str, str, int], int] = {}
        for key, when in hits:
            ident = (key.camera, key.rule, key.kind, key.label, key.metric, minute_bucket(when))
            totals[ident] = totals.get(ident, 0) + 1
        if not totals:
            return 0
        names = ("camera", "rule", "kind", "label", "metric", "bucket")
        rows = [(*ident, n) for ident, n in sorted(totals.items())]
        _bulk_write(self.session, CountRow, _Rows((*names, "count"), rows), key=names, mode="add")
        return len(rows)

    def series(
        self, camera: str, *, rule: str | None = None, label: str | None = None,
        metric: str | None = None, since: float | None = None, until: float | None = None,
        period: Period = "hour",
    ) -> list[CountPoint]:  # fmt: skip
        """Counts summed per ``period`` (UTC; ``week``: ISO weeks from Monday), class and
        metric, oldest first.

        Buckets starting in ``[since, until)`` are included, so ask for whole periods.
        """
        step = _PERIOD_S[period]
        # Integer floor division (``//`` stays integer in SQL on both backends).
        bucket = CountRow.bucket
        start: ColumnElement[int] = bucket.expression
        if period == "week":
            start = ((bucket + _WEEK_SHIFT) // step) * step - _WEEK_SHIFT
        elif step > 60:
            start = (bucket // step) * step
        start = start.label("start")
        query = (
            select(start, CountRow.label, CountRow.metric, func.sum(CountRow.count))
            .where(CountRow.camera == camera)
            .group_by(start, CountRow.label, CountRow.metric)
            .order_by(start, CountRow.label, CountRow.metric)
        )
        for col, value in ((CountRow.rule, rule), (CountRow.label, label),
                           (CountRow.metric, metric)):  # fmt: skip
            if value is not None:
                query = query.where(col == value)
        if since is not None:
            query = query.where(CountRow.bucket >= since)
        if until is not None:
            query = query.where(CountRow.bucket < until)
        return [CountPoint(int(t), lab, met, int(c))
                for t, lab, met, c in self.session.execute(query)]  # fmt: skip


# -- users and tokens -------------------------------------------------------------------------


class UserRepo:
    """Users. Password hashing belongs to the auth layer: this stores the hash it is given."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(
        self, name: str, role: Role, password_hash: str, *,
        cameras: Sequence[str] | None = None, now: float | None = None,
    ) -> UserRow:  # fmt: skip
        """Create a user; ``StorageError`` if the name is taken."""
        if not name.strip():
            raise StorageError("a user needs a name")
        row = UserRow(
            name=name,
            role=Role(role),
            password_hash=password_hash,
            disabled=False,
            cameras=None if cameras is None else list(cameras),
            created=_now(now),
        )
        try:
            with self.session.begin_nested():
                self.session.add(row)
        except IntegrityError as exc:
            raise StorageError(f"user {name!r} already exists; pick another name") from exc
        return row

    def get(self, name: str) -> UserRow | None:
        return self.session.scalar(select(UserRow).where(UserRow.name == name))

    def get_by_id(self, user_id: int) -> UserRow | None:
        return self.session.get(UserRow, user_id)

    def list(self) -> list[UserRow]:
        return list(self.session.scalars(select(UserRow).order_by(UserRow.name)))

    def count(self, role: Role | None = None) -> int:
        """How many users (of ``role``): zero admins means the first-run setup is open."""
        query = select(func.count()).select_from(UserRow)
        if role is not None:
            query = query.where(UserRow.role == role)
        return int(self.session.scalar(query) or 0)

    def lock(self) -> None:
        """Hold the users table until the transaction ends, so a check-then-write on users
        (the first-run setup, the last admin) cannot interleave with another. SQLite needs
        nothing beyond a session opened with ``immediate=True``."""
        if self.session.get_bind().dialect.name == "postgresql":
            self.session.execute(sa_text("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE"))

    def is_last_admin(self, name: str) -> bool:
        """Whether ``name`` is the only enabled admin: demoting or disabling them would leave
        nobody able to manage users (call ``lock`` first)."""
        others = self.session.scalar(
            select(func.count()).select_from(UserRow).where(
                UserRow.role == Role.ADMIN, UserRow.disabled.is_(False), UserRow.name != name)
        )  # fmt: skip
        row = self.get(name)
        return row is not None and row.role == Role.ADMIN and not row.disabled and not others

    def set_disabled(self, name: str, disabled: bool = True) -> UserRow:
        row = self._require(name)
        row.disabled = disabled
        return row

    def set_role(self, name: str, role: Role) -> UserRow:
        row = self._require(name)
        row.role = Role(role)
        return row

    def set_cameras(self, name: str, cameras: Sequence[str] | None) -> UserRow:
        """Limit the user to ``cameras``; None gives access to every camera."""
        row = self._require(name)
        row.cameras = None if cameras is None else list(cameras)
        return row

    def set_password_hash(self, name: str, password_hash: str) -> UserRow:
        row = self._require(name)
        row.password_hash = password_hash
        return row

    def _require(self, name: str) -> UserRow:
        row = self.get(name)
        if row is None:
            raise StorageError(f"no user named {name!r}; list users with `vigil user list`")
        return row


def hash_token(token: str) -> str:
    """SHA-256 hex of a token: what the database keeps instead of the token itself.

    A plain hash (no salt, no slow KDF) is enough because tokens are 256 random bits, not
    guessable passwords, and it keeps lookup a single indexed query.
    """
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(slots=True)
class IssuedToken:
    """A new token: ``token`` goes to the client once and is never stored; ``row`` is."""

    token: str
    row: TokenRow = field(repr=False)


class TokenRepo:
    """Login sessions and API tokens, by hash."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def issue(
        self, user_id: int, kind: TokenKind, *, ttl_s: float | None = None,
        name: str | None = None, now: float | None = None, scope: str | None = None,
    ) -> IssuedToken:  # fmt: skip
        """Create a random token for the user; only its hash is stored. ``scope``: see
        ``TokenRow.scope``."""
        created = _now(now)
        token = secrets.token_urlsafe(32)
        row = TokenRow(token_hash=hash_token(token), user_id=user_id, kind=TokenKind(kind),
                       name=name, created=created, last_used=created, scope=scope,
                       expires=None if ttl_s is None else created + ttl_s)  # fmt: skip
        self.session.add(row)
        self.session.flush()
        return IssuedToken(token, row)

    def lookup(
        self, token: str, *, now: float | None = None, touch: bool = True,
    ) -> tuple[TokenRow, UserRow] | None:  # fmt: skip
        """The token's row and user, if the token exists, has not expired and the user is
        enabled; records ``last_used`` unless ``touch`` is false. None otherwise (the caller
        says only "not valid")."""
        when = _now(now)
        found = self.session.execute(
            select(TokenRow, UserRow)
            .join(UserRow, TokenRow.user_id == UserRow.id)
            .where(TokenRow.token_hash == hash_token(token), UserRow.disabled.is_(False),
                   or_(TokenRow.expires.is_(None), TokenRow.expires > when))
        ).first()  # fmt: skip
        if found is None:
            return None
        if touch:
            found[0].last_used = when
        return found[0], found[1]

    def touch(self, token_id: int, *, now: float | None = None) -> None:
        """Record that the token was used at ``now``."""
        self.session.execute(
            sa_update(TokenRow).where(TokenRow.id == token_id).values(last_used=_now(now))
        )

    def list(self, user_id: int | None = None) -> list[TokenRow]:
        query = select(TokenRow).order_by(TokenRow.created)
        if user_id is not None:
            query = query.where(TokenRow.user_id == user_id)
        return list(self.session.scalars(query))

    def revoke(self, token: str) -> bool:
        """Delete the token (logout); False when it was not there."""
        result = self.session.execute(
            delete(TokenRow).where(TokenRow.token_hash == hash_token(token))
        )
        return int(getattr(result, "rowcount", 0)) > 0

    def revoke_user(self, user_id: int, kind: TokenKind | None = None) -> int:
        """Delete a user's tokens (of ``kind``): after a password change or disabling."""
        query = delete(TokenRow).where(TokenRow.user_id == user_id)
        if kind is not None:
            query = query.where(TokenRow.kind == kind)
        return int(getattr(self.session.execute(query), "rowcount", 0))

    def purge_expired(self, *, now: float | None = None) -> int:
        """Delete the tokens that expired by ``now``; how many."""
        when = _now(now)
        query = delete(TokenRow).where(TokenRow.expires.is_not(None), TokenRow.expires <= when)
        return int(getattr(self.session.execute(query), "rowcount", 0))

    def api_tokens(self, user_id: int | None = None) -> builtins.list[tuple[TokenRow, str]]:
        """API tokens (of one user) with their user's name, oldest first; never sessions."""
        query = (
            select(TokenRow, UserRow.name)
            .join(UserRow, TokenRow.user_id == UserRow.id)
            .where(TokenRow.kind == TokenKind.API)
            .order_by(TokenRow.created, TokenRow.id)
        )
        if user_id is not None:
            query = query.where(TokenRow.user_id == user_id)
        return [(row, name) for row, name in self.session.execute(query)]

    def get(self, token_id: int) -> TokenRow | None:
        return self.session.get(TokenRow, token_id)

    def revoke_id(self, token_id: int) -> bool:
        """Delete the token with this id; False when it was not there."""
        result = self.session.execute(delete(TokenRow).where(TokenRow.id == token_id))
        return int(getattr(result, "rowcount", 0)) > 0


# -- login throttle ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ThrottleKey:
    """What the login throttle counts attempts against: ``scope`` is "account" or "address"."""

    scope: str
    key: str


class LoginAttemptRepo:
    """The rows behind the login throttle (see ``LoginAttemptRow``)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def lock(self, keys: Iterable[ThrottleKey]) -> None:
        """Serialise check-then-record on these keys until the transaction ends.

        SQLite needs nothing beyond a session opened with ``immediate=True`` (one writer at a
        time). PostgreSQL takes a transaction-scoped advisory lock per key, in a fixed order
        so that two attempts sharing both keys cannot deadlock.
        """
        if self.session.get_bind().dialect.name != "postgresql":
            return
        for lock_id in sorted({_advisory_id(k) for k in keys}):
            self.session.execute(sa_text("SELECT pg_advisory_xact_lock(:id)"), {"id": lock_id})

    def window(self, key: ThrottleKey, since: float) -> tuple[int, float | None]:
        """How many attempts on ``key`` are newer than ``since``, and the oldest one's time."""
        count, oldest = self.session.execute(
            select(func.count(), func.min(LoginAttemptRow.time)).where(
                LoginAttemptRow.scope == key.scope, LoginAttemptRow.key == _column_key(key),
                LoginAttemptRow.time > since)
        ).one()  # fmt: skip
        return int(count or 0), None if oldest is None else float(oldest)

    def record(self, key: ThrottleKey, when: float) -> int:
        """Count an attempt on ``key`` at ``when``; the new row's id."""
        row = LoginAttemptRow(scope=key.scope, key=_column_key(key), time=when)
        self.session.add(row)
        self.session.flush()
        return row.id

    def forget(self, ids: Iterable[int]) -> None:
        """Delete these attempts (a login that succeeded, or one that was never checked)."""
        wanted = builtins.list(ids)
        if wanted:
            self.session.execute(delete(LoginAttemptRow).where(LoginAttemptRow.id.in_(wanted)))

    def clear(self, key: ThrottleKey) -> int:
        """Delete every attempt on ``key`` (an account whose owner just logged in)."""
        query = delete(LoginAttemptRow).where(LoginAttemptRow.scope == key.scope,
                                              LoginAttemptRow.key == _column_key(key))  # fmt: skip
        result = self.session.execute(query)
        return int(getattr(result, "rowcount", 0))

    def purge(self, before: float) -> int:
        """Delete attempts older than ``before`` (outside every window); how many."""
        result = self.session.execute(delete(LoginAttemptRow).where(LoginAttemptRow.time <= before))
        return int(getattr(result, "rowcount", 0))


def _column_key(key: ThrottleKey) -> str:
    """The key as stored: cut to the column's 128 characters, the same way everywhere."""
    return key.key[:128]


def _advisory_id(key: ThrottleKey) -> int:
    """A signed 64-bit advisory lock id for ``key`` (PostgreSQL's bigint)."""
    digest = hashlib.sha256(f"vigil-login:{key.scope}:{key.key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


# -- audit (reads) ----------------------------------------------------------------------------


class AuditRepo:
    """Filtered reads of the audit chain for auditors; appends go through ``AuditLog``."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def records(
        self, *, actor: str | None = None, action: str | None = None,
        since: float | None = None, until: float | None = None, after_seq: int = 0,
        limit: int = 100,
    ) -> builtins.list[AuditRow]:  # fmt: skip
        """Records with ``seq > after_seq`` matching the filters, in chain order.

        ``action`` ending in ``.`` or ``*`` matches a prefix (``segment.`` = every segment
        action); ``since``/``until`` select ``time`` in ``[since, until)``. ``limit`` is
        clamped to 1..``MAX_PAGE``; page on with the last ``seq`` seen.
        """
        query = select(AuditRow).where(AuditRow.seq > after_seq)
        if actor is not None:
            query = query.where(AuditRow.actor == actor)
        if action is not None:
            if action.endswith(("*", ".")):
                prefix = action.rstrip("*")
                escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                query = query.where(AuditRow.action.like(escaped + "%", escape="\\"))
            else:
                query = query.where(AuditRow.action == action)
        if since is not None:
            query = query.where(AuditRow.time >= since)
        if until is not None:
            query = query.where(AuditRow.time < until)
        limit = max(1, min(int(limit), MAX_PAGE))
        return builtins.list(self.session.scalars(query.order_by(AuditRow.seq).limit(limit)))


#: Job states; ``ACTIVE`` ones still have work to do.
JOB_QUEUED, JOB_RUNNING, JOB_DONE, JOB_FAILED = "queued", "running", "done", "failed"
ACTIVE_JOB_STATES = (JOB_QUEUED, JOB_RUNNING)


class JobRepo:
    """Background jobs (``JobRow``): enqueue, claim the next, report progress, finish.

    Claiming takes the write lock (open the session with ``immediate=True``) so that two
    workers never run the same job.
    """

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(
        self, kind: str, params: dict[str, Any], *, priority: int = 0, key: str | None = None,
        owner: str | None = None, not_before: float = 0.0, now: float | None = None,
    ) -> JobRow:  # fmt: skip
        row = JobRow(id=secrets.token_hex(16), kind=kind, state=JOB_QUEUED, priority=priority,
                     key=key, owner=owner, params=dict(params), progress=0.0, result=None,
                     error=None, created=_now(now), started=None, finished=None,
                     not_before=float(not_before))  # fmt: skip
        self.session.add(row)
        self.session.flush()
        return row

    def get(self, job_id: str) -> JobRow | None:
        return self.session.get(JobRow, job_id)

    def active(self, key: str) -> JobRow | None:
        """The queued or running job that makes ``key``, if any."""
        query = select(JobRow).where(JobRow.key == key, JobRow.state.in_(ACTIVE_JOB_STATES))
        return self.session.scalars(query.order_by(JobRow.created).limit(1)).first()

    def latest(self, key: str, *, state: str | None = None) -> JobRow | None:
        """The newest job that made (or makes) ``key``; with ``state``, the newest in it."""
        found = self.of_key(key, state=state, limit=1)
        return found[0] if found else None

    def of_key(self, key: str, *, state: str | None = None, limit: int = 20) -> list[JobRow]:
        """The newest ``limit`` jobs that made (or make) ``key``, newest first; with
        ``state``, only those in it."""
        query = select(JobRow).where(JobRow.key == key)
        if state is not None:
            query = query.where(JobRow.state == state)
        return list(self.session.scalars(query.order_by(JobRow.created.desc()).limit(limit)))

    def any_due(self, now: float | None = None) -> bool:
        """Whether a queued job is due (a read: the idle poll takes no write lock)."""
        query = select(JobRow.id).where(JobRow.state == JOB_QUEUED,
                                        JobRow.not_before <= _now(now)).limit(1)  # fmt: skip
        return self.session.scalars(query).first() is not None

    def claim(self, now: float | None = None) -> JobRow | None:
        """Mark the next due queued job running and return it (highest priority, oldest)."""
        when = _now(now)
        query = (select(JobRow)
                 .where(JobRow.state == JOB_QUEUED, JobRow.not_before <= when)
                 .order_by(JobRow.priority.desc(), JobRow.created, JobRow.id)
                 .limit(1).with_for_update(skip_locked=True))  # fmt: skip
        row = self.session.scalars(query).first()
        if row is not None:
            row.state, row.started = JOB_RUNNING, when
        return row

    def set_progress(self, job_id: str, progress: float) -> None:
        self.session.execute(sa_update(JobRow).where(JobRow.id == job_id)
                             .values(progress=min(1.0, max(0.0, float(progress)))))  # fmt: skip

    def finish(self, job_id: str, result: dict[str, Any], now: float | None = None) -> None:
        self.session.execute(
            sa_update(JobRow)
            .where(JobRow.id == job_id)
            .values(state=JOB_DONE, progress=1.0, result=result, error=None, finished=_now(now))
        )

    def fail(self, job_id: str, error: str, now: float | None = None) -> None:
        self.session.execute(
            sa_update(JobRow)
            .where(JobRow.id == job_id)
            .values(state=JOB_FAILED, error=error[:2000], finished=_now(now))
        )

    def defer(self, job_id: str, not_before: float) -> None:
        """Back to the queue, not to be claimed before ``not_before``."""
        self.session.execute(
            sa_update(JobRow)
            .where(JobRow.id == job_id)
            .values(state=JOB_QUEUED, started=None, not_before=not_before)
        )

    def promote(self, job_id: str, priority: int, owner: str | None) -> None:
        """Someone waits for this job: raise its priority, make it due now, and give it an
        owner when it had none (so it counts against that user's limit)."""
        row = self.session.get(JobRow, job_id)
        if row is None:
            return
        row.priority = max(row.priority, priority)
        row.not_before = 0.0
        if row.owner is None:
            row.owner = owner

    def requeue_running(self) -> int:
        """Queue again the jobs a stopped server left running; returns how many."""
        result = self.session.execute(
            sa_update(JobRow)
            .where(JobRow.state == JOB_RUNNING)
            .values(state=JOB_QUEUED, started=None, progress=0.0)
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    def count_active(self, *, owner: str | None = None, kind: str | None = None) -> int:
        query = select(func.count()).select_from(JobRow).where(JobRow.state.in_(ACTIVE_JOB_STATES))
        if owner is not None:
            query = query.where(JobRow.owner == owner)
        if kind is not None:
            query = query.where(JobRow.kind == kind)
        return int(self.session.scalar(query) or 0)

    def list(self, *, owner: str | None = None, kind: str | None = None,
             limit: int = 100) -> builtins.list[JobRow]:  # fmt: skip
        """Newest first; ``owner=None``: everyone's."""
        query = select(JobRow)
        if owner is not None:
            query = query.where(JobRow.owner == owner)
        if kind is not None:
            query = query.where(JobRow.kind == kind)
        return builtins.list(
            self.session.scalars(query.order_by(JobRow.created.desc(), JobRow.id).limit(limit))
        )

    def delete_finished(self, before: float) -> int:
        """Forget done and failed jobs that finished before ``before``."""
        result = self.session.execute(
            delete(JobRow).where(JobRow.state.in_((JOB_DONE, JOB_FAILED)), JobRow.finished < before)
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]
