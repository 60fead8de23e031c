"""Types of path and query parameters shared by the routes.

The database stores integers as signed 64-bit values (SQLite ``INTEGER``, PostgreSQL
``BIGINT``); a larger number in a URL made the driver overflow (a 500). Every integer path or
query parameter therefore uses a bounded type from here (or its own tighter ``Query`` bounds),
so that such a request is the client's error, 422, and the OpenAPI document says the range;
``tests/api/test_hardening.py`` walks the document to hold that line.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query
from pydantic import Field

#: The largest value of a signed 64-bit database integer.
DB_INT_MAX = 2**63 - 1

#: A row id or sequence number: 0 .. ``DB_INT_MAX``.
DbId = Annotated[int, Field(ge=0, le=DB_INT_MAX)]


#: What ``EventCursor.encode`` gives: unpadded URL-safe base64 (its alphabet; a length of 1
#: mod 4 is never base64). The spec declares it, so that a client or a fuzzer knows that other
#: strings are refused (422); a string of this form that does not decode is refused too.
CURSOR_PATTERN = r"^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2,3})?$"

#: The ``cursor`` query parameter of a keyset-paginated list.
Cursor = Annotated[
    str | None,
    Query(
        pattern=CURSOR_PATTERN,
        min_length=2,
        max_length=1024,
        description="The next_cursor of the previous page, unchanged (opaque); any other "
        "value is refused with 422.",
    ),
]


#: What ``JobRepo.add`` makes: 16 random bytes in hex. Anything else (an unbounded string
#: included) is refused with 422 before the database is asked.
JOB_ID_PATTERN = r"^[0-9a-f]{32}$"

#: The ``job_id`` path parameter.
JobId = Annotated[
    str, Path(pattern=JOB_ID_PATTERN, description="The job's id (32 hex digits), as `POST` "
              "answered it; any other value is refused with 422."),
]  # fmt: skip

#: The ``event_id`` path parameter: at most as long as the database column (64).
EventId = Annotated[str, Path(min_length=1, max_length=64)]

#: A redacted event clip's cut, as its ``X-Vigil-Clip-Cut`` header named it
#: (``vigil.api.clips.clip_cut``: 16 hex digits of its digest).
ClipCut = Annotated[
    str | None,
    Query(
        pattern="^[0-9a-f]{16}$",
        description="The X-Vigil-Clip-Cut of an earlier answer: serve that cut (a player's "
        "range requests keep reading one file while a newer cut replaces it).",
    ),
]
