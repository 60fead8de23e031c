"""Polygon zones: enter/exit, dwell, loitering, occupancy and entry counts.

A track is *inside* when its anchor point lies in the polygon (edges count as inside, see
`geometry.points_in_polygon`). Semantics, per processed frame:

* **ENTER** on the first processed frame a track is seen inside, including a track that first
  appears inside the zone (it came into view there, which is what an NVR user means by
  "entered"). One frame inside is enough; no hysteresis, because polygons are areas, not lines,
  and a track grazing the border produces an enter/exit pair that honestly happened.
* **EXIT** on the first processed frame the track is seen outside again, **and when a track
  ends while inside** (`forget`): the object left view, and without the EXIT occupancy would
  never come down. That EXIT carries the time and point where the track was last seen inside.
* **DWELL** once per visit, on the first processed frame where the continuous time inside
  (``time - entered``) reaches ``config.dwell``; ``duration`` is that measured time, so with
  uneven frame gaps it may exceed ``dwell`` a little. **LOITER** the same with ``config.loiter``.
* Traffic (speed, heading, wrong way, stopped; `vigil.rules.traffic`) leaves out boxes cut
  by the frame's edge where that moves the anchor: the bottom centre of a car entering from
  the bottom edge stays on that edge while the car drives on, which would read as slow or
  standing.
* A track missing from a frame (tracker lost it briefly, motion gate skipped, filtered by
  ``min_size``) keeps its state: only seeing it outside, or its ending, makes it leave.

Per-track state exists only for tracks currently inside, so it is bounded by occupancy.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vigil.config.models import ZoneConfig
from vigil.errors import ConfigError
from vigil.rules.common import min_area_px, resolve_labels, select
from vigil.rules.geometry import points_in_polygon, polygon_area, to_pixels
from vigil.rules.traffic import Hit, ZoneTraffic, cut_by_border
from vigil.types import Detections, RuleEvent, RuleEventKind, label_of


@dataclass(slots=True)
class _Visit:
    """One track's current stay inside the zone."""

    class_id: int
    label: str
    camera_id: str
    entered: float
    last_seen: float
    point: tuple[float, float]
    dwelled: bool = False
    loitered: bool = False


