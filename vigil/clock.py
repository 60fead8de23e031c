"""``now()``: UTC seconds for the timestamps Vigil stores, without the host clock's jumps.

Live frames, segments and retention used to read ``time.time()`` directly, so the host clock
jumping (an RTC that was wrong at boot until NTP stepped it, a manual ``date -s``, a VM
resumed from a snapshot) reached the data: a step back gave events and tracker steps
negative durations, a step forward of a year made every recording look a year old, and
retention deleted them all.

``SteadyClock`` follows the wall clock, but when it moves more than ``jump_s`` away from
where the monotonic clock says it should be since the last reading, the step is absorbed
into an offset (and logged), so the time goes on smoothly; the offset is then worked off at
``slew`` seconds per second (1 %: a one-hour step is caught up in about 100 hours), the way
NTP slews rather than steps, so readings never go backwards. Small drift (NTP's own slewing,
at most 0.05 %) passes straight through. Timers and timeouts use ``time.monotonic()``, not
this. One clock per process; tests swap it with ``install``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

#: A step of the wall clock larger than this (seconds, beyond the elapsed monotonic time)
#: between two readings is a jump, absorbed instead of followed.
JUMP_S = 2.0

#: Seconds of an absorbed jump worked off per second of monotonic time.
SLEW = 0.01


class SteadyClock:
    """The wall clock with its jumps absorbed and slewed away (see the module docstring)."""

    def __init__(
        self,
        wall: Callable[[], float] | None = None,
        monotonic: Callable[[], float] | None = None,
        *,
        jump_s: float = JUMP_S,
        slew: float = SLEW,
    ) -> None:
        if not 0.0 <= slew < 1.0:
            raise ValueError(f"slew must be in [0, 1), got {slew}")
        self._wall = wall or time.time
        self._monotonic = monotonic or time.monotonic
        self.jump_s = jump_s
        self.slew = slew
        self._lock = threading.Lock()
        self._last: tuple[float, float] | None = None  # (reading, monotonic) of the last call
        #: Seconds added to the wall clock now (the part of absorbed jumps not yet slewed).
        self.offset = 0.0
        #: Jumps absorbed since start.
        self.jumps = 0

    def __call__(self) -> float:
        with self._lock:
            wall, mono = self._wall(), self._monotonic()
            if self._last is None:
                self._last = (wall + self.offset, mono)
                return wall + self.offset
            last, last_mono = self._last
            elapsed = max(0.0, mono - last_mono)
            step = wall + self.offset - (last + elapsed)
            if abs(step) > self.jump_s:
                self.offset -= step
                self.jumps += 1
                log.warning("the host clock jumped %+.1f s; Vigil's timestamps go on smoothly "
                            "and catch up at %.0f %% (%.0f s to go)", step, self.slew * 100,
                            abs(self.offset))  # fmt: skip
            work = min(abs(self.offset), self.slew * elapsed)
            self.offset += -work if self.offset > 0 else work
            reading = max(last, wall + self.offset)
            self._last = (reading, mono)
            return reading


_clock = SteadyClock()


def now() -> float:
    """UTC seconds now, from the process's ``SteadyClock``."""
    return _clock()


def install(clock: SteadyClock) -> SteadyClock:
    """Make ``clock`` the process's clock; returns the one it replaces (tests)."""
    global _clock
    previous, _clock = _clock, clock
    return previous
