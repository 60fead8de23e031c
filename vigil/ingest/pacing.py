"""Real-time pacing: a file read as if a camera were sending it.

A file demuxes as fast as the disk allows (~75 fps for a 640×360 clip here), but a file used as
a camera must deliver its frames, and its packets to the recorder, at the rate they were
filmed, so that detection, recording, events and the live view see what a camera would show.
``Pacer`` releases media time ``t`` at wall-clock ``anchor + t``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from vigil.ingest.backoff import Backoff

#: A reader further behind real time than this (s) is re-anchored instead of catching up in
#: a burst: a camera that falls behind does not send its backlog at once either.
MAX_LAG = 1.0


class Pacer:
    """Waits until each media timestamp is due; ``stop`` set ends a wait early."""

    def __init__(
        self,
        stop: threading.Event,
        *,
        max_lag: float = MAX_LAG,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stop = stop
        self.max_lag = max_lag
        self.clock = clock
        self._anchor: float | None = None

    def restart(self) -> None:
        """The next timestamp is due at once (a new connection restarts the media clock)."""
        self._anchor = None

    def wait(self, media_seconds: float) -> bool:
        """Block until ``media_seconds`` is due; False when ``stop`` was set meanwhile."""
        now = self.clock()
        if self._anchor is None or now - (self._anchor + media_seconds) > self.max_lag:
            self._anchor = now - media_seconds
            return not self.stop.is_set()
        delay = self._anchor + media_seconds - now
        if delay > 0:
            return not self.stop.wait(delay)
        return not self.stop.is_set()


def loop_backoff() -> Backoff:
    """The reconnection delays of a looping file: at once, since its end is no failure."""
    return Backoff(initial=0.01, factor=1.0, max=0.01, jitter=0.0)
