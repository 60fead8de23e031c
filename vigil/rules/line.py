"""Directed line crossing with hysteresis: counts per direction and class, CROSS events.

The line runs from ``points[0]`` (the **A end**) to ``points[1]`` (the **B end**). Side A is on
the *left* of the vector A→B as seen on screen (image coordinates, y down), side B on the right.
Crossing from side A to side B is `Direction.A_TO_B`::

                 side A  (left of A→B)
        A ●━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━▶● B
                 side B  (right of A→B)

    a line drawn downwards, A at the top:    A ●
                                               ┃
                              side B (left  ◀  ┃  ▶  side A (right
                              of the screen)   ┃      of the screen)
                                               ▼
                                             B ●

How a crossing is decided, per track:

1. Its anchor point is either *settled* on side A or B (further than ``band`` pixels from the
   infinite line) or *in the band*. The band (config ``hysteresis`` × frame diagonal) is why a
   track jittering on the line counts once: it must leave the band on the far side.
2. Each movement between consecutive anchor points that meets the **segment itself** (endpoints
   included, see `geometry.crossing_direction`) records its direction as the last *pass*.
3. When the track settles on the side opposite its previous settled side, and its last pass
   went that way, that is one crossing. Settling on any side clears the pass. So passing
   across the line's infinite extension beyond the segment's ends never counts, and a track
   that comes back later, clearly on the other side again, counts the other direction.

A track first seen inside the band has no settled side yet; its first settling does not count
(where it came from is unknown).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vigil.config.models import LineConfig
from vigil.rules.common import min_area_px, resolve_labels, select
from vigil.rules.geometry import crossing_direction, side_of, to_pixels
from vigil.types import Detections, Direction, RuleEvent, RuleEventKind, label_of

_SIDE_A, _SIDE_B, _UNSETTLED = -1, 1, 0


@dataclass(slots=True)
class _LineTrack:
    """Per-track state: last anchor, last settled side, last pass since settling."""

    point: tuple[float, float]
    side: int
    last_pass: int = 0
    crossings: int = 0


class LineRule:
    """One directed line of one camera.

    ``frame_size`` is ``(width, height)`` of the frames whose boxes arrive in ``update``.
    ``class_names`` maps ``Detections.class_id`` to labels. Both directions are always counted;
    `RuleEvent`\\ s are returned only for directions listed in ``config.directions``.
    """

    def __init__(
        self,
        rule_id: str,
        config: LineConfig,
        frame_size: tuple[int, int],
        class_names: Sequence[str],
    ) -> None:
        self.rule_id = rule_id
        self.config = config
        self._class_names = list(class_names)
        pts = to_pixels(config.points, frame_size)
        self._a, self._b = pts[0], pts[1]
        self.band = float(config.hysteresis) * float(np.hypot(*frame_size))
        self._class_ids = resolve_labels("line", rule_id, config.labels, class_names)
        self._min_area = min_area_px(config.min_size, frame_size)
        self._emit = frozenset(config.directions)
        self._tracks: dict[int, _LineTrack] = {}
        self._totals: Counter[Direction] = Counter()
        self._by_class: dict[str, Counter[Direction]] = {}

    @property
    def endpoints(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """The A and B ends in frame pixels."""
        return (float(self._a[0]), float(self._a[1])), (float(self._b[0]), float(self._b[1]))

    def _settle(self, distance: float) -> int:
        if distance > self.band:
            return _SIDE_B
        if distance < -self.band:
            return _SIDE_A
        return _UNSETTLED

    def update(self, tracked: Detections, time: float, camera_id: str) -> list[RuleEvent]:
        """Advance every tracked row by one processed frame; returns CROSS events."""
        rows = select(tracked, self._class_ids, self._min_area)
        if len(rows) == 0:
            return []
        points = rows.anchors(self.config.anchor).astype(np.float64)
        distances = side_of(points, self._a, self._b)
        ids = [int(t) for t in rows.tracker_id]
        known = [i for i, tid in enumerate(ids) if tid in self._tracks]
        passes = np.zeros(len(ids), dtype=np.int8)
        if known:
            starts = np.array([self._tracks[ids[i]].point for i in known], dtype=np.float64)
            passes[known] = crossing_direction(starts, points[known], self._a, self._b)
        events: list[RuleEvent] = []
        for i, tid in enumerate(ids):
            point = (float(points[i, 0]), float(points[i, 1]))
            side = self._settle(float(distances[i]))
            state = self._tracks.get(tid)
            if state is None:
                self._tracks[tid] = _LineTrack(point=point, side=side)
                continue
            direction = self._advance(state, point, side, int(passes[i]))
            if direction is None:
                continue
            class_id = int(rows.class_id[i])
            label = label_of(self._class_names, class_id)
            self._count(label, direction)
            if direction in self._emit:
                events.append(
                    RuleEvent(
                        rule_id=self.rule_id,
                        kind=RuleEventKind.CROSS,
                        camera_id=camera_id,
                        track_id=tid,
                        class_id=class_id,
                        label=label,
                        time=time,
                        point=point,
                        direction=direction,
                    )
                )
        return events

    @staticmethod
    def _advance(
        state: _LineTrack, point: tuple[float, float], side: int, step_pass: int
    ) -> Direction | None:
        """Move one track's state by one observation; the crossing it completes, if any."""
        state.point = point
        if step_pass:
            state.last_pass = step_pass
        if side == _UNSETTLED:
            return None
        crossed = state.side == -side and state.last_pass == side
        state.side = side
        state.last_pass = 0
        if not crossed:
            return None
        state.crossings += 1
        return Direction.A_TO_B if side == _SIDE_B else Direction.B_TO_A

    def _count(self, label: str, direction: Direction) -> None:
        self._totals[direction] += 1
        self._by_class.setdefault(label, Counter())[direction] += 1

    def forget(self, track_ids: Iterable[int]) -> list[RuleEvent]:
        """Drop ended tracks' state. A line has nothing to say about an ending: returns []."""
        for tid in track_ids:
            self._tracks.pop(int(tid), None)
        return []

    def track_ids(self) -> list[int]:
        """Tracks this rule holds state for."""
        return list(self._tracks)

    def has_crossed(self, track_id: int) -> bool:
        """Whether this (still known) track has crossed the line at least once."""
        state = self._tracks.get(int(track_id))
        return state is not None and state.crossings > 0

    def counts(self) -> dict[str, Any]:
        """``{"total": {"a_to_b": n, "b_to_a": n}, "by_class": {label: {...}}}``."""

        def both(counter: Counter[Direction]) -> dict[str, int]:
            return {d.value: int(counter[d]) for d in Direction}

        return {
            "total": both(self._totals),
            "by_class": {label: both(c) for label, c in sorted(self._by_class.items())},
        }

    def state_size(self) -> int:
        return len(self._tracks)
