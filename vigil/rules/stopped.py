"""Stopped vehicles: a track whose smoothed position stays put inside a zone for N seconds.

A box's bottom edge jitters by a few pixels from frame to frame even around a parked car, and
a tracker's box grows and shrinks as detections come and go, so "the anchor did not move" is
never literally true. The test here uses the track's *smoothed* position (the mean over the
zone's smoothing window, `vigil.rules.speed.MotionWindow`) and calls the track still while that
position stays within ``radius`` of where its stillness began. Moving further starts a new
stillness at the new position, so a car creeping forward in a queue is still only while it
creeps less than ``radius`` in ``seconds``. The stopped time is counted from when the smoothed
position settled, so it may start up to one smoothing window after the wheels stopped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(slots=True)
class StillState:
    """Where and since when one track has been still; whether its event has fired."""

    anchor: tuple[float, float] | None = None
    since: float = 0.0
    fired: bool = False

    def still_for(self, time: float) -> float:
        """Seconds the track has been still at ``time`` (0 before its first position)."""
        return 0.0 if self.anchor is None else max(0.0, time - self.since)


@dataclass(frozen=True, slots=True)
class StoppedRule:
    """The compiled stopped test: ``seconds`` still within ``radius`` (position units)."""

    seconds: float
    radius: float

    def update(self, state: StillState, time: float, position: tuple[float, float]) -> bool:
        """Advance one track by one smoothed position; True when it has just been still for
        ``seconds`` (once per stillness)."""
        if state.anchor is None or math.dist(position, state.anchor) > self.radius:
            state.anchor, state.since, state.fired = position, time, False
            return False
        if state.fired or time - state.since < self.seconds:
            return False
        state.fired = True
        return True

    def is_stopped(self, state: StillState, time: float) -> bool:
        """Whether the track counts as stopped now (still for at least ``seconds``)."""
        return state.anchor is not None and state.still_for(time) >= self.seconds
