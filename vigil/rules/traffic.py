"""Traffic measurements of one zone: speed, heading, wrong way and stopped, per track inside.

`ZoneTraffic` belongs to a `vigil.rules.zone.ZoneRule` and is fed each inside observation of a
track's anchor point (bottom centre by default: where the wheels touch the road). Positions
are ground units (metres or feet) in a calibrated zone (`ZoneConfig.calibration`, see
`vigil.rules.speed.GroundPlane`) and frame pixels otherwise. Every observation refits the
track's smoothed position and velocity over the last ``smoothing`` seconds
(`vigil.rules.speed.MotionWindow`), from which:

* **speed** (calibrated zones only): the fit's speed in km/h or mph; a track's visit keeps
  its time-weighted mean and its maximum. ``SPEEDING`` fires once per visit, on the first
  fit above ``speed_limit``.
* **heading** (always): the direction of the fitted velocity (`vigil.rules.heading`), true on
  the ground when calibrated, on the screen otherwise. ``WRONG_WAY`` fires per the zone's
  ``direction`` (see `vigil.rules.heading.WrongWayRule`).
* **stopped**: ``STOPPED`` fires when the smoothed position has stayed within
  ``stopped_radius`` for ``stopped`` seconds (`vigil.rules.stopped`).

Measures carried by the events (`RuleEvent.measures`): SPEEDING has ``speed_kmh`` (or
``speed_mph``) and ``heading`` at that moment; WRONG_WAY ``heading`` and the distance moved
the wrong way, ``distance_m``, ``distance_ft`` or ``distance_px`` (uncalibrated); STOPPED its
``duration``; EXIT the visit's mean ``speed_kmh``, ``max_speed_kmh`` and overall ``heading``
(first to last smoothed position, or the last fitted heading for a track that hardly moved).

Boxes cut by the frame's edge are not observed (see `cut_by_border`): a vehicle only ever
seen cut (a bus filling the view) gets no speed, heading or stopped event.

Nothing here identifies a vehicle: it is motion of a track inside one zone of one camera,
dropped when the track leaves.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from vigil.config.models import ZoneConfig
from vigil.rules.heading import WrongWayRule, WrongWayState, heading_of
from vigil.rules.speed import F64Array, Fit, GroundPlane, MotionWindow, speed_key
from vigil.rules.stopped import StillState, StoppedRule
from vigil.types import Anchor, RuleEventKind

#: Defaults in ground units per unit system, and in frame diagonals for uncalibrated zones:
#: (stopped radius, wrong-way distance, slowest speed per second whose heading counts).
#: 0.5 m/s (1.8 km/h) is a walking-pace crawl; below it a fitted heading is mostly jitter.
_DEFAULTS = {"m": (1.0, 3.0, 0.5), "ft": (3.0, 10.0, 1.6), "px": (0.02, 0.05, 0.02)}

Measures = tuple[tuple[str, float], ...]

#: A box edge this close to the frame's edge (pixels) counts as cut by it.
BORDER_PX = 1.0


def cut_by_border(
    xyxy: npt.NDArray[np.float32], frame_size: tuple[int, int], anchor: Anchor
) -> npt.NDArray[np.bool_]:
    """Rows whose box is cut by the frame's edge in a way that moves ``anchor``.

    A cut box shows part of the vehicle, so its anchor is not where the vehicle is: the left,
    right and bottom edges move a bottom anchor; the top edge moves it too unless the anchor
    is at the bottom (a car leaving through the top still has its wheels in view).
    """
    width, height = frame_size
    x1, y1, x2, y2 = (xyxy[:, k].astype(np.float64) for k in range(4))
    cut = (x1 <= BORDER_PX) | (x2 >= width - BORDER_PX) | (y2 >= height - BORDER_PX)
    if not anchor.value.startswith("bottom"):
        cut |= y1 <= BORDER_PX
    return np.asarray(cut, dtype=np.bool_)


@dataclass(frozen=True, slots=True)
class Hit:
    """What the traffic part of a zone saw one track do (turned into a `RuleEvent`)."""

    kind: RuleEventKind
    duration: float | None = None
    measures: Measures = ()


@dataclass(slots=True)
class _Travel:
    """One track's motion during its current visit of the zone."""

    window: MotionWindow
    label: str
    wrong: WrongWayState = field(default_factory=WrongWayState)
    still: StillState = field(default_factory=StillState)
    fit: Fit | None = None
    fit_time: float = 0.0
    speed_sum: float = 0.0  # ∫ speed dt over the visit's fits
    speed_time: float = 0.0
    max_speed: float | None = None
    first: tuple[float, float] | None = None  # first smoothed position of the visit
    speeding: bool = False


