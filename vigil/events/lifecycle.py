"""From tracks and rule hits to the events users see: START, UPDATE, END.

One event is one tracked object's time in view, from the time it was first seen to the time it
was last seen. Which objects make events:

* **no rules configured**: every object tracked for at least ``min_duration`` seconds
  (``last_seen - first_seen``). START is emitted on the frame it reaches that age; shorter-lived
  objects make no event at all.
* **rules configured**: an object whose track triggers a rule (ENTER, CROSS, DWELL, LOITER,
  SPEEDING, WRONG_WAY, STOPPED; an EXIT alone does not) gets an event, START on the frame of
  its first trigger. ``min_duration`` does not delay it: the rule's own count already
  accepted that object, and the event should agree with the counts.

In both cases ``start`` is the track's first-seen time, the event lists the zones and lines the
track touched, and ``counts`` counts its rule hits as ``"<rule>:<kind>"`` (``"door:enter"``;
crossings by direction, ``"gate:a_to_b"``). ``measures`` holds the latest measurement each
rule hit carried, as ``"<rule>:<name>"``: a SPEEDING hit's speed and heading, a WRONG_WAY
hit's heading and distance, an EXIT's mean and maximum speed and overall heading over the
visit (``"road:speed_kmh"``, ``"road:heading"``; see `vigil.rules.traffic`). ``label`` is the
class with the highest summed confidence over the track so far (detectors flip between "car"
and "truck"). UPDATE is emitted when zones, lines, counts, measures or the label change,
never merely because time passed or a better snapshot was found.

Ending. An event ENDs, with ``end`` = the last time its object was seen, when

* the tracker reports the track ended (``ended_ids``): an ended track never comes back, and the
  tracker already waited its own ``lost_seconds``, so END is emitted at once; or
* the object has not been seen for more than ``debounce`` seconds while the tracker still keeps
  the track (a long ``lost_seconds``, skipped frames, a tracker that never reports endings).
  Should the same track id show up again later it opens a new event, which by then is more than
  ``debounce`` after the last one: no new event for the same track within debounce.

Everything held per track is dropped when its track ends or its event ends, so state is bounded
by the live tracks.

Best snapshot. Each observed box scores ``confidence × sqrt(area)``, halved when the box touches
the frame border: bigger and surer is a better view, the square root keeps a near object from
winning by size alone (area grows with the square of closeness), and a box cut by the border
shows part of the object. The highest score wins. Candidates are every track when no rules are
configured (any of them may become an event), otherwise the tracks with an event, from their
trigger on. With ``snapshots`` on, the frame's BGR image is copied only when a candidate's best
changes (one copy per frame, shared by every track whose best it is), so at most one image is
held per open candidate track.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from vigil.config.models import EventsConfig
from vigil.types import (
    Detections,
    Event,
    EventState,
    Frame,
    ImageArray,
    RuleEvent,
    RuleEventKind,
    Snapshot,
    label_of,
)

#: Rule hits that open an event; EXIT alone does not (it only follows an ENTER).
TRIGGERS = frozenset(
    {RuleEventKind.ENTER, RuleEventKind.CROSS, RuleEventKind.DWELL, RuleEventKind.LOITER,
     RuleEventKind.SPEEDING, RuleEventKind.WRONG_WAY, RuleEventKind.STOPPED}
)  # fmt: skip
#: Score factor for a box touching the frame border (a truncated view of the object).
BORDER_PENALTY = 0.5


def snapshot_score(box: Sequence[float], confidence: float, frame_size: tuple[int, int]) -> float:
    """``confidence × sqrt(area)`` of a box in frame pixels, × `BORDER_PENALTY` at the border."""
    x1, y1, x2, y2 = (float(v) for v in box)
    area = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    score = float(confidence) * math.sqrt(area)
    width, height = frame_size
    if x1 <= 0.0 or y1 <= 0.0 or x2 >= width or y2 >= height:
        score *= BORDER_PENALTY
    return score


def event_id(camera_id: str, start: float, track_id: int) -> str:
    """Stable, unique id: camera, start time in ms precision, and the track id."""
    return f"{camera_id}-{start:.3f}-{track_id}"


@dataclass(slots=True)
class _Track:
    """What the manager holds about one live track."""

    track_id: int
    first_seen: float
    last_seen: float
    votes: dict[int, float] = field(default_factory=dict)
    top_score: float = 0.0
    current: Snapshot | None = None  # this frame's observation (no image), if seen
    best: Snapshot | None = None
    zones: list[str] = field(default_factory=list)
    zones_now: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    measures: dict[str, float] = field(default_factory=dict)
    event: Event | None = None  # the open event's identity (id, label, start), if any
    dirty: bool = False  # zones/lines/counts changed since the last publish

    def class_id(self) -> int:
        """Class with the highest summed confidence so far (trackers may flip classes)."""
        return max(self.votes.items(), key=lambda kv: kv[1])[0] if self.votes else 0


class EventManager:
    """The event lifecycle of one camera (see the module docstring for the semantics).

    ``live`` is copied into every event and tells consumers the time base (UTC seconds when
    true, media seconds otherwise); ``rules_configured`` selects how events start.
    """

    def __init__(
        self,
        camera_id: str,
        config: EventsConfig,
        class_names: Sequence[str],
        *,
        live: bool,
        rules_configured: bool,
    ) -> None:
        self.camera_id = camera_id
        self.config = config
        self.live = live
        self.rules_configured = rules_configured
        self._class_names = list(class_names)
        self._tracks: dict[int, _Track] = {}

    def update(
        self,
        frame: Frame,
        tracked: Detections,
        rule_events: Sequence[RuleEvent],
        ended_ids: Iterable[int],
    ) -> list[Event]:
        """Advance by one processed frame; returns the lifecycle changes it caused, in order.

        ``tracked`` are the tracker's rows for ``frame`` (rows with ``tracker_id < 0`` are
        ignored), ``rule_events`` what the rule engine returned for the same frame, and
        ``ended_ids`` the tracks the tracker ended. Returned events are copies.
        """
        now = frame.time
        self._observe(tracked, now, frame.size)
        opening: list[_Track] = []
        for rule_event in rule_events:
            hit = self._apply(rule_event)
            if hit is not None and hit not in opening:
                opening.append(hit)
        if not self.rules_configured:
            opening.extend(self._aged())
        for track in opening:
            self._open(track)
        self._take_snapshots(frame)
        changes = [self._publish(track, EventState.START) for track in opening]
        self._relabel()
        ended = {int(t) for t in ended_ids}
        debounce = self.config.debounce
        ended |= {tid for tid, t in self._tracks.items() if now - t.last_seen > debounce}
        for tid in sorted(ended):
            gone = self._tracks.pop(tid, None)
            if gone is not None and gone.event is not None:
                changes.append(self._publish(gone, EventState.END, end=gone.last_seen))
        changes.extend(
            self._publish(track, EventState.UPDATE)
            for track in self._tracks.values()
            if track.event is not None and track.dirty
        )
        return changes

    def _observe(self, tracked: Detections, now: float, frame_size: tuple[int, int]) -> None:
        """Record this frame's box, score and class of every tracked row."""
        for track in self._tracks.values():
            track.current = None
        for i in np.flatnonzero(tracked.tracker_id >= 0):
            tid = int(tracked.tracker_id[i])
            known = self._tracks.get(tid)
            track = known if known is not None else _Track(tid, first_seen=now, last_seen=now)
            self._tracks[tid] = track
            confidence = float(tracked.confidence[i])
            class_id = int(tracked.class_id[i])
            box = tuple(float(v) for v in tracked.xyxy[i])
            track.last_seen = now
            track.votes[class_id] = track.votes.get(class_id, 0.0) + confidence
            track.top_score = max(track.top_score, confidence)
            track.current = Snapshot(
                seq=-1,
                time=now,
                box=(box[0], box[1], box[2], box[3]),
                score=snapshot_score(box, confidence, frame_size),
                frame_size=frame_size,
            )

    def _apply(self, rule_event: RuleEvent) -> _Track | None:
        """Fold one rule hit into its track; the track if this hit opens its event."""
        track = self._tracks.get(rule_event.track_id)
        triggers = self.rules_configured and rule_event.kind in TRIGGERS
        if track is None:
            # A hit for a track not observed in ``tracked`` (e.g. the EXIT of a track that
            # ended): nothing to fold it into, unless it opens an event.
            if not triggers:
                return None
            track = self._tracks[rule_event.track_id] = _Track(
                rule_event.track_id,
                first_seen=rule_event.time,
                last_seen=rule_event.time,
                votes={rule_event.class_id: 1.0},
            )
        if rule_event.kind == RuleEventKind.CROSS:
            self._touch(track.lines, rule_event.rule_id, track)
            what = rule_event.direction.value if rule_event.direction else "cross"
        else:
            self._touch(track.zones, rule_event.rule_id, track)
            _follow(track.zones_now, rule_event)
            what = rule_event.kind.value
        key = f"{rule_event.rule_id}:{what}"
        track.counts[key] = track.counts.get(key, 0) + 1
        for name, value in rule_event.measures:
            track.measures[f"{rule_event.rule_id}:{name}"] = float(value)
        track.dirty = True
        return track if triggers and track.event is None else None

    @staticmethod
    def _touch(names: list[str], name: str, track: _Track) -> None:
        if name not in names:
            names.append(name)
            track.dirty = True

    def _aged(self) -> list[_Track]:
        """No-rules mode: tracks without an event that have been tracked ``min_duration``."""
        least = self.config.min_duration
        return [
            t
            for t in self._tracks.values()
            if t.event is None and t.last_seen - t.first_seen >= least
        ]

    def _relabel(self) -> None:
        """Follow the track's majority class; a changed label is published as an UPDATE."""
        for track in self._tracks.values():
            event = track.event
            if event is None:
                continue
            class_id = track.class_id()
            if class_id != event.class_id:
                event.class_id, event.label = class_id, label_of(self._class_names, class_id)
                track.dirty = True

    def _open(self, track: _Track) -> None:
        """Give the track its event (published as START by the caller, after snapshots)."""
        class_id = track.class_id()
        track.event = Event(
            id=event_id(self.camera_id, track.first_seen, track.track_id),
            camera_id=self.camera_id,
            label=label_of(self._class_names, class_id),
            class_id=class_id,
            track_id=track.track_id,
            start=track.first_seen,
            end=None,
            state=EventState.START,
            live=self.live,
        )
        if self.rules_configured:
            track.best = None  # the snapshot is chosen from the trigger on (see module doc)

    def _take_snapshots(self, frame: Frame) -> None:
        """Move each candidate's best to this frame where it scores higher; copy pixels once."""
        image: ImageArray | None = None
        for track in self._tracks.values():
            current = track.current
            if current is None or (self.rules_configured and track.event is None):
                continue
            if track.best is not None and current.score <= track.best.score:
                continue
            if self.config.snapshots and image is None:
                image = frame.bgr().copy()
            track.best = replace(current, seq=frame.seq, image=image)

    def _publish(self, track: _Track, state: EventState, end: float | None = None) -> Event:
        """A copy of the track's event in ``state`` (lists copied, snapshot shallow-copied)."""
        assert track.event is not None
        track.dirty = False
        return replace(
            track.event,
            state=state,
            end=end,
            zones=list(track.zones),
            zones_now=[] if state is EventState.END else list(track.zones_now),
            lines=list(track.lines),
            counts=dict(track.counts),
            measures=dict(track.measures),
            top_score=track.top_score,
            snapshot=None if track.best is None else replace(track.best),
        )

    def open_track_ids(self) -> list[int]:
        """Tracks with an open event."""
        return [tid for tid, t in self._tracks.items() if t.event is not None]

    def add_measures(self, track_id: int, measures: Mapping[str, float]) -> None:
        """Fold measurements into the track's event (published with its next change)."""
        track = self._tracks.get(int(track_id))
        if track is not None and measures:
            track.measures.update(measures)
            track.dirty = True

    def close(self, time: float) -> list[Event]:
        """End every open event (end of file, shutdown) and drop all state.

        ``end`` is each object's last-seen time, capped at ``time``.
        """
        changes = [
            self._publish(track, EventState.END, end=min(track.last_seen, time))
            for _, track in sorted(self._tracks.items())
            if track.event is not None
        ]
        self._tracks.clear()
        return changes

    def open_events(self) -> int:
        """Number of events started and not yet ended."""
        return sum(1 for t in self._tracks.values() if t.event is not None)

    def state_size(self) -> int:
        """Per-track entries held (live tracks, with or without an event)."""
        return len(self._tracks)


def _follow(inside: list[str], rule_event: RuleEvent) -> None:
    """Keep the zones an object is in: an enter adds its zone, an exit removes it."""
    zone = rule_event.rule_id
    if rule_event.kind == RuleEventKind.ENTER and zone not in inside:
        inside.append(zone)
    elif rule_event.kind == RuleEventKind.EXIT and zone in inside:
        inside.remove(zone)
