"""The one shape of an event, wherever it leaves Vigil: REST, WebSocket, MQTT, webhooks, files.

Times are numbers of seconds everywhere: UNIX seconds (UTC) for live cameras, media seconds
from the start of the file for ``vigil analyze`` on a file (``live`` says which), as Frigate's
MQTT events carry them. Boxes are normalised to the frame (0–1, ``[x1, y1, x2, y2]``), so they
mean the same at any stream size; scores are detection confidences in 0–1. The schema is
documented field by field in ``docs/events.md``; the REST API's OpenAPI spec is generated from
this model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from vigil.types import Event, Snapshot

EventStateName = Literal["start", "update", "end"]


class EventPayload(BaseModel):
    """An event as every consumer sees it (see the module docstring)."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(description="Stable id: `<camera>-<start>-<track>`; every state shares it.")
    camera: str
    label: str = Field(description="Class of the object (`person`, `car`, …; `motion` for "
                       "the model-free detector).")  # fmt: skip
    class_id: int
    track_id: int = Field(description="The tracker's id, local to this camera and session.")
    state: EventStateName = Field(description="`start`, `update` (zones, lines, counts or label "
                                  "changed) or `end`.")  # fmt: skip
    live: bool = Field(description="True: times are UNIX seconds; false: media seconds.")
    start: float = Field(description="When the object was first seen (seconds, see `live`).")
    end: float | None = Field(description="When it was last seen; null while the event is open.")
    duration: float | None = Field(description="`end - start` in seconds; null while open.")
    zones: list[str] = Field(description="Every zone the object entered during the event.")
    zones_now: list[str] = Field(description="The zones it is in as of this message.")
    lines: list[str] = Field(description="Every line it crossed.")
    counts: dict[str, int] = Field(description="Rule hits, e.g. `{\"door:enter\": 1, "
                                   "\"gate:a_to_b\": 2}`.")  # fmt: skip
    measures: dict[str, float] = Field(description="The latest traffic measurements of "
                                       "calibrated zones, e.g. `{\"road:speed_kmh\": 48.2, "
                                       "\"road:heading\": 91.5}`; empty elsewhere.")  # fmt: skip
    top_score: float = Field(ge=0, le=1, description="The highest detection confidence seen.")
    box: list[float] | None = Field(
        description="The best snapshot's box, normalised `[x1, y1, x2, y2]` in 0–1; null when "
        "there is no snapshot."
    )
    has_snapshot: bool = Field(description="A (redacted) snapshot image can be fetched.")
    has_clip: bool = Field(description="Recordings cover the event: its clip can be played.")
    evidence_lock: bool = Field(description="Locked against retention by a user.")
    reviewed: bool = Field(description="Marked as reviewed by a user (the review workflow).")


def normalised_box(snapshot: Snapshot | None) -> list[float] | None:
    """The snapshot's pixel box as fractions of its frame (0–1), rounded to 4 decimals."""
    if snapshot is None or snapshot.frame_size is None:
        return None
    return box_fractions(snapshot.box, snapshot.frame_size)


def box_fractions(box: Sequence[float], frame_size: tuple[int, int]) -> list[float]:
    w, h = max(1, frame_size[0]), max(1, frame_size[1])
    scale = (w, h, w, h)
    return [round(min(1.0, max(0.0, float(v) / s)), 4) for v, s in zip(box, scale, strict=True)]


def event_payload(event: Event, *, has_snapshot: bool | None = None) -> EventPayload:
    """The payload of a lifecycle change as it happens (no user flags set yet).

    ``has_snapshot``: whether the snapshot image is kept (the store writes it); default: the
    event carries snapshot pixels.
    """
    snapshot = event.snapshot
    if has_snapshot is None:
        has_snapshot = snapshot is not None and snapshot.image is not None
    return EventPayload(
        id=event.id, camera=event.camera_id, label=event.label, class_id=event.class_id,
        track_id=event.track_id, state=event.state.value, live=event.live, start=event.start,
        end=event.end, duration=event.duration, zones=list(event.zones),
        zones_now=list(event.zones_now), lines=list(event.lines), counts=dict(event.counts),
        measures=dict(event.measures),
        top_score=round(min(1.0, max(0.0, float(event.top_score))), 4),
        box=normalised_box(snapshot), has_snapshot=has_snapshot, has_clip=event.has_clip,
        evidence_lock=False, reviewed=False,
    )  # fmt: skip
