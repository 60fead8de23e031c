"""The relational schema: typed SQLAlchemy 2 ORM tables shared by SQLite and PostgreSQL.

Conventions, chosen so the same schema works on both backends and survives a migration:

* Times are ``float`` UNIX seconds (UTC) in ``DOUBLE PRECISION`` columns, except the count
  buckets, which are ``int`` UNIX seconds at the start of a UTC minute. Events from files keep
  media seconds in ``start``/``end`` and ``live = False`` says so (as in ``vigil.types.Event``).
* Media paths are relative to the media root (``data_dir``), never absolute, so a data folder
  can move; each media file's SHA-256 (64 lower-case hex digits) sits beside its path.
* Lists and mappings (zones, lines, counts, camera scopes, audit details) are portable ``JSON``.
* Enumerations are stored as short strings with a CHECK constraint (not native PostgreSQL
  enums), because adding a value to a native enum needs a migration outside a transaction.
* Secrets never enter the database: users hold a password *hash* made by the auth layer, tokens
  only the SHA-256 of the token.

The Alembic migrations in ``vigil/store/migrations`` create exactly this schema; a test compares
the two with Alembic's autogenerate, so a change here without a migration fails the suite.
"""

from __future__ import annotations

import enum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Double,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: Constraint names fixed by convention, so migrations can refer to them on both backends.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: ``prev_hash`` of the first audit record (and the head hash of an empty log).
GENESIS_HASH = "0" * 64


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {  # noqa: RUF012 (SQLAlchemy reads this class attribute)
        float: Double(),
        dict[str, Any]: JSON(),
        list[str]: JSON(),
    }


class Role(enum.StrEnum):
    """What a user may do (the API enforces it; the store only keeps it)."""

    VIEWER = "viewer"  # redacted media only
    OPERATOR = "operator"  # events, rules, exports
    AUDITOR = "auditor"  # reads the audit log
    ADMIN = "admin"  # users, cameras, settings


class TokenKind(enum.StrEnum):
    SESSION = "session"  # a browser login, behind an HTTP-only cookie
    API = "api"  # a machine's bearer token


def _enum(cls: type[enum.StrEnum], name: str) -> Enum:
    return Enum(
        cls, name=name, native_enum=False, create_constraint=True, length=16,
        values_callable=lambda members: [m.value for m in members],
    )  # fmt: skip


class CameraRow(Base):
    """A configured camera, by its config name; ``last_seen`` is the last frame's UNIX time."""

    __tablename__ = "cameras"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    created: Mapped[float]
    last_seen: Mapped[float | None]
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # The detection and recording switches as last set (Home Assistant's, over MQTT),
    # restored at start; None: never switched, on (0009).
    detection: Mapped[bool | None] = mapped_column(Boolean, nullable=True, default=None)
    recording: Mapped[bool | None] = mapped_column(Boolean, nullable=True, default=None)


class EventRow(Base):
    """One ``vigil.types.Event``; its start/update/end states all update this one row.

    ``end`` is NULL while the event is open. ``snapshot_path`` is relative to the media root.
    ``evidence_lock`` is set by users, never by the pipeline, and survives later upserts.
    """

    __tablename__ = "events"
    # Room in each page for the row's next versions (UPDATE, END): updates that stay in
    # their page touch no index (HOT; 0012).
    __table_args__ = (Index("ix_events_camera_start", "camera", "start"),
                      {"postgresql_with": {"fillfactor": 70}})  # fmt: skip

    # ``<camera>-<start>-<track>``: up to 90 characters with a 64-character camera (0009).
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    camera: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(64), index=True)
    class_id: Mapped[int]
    track_id: Mapped[int]
    start: Mapped[float] = mapped_column(index=True)
    end: Mapped[float | None]
    state: Mapped[str] = mapped_column(String(16))
    live: Mapped[bool]
    zones: Mapped[list[str]]
    lines: Mapped[list[str]]
    counts: Mapped[dict[str, Any]]
    top_score: Mapped[float]
    snapshot_path: Mapped[str | None] = mapped_column(Text)
    snapshot_sha256: Mapped[str | None] = mapped_column(String(64))
    evidence_lock: Mapped[bool] = mapped_column(Boolean, default=False)
    updated: Mapped[float]
    zones_now: Mapped[list[str]] = mapped_column(JSON, default=list, server_default=text("'[]'"))
    box: Mapped[list[float] | None] = mapped_column(JSON)  # normalised 0-1, x1 y1 x2 y2
    measures: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict,
                                                     server_default=text("'{}'"))  # fmt: skip
    reviewed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The cluster node whose data dir holds ``snapshot_path``; None on a single host (0006).
    node: Mapped[str | None] = mapped_column(String(128), nullable=True, default=None)


