"""Storage: SQLAlchemy 2 schema, Alembic migrations, repositories and the audit chain.

Every query Vigil runs lives in this package. ``Database(url)`` opens SQLite (WAL, the embedded
default) or PostgreSQL; ``Database.migrate()`` brings the schema up to date; repositories wrap
a ``Database.session()``::

    db = Database("sqlite:///vigil-data/vigil.db")
    db.migrate()
    with db.session() as session:
        EventRepo(session).upsert(event)
    AuditLog(db).append("alice", "segment.read", "front/2024-05-01/10/00.00.mp4")

Importing this package needs the ``server`` extra (SQLAlchemy, Alembic, psycopg).
"""

from __future__ import annotations

from vigil.store.audit import AuditHead, AuditLog, AuditReport
from vigil.store.db import Database, database_url_for, default_database_url
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
from vigil.store.repo import (
    ANY_NODE,
    AuditRepo,
    CameraRepo,
    CountKey,
    CountPoint,
    CountRepo,
    EventCursor,
    EventFilter,
    EventPage,
    EventRepo,
    IssuedToken,
    JobRepo,
    LoginAttemptRepo,
    SegmentRepo,
    ThrottleKey,
    TokenRepo,
    UserRepo,
    hash_token,
    minute_bucket,
)

__all__ = [
    "ANY_NODE",
    "AuditHead",
    "AuditLog",
    "AuditRepo",
    "AuditReport",
    "AuditRow",
    "CameraRepo",
    "CameraRow",
    "CountKey",
    "CountPoint",
    "CountRepo",
    "CountRow",
    "Database",
    "EventCursor",
    "EventFilter",
    "EventPage",
    "EventRepo",
    "EventRow",
    "IssuedToken",
    "JobRepo",
    "JobRow",
    "LoginAttemptRepo",
    "LoginAttemptRow",
    "Role",
    "SegmentRepo",
    "SegmentRow",
    "ThrottleKey",
    "TokenKind",
    "TokenRepo",
    "TokenRow",
    "UserRepo",
    "UserRow",
    "database_url_for",
    "default_database_url",
    "hash_token",
    "minute_bucket",
]
