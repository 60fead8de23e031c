"""When a camera saw motion, as merged time spans, so its recorded segments can say so.

The recorder never decodes, so it cannot see motion itself; the camera's analysis (the motion
gate) tells it, a little later than the packets (decoding and analysis take time). The spans
are kept for ``keep_s`` seconds, long enough for the segments that cover them to be indexed,
and bounded in number, so a camera that moves all day costs a few hundred floats.
"""

from __future__ import annotations

import threading
from collections import deque

#: Two motion times closer than this (s) belong to one span: the gate runs at the detect rate.
MERGE_GAP_S = 2.0


class MotionSpans:
    """Thread-safe spans ``[start, end]`` (UNIX s) of motion, oldest first."""

    def __init__(self, *, keep_s: float = 600.0, max_spans: int = 512) -> None:
        self.keep_s = keep_s
        self._spans: deque[list[float]] = deque(maxlen=max_spans)
        self._lock = threading.Lock()

    def note(self, when: float) -> None:
        """Motion at ``when``: extends the last span or starts a new one."""
        with self._lock:
            last = self._spans[-1] if self._spans else None
            if last is not None and last[0] - MERGE_GAP_S <= when <= last[1] + MERGE_GAP_S:
                last[0], last[1] = min(last[0], when), max(last[1], when)
            else:
                self._spans.append([when, when])
            while self._spans and self._spans[0][1] < when - self.keep_s:
                self._spans.popleft()

    def overlapping(self, since: float, until: float) -> list[tuple[float, float]]:
        """The spans that touch ``[since, until]``."""
        with self._lock:
            return [(a, b) for a, b in self._spans if a <= until and b >= since]

    def any(self, since: float, until: float) -> bool:
        return bool(self.overlapping(since, until))
