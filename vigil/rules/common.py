"""What zone and line rules share: class filters, size filters, the Rule protocol."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import numpy as np

from vigil.errors import ConfigError
from vigil.types import Detections, RuleEvent


class Rule(Protocol):
    """One compiled zone or line of one camera; owns per-track state for that rule only."""

    rule_id: str

    def update(self, tracked: Detections, time: float, camera_id: str) -> list[RuleEvent]:
        """Feed one processed frame's tracked detections; returns what the rule saw."""
        ...

    def forget(self, track_ids: Iterable[int]) -> list[RuleEvent]:
        """Drop per-track state of ended tracks; returns events their ending implies."""
        ...

    def counts(self) -> dict[str, Any]:
        """Counters in the shape written to ``counts.json`` for this rule."""
        ...

    def state_size(self) -> int:
        """Number of per-track entries held (bounded-state tests)."""
        ...

    def track_ids(self) -> list[int]:
        """Tracks this rule holds state for."""
        ...


def resolve_labels(
    kind: str, rule_id: str, labels: Sequence[str], class_names: Sequence[str]
) -> frozenset[int] | None:
    """Class ids a rule keeps: ``None`` (all classes) for an empty label list.

    A label the detector does not know is a configuration error rather than a silent no-op,
    because a misspelt ``persn`` would otherwise leave the rule counting nothing, forever.
    """
    if not labels:
        return None
    index = {name: i for i, name in enumerate(class_names)}
    unknown = [label for label in labels if label not in index]
    if unknown:
        known = ", ".join(class_names) if class_names else "(none)"
        raise ConfigError(
            f"{kind} {rule_id!r}: unknown label(s) {', '.join(map(repr, unknown))}; "
            f"use class names of the detector: {known}"
        )
    return frozenset(index[label] for label in labels)


def select(tracked: Detections, class_ids: frozenset[int] | None, min_area: float) -> Detections:
    """Rows a rule looks at: tracked (``tracker_id >= 0``), of a kept class, big enough.

    ``min_area`` is in pixels² (config ``min_size`` × frame area). Rows dropped here are "not
    seen" by the rule this frame: their per-track state is kept, not reset.
    """
    keep = tracked.tracker_id >= 0
    if class_ids is not None:
        keep &= np.isin(tracked.class_id, np.fromiter(class_ids, dtype=np.int64))
    if min_area > 0:
        keep &= tracked.area >= min_area
    return tracked[keep]


def min_area_px(min_size: float, frame_size: tuple[int, int]) -> float:
    """Config ``min_size`` (fraction of the frame's area) in pixels²."""
    return float(min_size) * float(frame_size[0]) * float(frame_size[1])
