"""The only door to unredacted pixels: an explicit, reasoned request written to an audit file.

``unredacted_access`` writes one JSON line (who, what, when, why) to a local append-only
audit file *before* it returns the ``UnredactedGrant`` that a ``Redactor`` needs to pass pixels
through. No reason, no grant; the audit line cannot be written, no grant either (fail
closed). The server adds roles and a hash-chained audit log on top; the library and the CLI
keep the same shape so the choice is never implicit.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from vigil.errors import PrivacyError

_MIN_REASON = 3


@dataclass(frozen=True, slots=True)
class UnredactedGrant:
    """Proof that an unredacted request was audited. Build it only via ``unredacted_access``."""

    actor: str
    what: str
    reason: str
    time: str
    audit_path: Path
    _token: object

    def __post_init__(self) -> None:
        if self._token is not _TOKEN:
            raise PrivacyError(
                "an UnredactedGrant comes only from vigil.privacy.unredacted_access(), which "
                "writes the audit record"
            )


_TOKEN = object()


def unredacted_access(reason: str, actor: str, audit_path: Path, what: str) -> UnredactedGrant:
    """Record a request for unredacted output and return the grant for it.

    ``reason``: why (required, non-empty); ``actor``: who asks (a user name, or the OS user for
    the CLI); ``what``: the output concerned (a file, an event id, a camera and time range).
    The audit line is ``{"time", "action", "actor", "what", "reason"}`` with an ISO-8601 UTC
    time, appended and flushed to disk before the grant exists.
    """
    reason, actor = reason.strip(), actor.strip()
    if len(reason) < _MIN_REASON:
        raise PrivacyError(
            "unredacted output needs a reason (e.g. --reason 'police request 2024-118'); it is "
            "written to the audit file"
        )
    if not actor:
        raise PrivacyError("unredacted output needs the name of who asks for it")
    when = datetime.now(UTC).isoformat(timespec="seconds")
    record = {
        "time": when,
        "action": "unredacted_access",
        "actor": actor,
        "what": what,
        "reason": reason,
    }
    _append_line(audit_path, json.dumps(record, ensure_ascii=False))
    return UnredactedGrant(actor, what, reason, when, audit_path, _TOKEN)


def _append_line(path: Path, line: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, (line + "\n").encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise PrivacyError(
            f"cannot write the audit file {path} ({exc}); unredacted output is refused until "
            "the request can be recorded. Fix the path or its permissions."
        ) from exc
