"""All zones and lines of one camera behind one call per processed frame.

The engine belongs to one camera worker (rule state is per camera, like tracker state). It is
fed the tracker's output every processed frame and the ids of tracks the tracker ended, and
forgets those tracks in every rule right away, so per-track state stays bounded by the number
of live tracks however long the camera runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from vigil.config.models import LineConfig, ZoneConfig
from vigil.rules.line import LineRule
from vigil.rules.zone import ZoneRule
from vigil.types import Detections, RuleEvent


class RuleEngine:
    """Zones and lines of one camera.

    ``frame_size`` is ``(width, height)`` of the frames whose boxes are passed to `update`;
    ``class_names`` maps ``Detections.class_id`` to labels (the detector's names). Rule names
    are the keys of ``zones`` and ``lines`` and become `RuleEvent.rule_id`; zone events have
    kinds ENTER/EXIT/DWELL/LOITER and line events CROSS, so a name shared by a zone and a line
    is still unambiguous.
    """

    def __init__(
        self,
        camera_id: str,
        zones: Mapping[str, ZoneConfig],
        lines: Mapping[str, LineConfig],
        frame_size: tuple[int, int],
        class_names: Sequence[str],
    ) -> None:
        self.camera_id = camera_id
        self.frame_size = frame_size
        self._class_names = list(class_names)
        self._zones: dict[str, ZoneRule] = {}
        self._lines: dict[str, LineRule] = {}
        self.update_rules(zones, lines)

    @property
    def configured(self) -> bool:
        """Whether any zone or line is configured (events then start on rule hits)."""
        return bool(self._zones or self._lines)

    def update_rules(
        self, zones: Mapping[str, ZoneConfig], lines: Mapping[str, LineConfig]
    ) -> None:
        """Replace the rule set at run time.

        A rule whose name and configuration are unchanged is kept as it is (counts and
        per-track state); a changed or new one starts from zero; a removed one is dropped.
        Every new rule is compiled before anything is replaced, so a bad one (a `ConfigError`)
        leaves the engine as it was.
        """
        new_zones = {
            name: self._zones[name]
            if name in self._zones and self._zones[name].config == cfg
            else ZoneRule(name, cfg, self.frame_size, self._class_names)
            for name, cfg in zones.items()
        }
        new_lines = {
            name: self._lines[name]
            if name in self._lines and self._lines[name].config == cfg
            else LineRule(name, cfg, self.frame_size, self._class_names)
            for name, cfg in lines.items()
        }
        self._zones, self._lines = new_zones, new_lines

    def update(
        self, tracked: Detections, time: float, ended_ids: Iterable[int] = ()
    ) -> list[RuleEvent]:
        """Run every rule on one processed frame, then forget the tracks that ended.

        Call once per processed frame, with empty detections too. ``time`` is the frame's time
        (`Frame.time`). Returns zone events first (in zone order), then line crossings; EXIT
        events of tracks that ended inside a zone come last.
        """
        events: list[RuleEvent] = []
        for zone in self._zones.values():
            events.extend(zone.update(tracked, time, self.camera_id))
        for line in self._lines.values():
            events.extend(line.update(tracked, time, self.camera_id))
        events.extend(self.forget(ended_ids))
        return events

    def forget(self, track_ids: Iterable[int]) -> list[RuleEvent]:
        """Drop the tracks' state in every rule; EXIT events for those that were inside."""
        ids = [int(t) for t in track_ids]
        if not ids:
            return []
        events: list[RuleEvent] = []
        for zone in self._zones.values():
            events.extend(zone.forget(ids))
        for line in self._lines.values():
            events.extend(line.forget(ids))
        return events

    def zones_of(self, track_id: int) -> list[str]:
        """Zones the track is inside now."""
        return [name for name, zone in self._zones.items() if zone.contains(track_id)]

    def lines_of(self, track_id: int) -> list[str]:
        """Lines the (still live) track has crossed at least once."""
        return [name for name, line in self._lines.items() if line.has_crossed(track_id)]

    def measures_of(self, track_id: int) -> dict[str, float]:
        """The track's traffic measurements so far in every zone it is inside, as
        ``"<zone>:<name>"`` → value (its visit's mean and maximum speed, heading): what its
        EXIT would carry, for events that end while the track is still inside."""
        return {
            f"{name}:{key}": value
            for name, zone in self._zones.items() if zone.contains(track_id)
            for key, value in zone.traffic.summary(int(track_id))
        }  # fmt: skip

    def counts(self) -> dict[str, Any]:
        """Every rule's counters, in the shape written to ``counts.json``::

            {"lines": {name: {"total": {"a_to_b": n, "b_to_a": n},
                              "by_class": {label: {"a_to_b": n, "b_to_a": n}}}},
             "zones": {name: {"entries": {"total": n, "by_class": {label: n}},
                              "occupancy": {"current": n, "max": n, "by_class": {label: n},
                                            "max_by_class": {label: n}},
                              "dwell_events": n, "loiter_events": n,
                              "events_by_class": {kind: {label: n}}}}}

        ``events_by_class`` counts the zone's DWELL, LOITER, SPEEDING, WRONG_WAY and STOPPED
        events per class. A zone with traffic rules adds (only what it configures)::

            "speed": {"unit": "km/h"|"mph", "tracks": n, "mean": v, "max": v,
                      "by_class": {label: {"tracks": n, "mean": v, "max": v}}},
            "speeding_events": n, "wrong_way_events": n, "stopped_events": n,
            "stopped": {"current": n, "by_class": {label: n}}

        ``speed`` is over the visits so far, ended and in progress: ``tracks`` visits with a
        speed, ``mean`` of each visit's mean speed, ``max`` of their maximum smoothed speeds
        (both None before the first).
        """
        return {
            "lines": {name: line.counts() for name, line in self._lines.items()},
            "zones": {name: zone.counts() for name, zone in self._zones.items()},
        }

    def state_size(self) -> int:
        """Per-track entries held across all rules (bounded by live tracks × rules)."""
        return sum(r.state_size() for r in self._zones.values()) + sum(
            r.state_size() for r in self._lines.values()
        )
