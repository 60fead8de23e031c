"""Direction of travel: headings in degrees and the wrong-way test of a one-way zone.

Heading convention (image and ground alike, both with y pointing "down"): compass-like as
seen on the screen, **0 = up, 90 = right, 180 = down, 270 = left**, in [0, 360). In a
calibrated zone the ground frame is oriented so that these words keep their on-screen meaning
(see `vigil.rules.speed.GroundPlane`), while the angles are true angles on the road.

Wrong way. A track is *against* the zone's allowed ``heading`` when its smoothed heading is
more than ``tolerance`` degrees away from it. Only headings of a moving track count (below
`WrongWayState`'s ``min_speed`` a heading is box jitter, not travel); a standing track neither
extends nor breaks a wrong-way stretch. The event fires once per stretch, when a stretch has
lasted ``min_time`` seconds *and* the track's smoothed position has moved ``min_distance``
from where the stretch began; a moving observation within the allowed headings ends the
stretch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def heading_of(dx: float, dy: float) -> float:
    """Heading in degrees [0, 360) of a movement ``(dx, dy)`` in a y-down frame."""
    return math.degrees(math.atan2(dx, -dy)) % 360.0


def angle_between(a: float, b: float) -> float:
    """Smallest difference of two headings in degrees, in [0, 180]."""
    diff = abs(a - b) % 360.0
    return 360.0 - diff if diff > 180.0 else diff


@dataclass(slots=True)
class WrongWayState:
    """One track's current stretch of travel against the allowed direction, if any."""

    since: float | None = None
    start: tuple[float, float] = (0.0, 0.0)
    fired: bool = False


@dataclass(frozen=True, slots=True)
class WrongWayRule:
    """The compiled one-way test: allowed heading ± tolerance, and the stretch it takes.

    ``min_distance`` and ``min_speed`` are in the units of the positions fed to `update`
    (ground units, or pixels in an uncalibrated zone); ``min_speed`` is per second.
    """

    heading: float
    tolerance: float
    min_distance: float
    min_time: float
    min_speed: float

    def against(self, heading: float) -> bool:
        """Whether ``heading`` lies outside the allowed cone."""
        return angle_between(heading, self.heading) > self.tolerance

    def update(
        self,
        state: WrongWayState,
        time: float,
        position: tuple[float, float],
        velocity: tuple[float, float],
    ) -> float | None:
        """Advance one track by one smoothed observation; the stretch's distance when this
        observation completes a wrong-way stretch (once per stretch), else None."""
        speed = math.hypot(*velocity)
        if speed < self.min_speed:
            return None  # standing: its heading is noise, and it is not travelling either way
        if not self.against(heading_of(*velocity)):
            state.since, state.fired = None, False
            return None
        if state.since is None:
            state.since, state.start, state.fired = time, position, False
            return None
        moved = math.hypot(position[0] - state.start[0], position[1] - state.start[1])
        if state.fired or time - state.since < self.min_time or moved < self.min_distance:
            return None
        state.fired = True
        return moved