class SegmentRow(Base):
    """One recorded media segment (a stream-copied MP4), ``[start, end)`` in UNIX seconds."""

    __tablename__ = "segments"
    # Room for the one update most rows get (``has_events``), in their page (0012).
    __table_args__ = (Index("ix_segments_camera_start", "camera", "start"),
                      {"postgresql_with": {"fillfactor": 90}})  # fmt: skip

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    camera: Mapped[str] = mapped_column(String(64))
    # Relative to the data dir of ``node``: unique per node (``uq_segments_node_path``).
    path: Mapped[str] = mapped_column(Text)
    start: Mapped[float] = mapped_column(index=True)
    end: Mapped[float]
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    evidence_lock: Mapped[bool] = mapped_column(Boolean, default=False)
    has_motion: Mapped[bool] = mapped_column(Boolean, default=False)
    has_events: Mapped[bool] = mapped_column(Boolean, default=False)
    # The cluster node whose data dir holds ``path``; None on a single host (see 0006).
    node: Mapped[str | None] = mapped_column(String(128), nullable=True, default=None)
    # The segment's redacted preview thumbnails: their offsets (ms from ``start``, separated
    # by spaces; None: none) and their bytes on disk, counted by retention (see 0008).
    previews: Mapped[str | None] = mapped_column(Text, nullable=True, default=None)
    preview_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


#: The longest segment's length, for range queries: a segment overlapping ``[since, until)``
#: starts after ``since - longest``, so a camera's older history is never scanned (see
#: ``SegmentRepo._range``); the index answers ``max(end - start)`` at once (0007).
Index("ix_segments_span", SegmentRow.end - SegmentRow.start)

#: A file's place is its node and its path (0008): two nodes may hold one path (a camera that
#: failed over names its first segment as its last one elsewhere was named); the single
#: host's rows (no node) count as one node.
Index("uq_segments_node_path", func.coalesce(SegmentRow.node, ""), SegmentRow.path, unique=True)


class CountRow(Base):
    """How many objects of one class a rule counted in one UTC minute.

    ``kind`` is ``line`` or ``zone``; ``metric`` is the line direction (``a_to_b``/``b_to_a``)
    or the zone measure (``enter``, ``exit``, ...), never NULL ('' when there is none) because
    NULLs are distinct in a unique key and would defeat the upsert.
    """

    __tablename__ = "counts"
    __table_args__ = (
        UniqueConstraint("camera", "rule", "kind", "label", "metric", "bucket"),
        Index("ix_counts_camera_bucket", "camera", "bucket"),
        # A minute's row is updated by every tick that counts in it: room for that (0012).
        {"postgresql_with": {"fillfactor": 90}},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    camera: Mapped[str] = mapped_column(String(64))
    rule: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    label: Mapped[str] = mapped_column(String(64))
    metric: Mapped[str] = mapped_column(String(32))
    bucket: Mapped[int] = mapped_column(BigInteger)
    count: Mapped[int] = mapped_column(Integer)


class UserRow(Base):
    """A person or machine that logs in. ``cameras`` NULL means every camera."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[Role] = mapped_column(_enum(Role, "role"))
    password_hash: Mapped[str] = mapped_column(Text)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    cameras: Mapped[list[str] | None] = mapped_column(JSON)
    created: Mapped[float]


class TokenRow(Base):
    """A login session or API token, by the SHA-256 of the token (the token is never kept)."""

    __tablename__ = "tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[TokenKind] = mapped_column(_enum(TokenKind, "token_kind"))
    name: Mapped[str | None] = mapped_column(String(64))
    created: Mapped[float]
    expires: Mapped[float | None]
    last_used: Mapped[float | None]
    #: None: a full token of its user. ``live:<camera>``: opens only that camera's redacted
    #: stream URL (``vigil.api.routes.stream``); every other route refuses it.
    scope: Mapped[str | None] = mapped_column(String(128), default=None)


class LoginAttemptRow(Base):
    """A login attempt the throttle counts: one row for the account name, one for the client
    address. Rows are written *before* the password is checked (so concurrent guesses cannot
    all pass the check) and deleted again when the login succeeds; what remains are failures,
    purged once older than the window. Kept in the database so every process and replica on
    it shares the limits."""

    __tablename__ = "login_attempts"
    __table_args__ = (Index("ix_login_attempts_scope_key_time", "scope", "key", "time"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(16))  # "account" or "address"
    key: Mapped[str] = mapped_column(String(128))
    time: Mapped[float] = mapped_column(index=True)


class AuditRow(Base):
    """One hash-chained audit record; see ``vigil.store.audit`` for the chain's rules."""

    __tablename__ = "audit"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    time: Mapped[float]
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(String(128))
    reason: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]]
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHeadRow(Base):
    """The one-row chain head: the last record's ``seq`` and ``hash``.

    Appends lock this row, which serialises them on PostgreSQL; it also lets ``verify`` notice
    records deleted from the end of the chain, which the chain alone cannot show.
    """

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))


class JobRow(Base):
    """A background job (an event clip or an export), kept so that a restart finishes it.

    ``state`` runs ``queued`` -> ``running`` -> ``done`` or ``failed``; a job left ``running``
    by a stopped server is queued again at the next start. Higher ``priority`` runs first
    (a clip someone waits for jumps the queue), then the oldest. ``key`` names what the job
    makes, so the same clip is never queued twice. ``owner``: the user who asked (NULL: the
    server itself, e.g. the clip of an event that just ended). ``not_before``: a deferred job
    (waiting for the post-roll to be recorded) is not claimed before then.
    """

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_state_priority", "state", "priority"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    priority: Mapped[int] = mapped_column(Integer)
    key: Mapped[str | None] = mapped_column(String(200), index=True)
    owner: Mapped[str | None] = mapped_column(String(64), index=True)
    params: Mapped[dict[str, Any]]
    progress: Mapped[float]
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    created: Mapped[float]
    started: Mapped[float | None]
    finished: Mapped[float | None]
    not_before: Mapped[float]