@dataclass(slots=True)
class _SpeedStats:
    tracks: int = 0
    total: float = 0.0
    top: float = 0.0

    def add(self, mean: float, top: float) -> None:
        self.tracks += 1
        self.total += mean
        self.top = max(self.top, top)

    def as_dict(self) -> dict[str, Any]:
        mean = self.total / self.tracks if self.tracks else None
        return {
            "tracks": self.tracks,
            "mean": None if mean is None else round(mean, 2),
            "max": round(self.top, 2) if self.tracks else None,
        }


class ZoneTraffic:
    """Speed, heading, wrong-way and stopped state of the tracks inside one zone.

    ``polygon`` is the zone in frame pixels, ``frame_size`` ``(width, height)``.
    """

    def __init__(
        self, rule_id: str, config: ZoneConfig, polygon: F64Array, frame_size: tuple[int, int]
    ) -> None:
        self.config = config
        self.ground: GroundPlane | None = None
        if config.calibration is not None:
            cal = config.calibration
            self.ground = GroundPlane(rule_id, polygon, cal.distances, cal.units)
        unit = "px" if self.ground is None else self.ground.length_unit
        scale = 1.0 if self.ground is not None else float(np.hypot(*frame_size))
        radius, distance, min_speed = (v * scale for v in _DEFAULTS[unit])
        self.distance_key = f"distance_{unit}"
        self.wrong_way: WrongWayRule | None = None
        if config.direction is not None:
            d = config.direction
            self.wrong_way = WrongWayRule(
                heading=d.heading, tolerance=d.tolerance, min_time=d.min_time,
                min_distance=distance if d.min_distance is None else d.min_distance * scale,
                min_speed=min_speed,
            )  # fmt: skip
        self.stopped: StoppedRule | None = None
        if config.stopped is not None:
            r = config.stopped_radius
            self.stopped = StoppedRule(config.stopped, radius if r is None else r * scale)
        self._min_speed, self._radius = min_speed, radius
        self._tracks: dict[int, _Travel] = {}
        self._speeds: dict[str, _SpeedStats] = {}
        self.events: Counter[RuleEventKind] = Counter()

    @property
    def speed_unit(self) -> str | None:
        """``km/h`` or ``mph`` in a calibrated zone, None otherwise."""
        return None if self.ground is None else self.ground.speed_unit

    def _position(self, point: tuple[float, float]) -> tuple[float, float]:
        if self.ground is None:
            return point
        g = self.ground.to_ground([point])[0]
        return float(g[0]), float(g[1])

    def _speed(self, fit: Fit) -> float | None:
        return None if self.ground is None else self.ground.speed(fit.speed)

    def _heading(self, fit: Fit) -> float | None:
        """The fit's heading, or None for a track too slow for its heading to mean travel."""
        return None if fit.speed < self._min_speed else heading_of(fit.vx, fit.vy)

    def observe(self, tid: int, time: float, point: tuple[float, float], label: str) -> list[Hit]:
        """One observation of a track of class ``label`` inside the zone (anchor in frame
        pixels)."""
        travel = self._tracks.get(tid)
        if travel is None:
            travel = self._tracks[tid] = _Travel(MotionWindow(self.config.smoothing), label)
        x, y = self._position(point)
        travel.window.add(time, x, y)
        fit = travel.window.fit()
        if fit is None:
            return []
        self._accumulate(travel, fit, time)
        position = (fit.x, fit.y)
        hits: list[Hit] = []
        hits.extend(self._speeding(travel, fit))
        if self.wrong_way is not None:
            moved = self.wrong_way.update(travel.wrong, time, position, (fit.vx, fit.vy))
            if moved is not None:
                hits.append(Hit(RuleEventKind.WRONG_WAY, measures=(
                    ("heading", round(heading_of(fit.vx, fit.vy), 1)),
                    (self.distance_key, round(moved, 2)),
                )))  # fmt: skip
        if self.stopped is not None and self.stopped.update(travel.still, time, position):
            hits.append(Hit(RuleEventKind.STOPPED, duration=travel.still.still_for(time)))
        for hit in hits:
            self.events[hit.kind] += 1
        return hits

    def _accumulate(self, travel: _Travel, fit: Fit, time: float) -> None:
        """Fold one fit into the visit: first position, time-weighted speed, maximum."""
        if travel.first is None:
            travel.first = (fit.x, fit.y)
        speed = self._speed(fit)
        if speed is not None:
            if travel.fit is not None:
                dt = time - travel.fit_time
                travel.speed_sum += speed * dt
                travel.speed_time += dt
            travel.max_speed = speed if travel.max_speed is None else max(travel.max_speed, speed)
        travel.fit, travel.fit_time = fit, time

    def _speeding(self, travel: _Travel, fit: Fit) -> list[Hit]:
        limit = self.config.speed_limit
        speed = self._speed(fit)
        if limit is None or speed is None or travel.speeding or speed <= limit:
            return []
        travel.speeding = True
        return [Hit(RuleEventKind.SPEEDING, measures=self._now(fit))]

    def _now(self, fit: Fit) -> Measures:
        """The current speed and heading as measures."""
        out: list[tuple[str, float]] = []
        speed, heading = self._speed(fit), self._heading(fit)
        if speed is not None and self.speed_unit is not None:
            out.append((f"speed_{speed_key(self.speed_unit)}", round(speed, 2)))
        if heading is not None:
            out.append(("heading", round(heading, 1)))
        return tuple(out)

    def current(self, tid: int) -> Measures:
        """The track's latest smoothed speed and heading (empty before the first fit)."""
        travel = self._tracks.get(tid)
        return () if travel is None or travel.fit is None else self._now(travel.fit)

    def summary(self, tid: int) -> Measures:
        """The visit's mean and maximum speed and overall heading (for its EXIT)."""
        travel = self._tracks.get(tid)
        if travel is None or travel.fit is None:
            return ()
        out: list[tuple[str, float]] = []
        if self.speed_unit is not None and travel.max_speed is not None:
            key = speed_key(self.speed_unit)
            mean = self._mean_speed(travel)
            out.append((f"speed_{key}", round(mean, 2)))
            out.append((f"max_speed_{key}", round(travel.max_speed, 2)))
        heading = self._overall_heading(travel)
        if heading is not None:
            out.append(("heading", round(heading, 1)))
        return tuple(out)

    @staticmethod
    def _mean_speed(travel: _Travel) -> float:
        if travel.speed_time > 0:
            return travel.speed_sum / travel.speed_time
        return travel.max_speed or 0.0  # one fit only: it is the mean too

    def _overall_heading(self, travel: _Travel) -> float | None:
        """Heading from the first to the last smoothed position, when the track went
        somewhere; the latest fit's heading otherwise."""
        assert travel.fit is not None
        if travel.first is not None:
            dx, dy = travel.fit.x - travel.first[0], travel.fit.y - travel.first[1]
            if math.hypot(dx, dy) > self._radius:  # further than a standing track wanders
                return heading_of(dx, dy)
        return self._heading(travel.fit)

    def leave(self, tid: int) -> Measures:
        """The track left (or ended): its visit summary, folded into the zone's speed stats."""
        measures = self.summary(tid)
        travel = self._tracks.pop(tid, None)
        if travel is not None:
            self._fold(self._speeds, travel)
        return measures

    def _fold(self, stats: dict[str, _SpeedStats], travel: _Travel) -> None:
        """Add one visit's mean and top speed to ``stats`` (overall under "" and per class)."""
        if travel.max_speed is None:
            return
        mean = self._mean_speed(travel)
        for key in ("", travel.label):
            stats.setdefault(key, _SpeedStats()).add(mean, travel.max_speed)

    def is_stopped(self, tid: int, time: float) -> bool:
        """Whether the track is inside and stopped now (per the zone's ``stopped``)."""
        travel = self._tracks.get(tid)
        return (
            self.stopped is not None and travel is not None
            and self.stopped.is_stopped(travel.still, time)
        )  # fmt: skip

    def state_size(self) -> int:
        return len(self._tracks)

    def counts(self, stopped_now: Counter[str]) -> dict[str, Any]:
        """The zone's traffic counters (only those configured), merged into its counts."""
        out: dict[str, Any] = {}
        if self.speed_unit is not None:
            # Ended visits, plus those in progress so far (a car still inside at the end of a
            # file is measured too); the in-progress part is recomputed, never stored.
            speeds = {k: replace(v) for k, v in self._speeds.items()}
            for travel in self._tracks.values():
                self._fold(speeds, travel)
            overall = speeds.get("", _SpeedStats())
            out["speed"] = {
                "unit": self.speed_unit,
                **overall.as_dict(),
                "by_class": {k: v.as_dict() for k, v in sorted(speeds.items()) if k},
            }
        if self.config.speed_limit is not None:
            out["speeding_events"] = int(self.events[RuleEventKind.SPEEDING])
        if self.wrong_way is not None:
            out["wrong_way_events"] = int(self.events[RuleEventKind.WRONG_WAY])
        if self.stopped is not None:
            out["stopped_events"] = int(self.events[RuleEventKind.STOPPED])
            out["stopped"] = {
                "current": int(sum(stopped_now.values())),
                "by_class": dict(sorted(stopped_now.items())),
            }
        return out