class ZoneRule:
    """One polygon zone of one camera, compiled once into a pixel polygon at init.

    ``frame_size`` is ``(width, height)`` of the frames whose boxes arrive in ``update``.
    """

    def __init__(
        self,
        rule_id: str,
        config: ZoneConfig,
        frame_size: tuple[int, int],
        class_names: Sequence[str],
    ) -> None:
        self.rule_id = rule_id
        self.config = config
        self._class_names = list(class_names)
        self.polygon = to_pixels(config.polygon, frame_size)
        if polygon_area(self.polygon) == 0.0:
            raise ConfigError(
                f"zone {rule_id!r}: its polygon has no area (points are collinear or repeated); "
                "give at least three points that enclose a region"
            )
        self._class_ids = resolve_labels("zone", rule_id, config.labels, class_names)
        self._min_area = min_area_px(config.min_size, frame_size)
        self._inside: dict[int, _Visit] = {}
        self.traffic = ZoneTraffic(rule_id, config, self.polygon, frame_size)
        self._frame_size = frame_size
        self._entries: Counter[str] = Counter()
        self._events_by_class: dict[str, Counter[str]] = {}
        self._max = 0
        self._max_by_class: Counter[str] = Counter()
        self.dwell_events = 0
        self.loiter_events = 0
        self._now = -np.inf

    def update(self, tracked: Detections, time: float, camera_id: str) -> list[RuleEvent]:
        """Advance every tracked row by one processed frame; returns ENTER/EXIT/DWELL/LOITER."""
        self._now = time
        rows = select(tracked, self._class_ids, self._min_area)
        if len(rows) == 0:
            return []
        points = rows.anchors(self.config.anchor).astype(np.float64)
        inside = points_in_polygon(points, self.polygon)
        cut = cut_by_border(rows.xyxy, self._frame_size, self.config.anchor)
        events: list[RuleEvent] = []
        for i in range(len(rows)):
            tid = int(rows.tracker_id[i])
            point = (float(points[i, 0]), float(points[i, 1]))
            visit = self._inside.get(tid)
            if not inside[i]:
                if visit is not None:
                    events.append(self._leave(tid, visit, time, point))
                continue
            if visit is None:
                visit = self._enter(tid, int(rows.class_id[i]), time, point, camera_id)
                events.append(self._event(RuleEventKind.ENTER, tid, visit, time))
            visit.last_seen, visit.point = time, point
            events.extend(self._timers(tid, visit, time))
            if not cut[i]:
                events.extend(self._traffic(tid, visit, time, point))
        self._update_max()
        return events

    def _visible(self) -> Counter[str]:
        """Labels of the tracks inside that were seen in the latest frame.

        A track the tracker has lost but not yet ended is still "inside" (it may come back),
        but it must not count as present: occupancy is what the camera sees now.
        """
        return Counter(v.label for v in self._inside.values() if v.last_seen >= self._now)

    def _update_max(self) -> None:
        visible = self._visible()
        self._max = max(self._max, sum(visible.values()))
        for label, n in visible.items():
            self._max_by_class[label] = max(self._max_by_class[label], n)

    def _enter(
        self, tid: int, class_id: int, time: float, point: tuple[float, float], camera_id: str
    ) -> _Visit:
        label = label_of(self._class_names, class_id)
        visit = _Visit(
            class_id=class_id,
            label=label,
            camera_id=camera_id,
            entered=time,
            last_seen=time,
            point=point,
        )
        self._inside[tid] = visit
        self._entries[label] += 1
        return visit

    def _leave(self, tid: int, visit: _Visit, time: float, point: tuple[float, float]) -> RuleEvent:
        del self._inside[tid]
        visit.point = point
        return self._event(
            RuleEventKind.EXIT,
            tid,
            visit,
            time,
            duration=time - visit.entered,
            measures=self.traffic.leave(tid),
        )

    def _traffic(
        self, tid: int, visit: _Visit, time: float, point: tuple[float, float]
    ) -> list[RuleEvent]:
        """SPEEDING, WRONG_WAY and STOPPED of this observation (see `vigil.rules.traffic`)."""
        hits: list[Hit] = self.traffic.observe(tid, time, point, visit.label)
        return [
            self._event(hit.kind, tid, visit, time, duration=hit.duration, measures=hit.measures)
            for hit in hits
        ]

    def _timers(self, tid: int, visit: _Visit, time: float) -> list[RuleEvent]:
        """DWELL and LOITER, each once per visit, when time inside reaches its threshold."""
        stayed = time - visit.entered
        events: list[RuleEvent] = []
        if self.config.dwell is not None and not visit.dwelled and stayed >= self.config.dwell:
            visit.dwelled = True
            self.dwell_events += 1
            events.append(self._event(RuleEventKind.DWELL, tid, visit, time, duration=stayed))
        if self.config.loiter is not None and not visit.loitered and stayed >= self.config.loiter:
            visit.loitered = True
            self.loiter_events += 1
            events.append(self._event(RuleEventKind.LOITER, tid, visit, time, duration=stayed))
        return events

    def _event(
        self,
        kind: RuleEventKind,
        tid: int,
        visit: _Visit,
        time: float,
        *,
        duration: float | None = None,
        measures: tuple[tuple[str, float], ...] = (),
    ) -> RuleEvent:
        if kind is not RuleEventKind.ENTER and kind is not RuleEventKind.EXIT:
            counter = self._events_by_class.setdefault(kind.value, Counter())
            counter[visit.label] += 1
        return RuleEvent(
            rule_id=self.rule_id,
            kind=kind,
            camera_id=visit.camera_id,
            track_id=tid,
            class_id=visit.class_id,
            label=visit.label,
            time=time,
            point=visit.point,
            duration=duration,
            measures=measures,
        )

    def forget(self, track_ids: Iterable[int]) -> list[RuleEvent]:
        """Drop ended tracks; those still inside EXIT at their last-seen time and point."""
        events: list[RuleEvent] = []
        for tid in track_ids:
            visit = self._inside.pop(int(tid), None)
            if visit is not None:
                events.append(
                    self._event(
                        RuleEventKind.EXIT,
                        int(tid),
                        visit,
                        visit.last_seen,
                        duration=visit.last_seen - visit.entered,
                        measures=self.traffic.leave(int(tid)),
                    )
                )
        return events

    def track_ids(self) -> list[int]:
        """Tracks this rule holds state for (those inside)."""
        return list(self._inside)

    def contains(self, track_id: int) -> bool:
        """Whether the track is inside the zone now."""
        return int(track_id) in self._inside

    def counts(self) -> dict[str, Any]:
        """Entries, occupancy (current, max, per class), dwell and loiter event counts."""
        current = self._visible()
        return {
            "entries": {
                "total": int(sum(self._entries.values())),
                "by_class": dict(sorted(self._entries.items())),
            },
            "occupancy": {
                "current": sum(current.values()),
                "max": self._max,
                "by_class": {k: int(current[k]) for k in sorted(self._max_by_class)},
                "max_by_class": dict(sorted(self._max_by_class.items())),
            },
            "dwell_events": self.dwell_events,
            "loiter_events": self.loiter_events,
            "events_by_class": {
                kind: dict(sorted(c.items())) for kind, c in sorted(self._events_by_class.items())
            },
            **self.traffic.counts(self._stopped_now()),
        }

    def _stopped_now(self) -> Counter[str]:
        """Labels of the visible tracks inside that are stopped now."""
        return Counter(
            v.label for tid, v in self._inside.items()
            if v.last_seen >= self._now and self.traffic.is_stopped(tid, self._now)
        )  # fmt: skip

    def state_size(self) -> int:
        # The traffic part holds one entry per track inside, dropped with it: not counted twice.
        return len(self._inside)
