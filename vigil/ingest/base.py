"""The source contract: what every video source gives the rest of Vigil.

A source yields :class:`~vigil.types.Frame` objects in decode order with a ``seq`` that only
ever increases (across reconnects too) and a ``pts`` in seconds from the start of the stream.
Network sources report their health through an optional ``on_status`` callback, so a
supervisor can show "camera 3 reconnecting (attempt 4): connection refused" without parsing
logs.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable
from urllib.parse import urlsplit

from vigil.types import Frame

#: URL schemes that name a network stream (reconnect, wall-clock timestamps).
NETWORK_SCHEMES = frozenset(
    {"rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "srt", "udp", "tcp", "rtp"}
)


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """What opening a source found out.

    ``url`` is credential-masked (safe to log); ``width``/``height`` in pixels of the decoded
    frames; ``fps`` the nominal rate FFmpeg reports (a guess for live streams);
    ``frame_count`` is None when unknown (live streams, some containers); ``live`` says whether
    frame times are wall-clock (network streams) or media time (files).
    """

    url: str
    width: int
    height: int
    fps: float
    frame_count: int | None
    live: bool


class SourceState(enum.StrEnum):
    """Life cycle of a source, as reported through ``on_status``."""

    CONNECTING = "connecting"
    STREAMING = "streaming"
    STALLED = "stalled"
    RECONNECTING = "reconnecting"
    FAILED = "failed"
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """One change of a source's state.

    ``attempts`` counts reconnection attempts since the last frame (0 while healthy);
    ``last_error`` is a credential-masked description of what went wrong, if anything;
    ``last_frame_time`` is the ``time.time()`` of the last decoded frame, None before the first.
    """

    camera_id: str
    url: str
    state: SourceState
    attempts: int = 0
    last_error: str | None = None
    last_frame_time: float | None = None


StatusCallback = Callable[[SourceStatus], None]


@runtime_checkable
class Source(Protocol):
    """A video source: open it, iterate its frames, close it.

    ``open`` is idempotent and raises :class:`~vigil.errors.SourceError` when the source cannot
    be opened; ``frames`` opens the source if needed; ``close`` may be called at any time, also
    from another thread, and makes ``frames`` stop.
    """

    camera_id: str

    def open(self) -> SourceInfo: ...

    def frames(self) -> Iterator[Frame]: ...

    def close(self) -> None: ...


# The password part is greedy up to the last "@" before the path, because passwords may
# themselves contain "@" (badly encoded, but cameras accept them).
_USERINFO = re.compile(
    r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:@/\s]*)(?P<password>:[^/\s]*)?@"
)


def mask_credentials(text: str) -> str:
    """Replace the password of every ``scheme://user:password@`` in ``text`` with ``***``.

    Works on whole messages too (FFmpeg errors quote the URL), so call it on anything that may
    be logged. A user name without a password is kept; the password never is.
    """
    return _USERINFO.sub(
        lambda m: f"{m['scheme']}{m['user']}:***@" if m["password"] else m.group(0), text
    )


def is_network_url(url: str) -> bool:
    """True when ``url`` names a network stream rather than a local file."""
    scheme = urlsplit(url).scheme.lower()
    return scheme in NETWORK_SCHEMES
