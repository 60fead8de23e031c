"""Where events go: the `EventSink` protocol, its JSON form, and a JSON Lines file sink.

`event_to_dict` is the one JSON shape of an event, shared by every sink (file, MQTT, webhooks)::

    {"id": "cam-12.400-7", "state": "end", "camera": "cam", "label": "person", "class_id": 0,
     "track_id": 7, "live": false, "start": 12.4, "end": 19.9, "duration": 7.5,
     "zones": ["door"], "lines": ["gate"], "counts": {"door:enter": 1, "gate:a_to_b": 1},
     "measures": {"road:speed_kmh": 48.2, "road:heading": 91.5},
     "top_score": 0.91, "snapshot": {"seq": 311, "time": 15.2, "box": [x1, y1, x2, y2],
     "score": 98.1}}

``measures`` (see `vigil.events.lifecycle`) is present only when a zone measured the
object's traffic (speed, heading); other events have exactly the keys above without it.

Times (``start``, ``end``, ``snapshot.time``) are float media seconds for files, and ISO-8601
UTC strings with millisecond precision and a ``Z`` suffix for live sources
(``"2024-05-01T12:00:03.250Z"``); ``duration`` is always float seconds. The snapshot's pixels
never appear here: they leave the system only through the redactor.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Protocol

from vigil.errors import StorageError
from vigil.types import Event, EventState


class EventSink(Protocol):
    """Receives lifecycle changes of events, in order; ``close`` flushes and releases."""

    def publish(self, event: Event) -> None: ...

    def close(self) -> None: ...


def format_time(seconds: float | None, live: bool) -> float | str | None:
    """Media seconds as a float; UTC seconds as ``YYYY-MM-DDTHH:MM:SS.mmmZ`` when ``live``."""
    if seconds is None or not live:
        return seconds
    stamp = datetime.fromtimestamp(seconds, tz=UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def event_to_dict(event: Event) -> dict[str, Any]:
    """The JSON-ready form of an event (see the module docstring); no pixels."""
    snap = event.snapshot
    out: dict[str, Any] = {
        "id": event.id,
        "state": event.state.value,
        "camera": event.camera_id,
        "label": event.label,
        "class_id": event.class_id,
        "track_id": event.track_id,
        "live": event.live,
        "start": format_time(event.start, event.live),
        "end": format_time(event.end, event.live),
        "duration": event.duration,
        "zones": list(event.zones),
        "lines": list(event.lines),
        "counts": dict(event.counts),
        "top_score": round(float(event.top_score), 4),
        "snapshot": None
        if snap is None
        else {
            "seq": snap.seq,
            "time": format_time(snap.time, event.live),
            "box": [round(float(v), 2) for v in snap.box],
            "score": round(float(snap.score), 4),
        },
    }
    if event.measures:  # only where a zone measures traffic: other events keep their shape
        out["measures"] = dict(event.measures)
    return out


class JsonlEventSink:
    """Appends one JSON object per line to ``path``, for events in ``states`` (END by default).

    Only complete events are written by default, so every line is a finished record a script
    can read without merging START/UPDATE/END. Each line is flushed as it is written, so a crash
    loses at most the event being written. Missing parent folders are created.
    """

    def __init__(
        self, path: str | Path, *, states: Collection[EventState] = (EventState.END,)
    ) -> None:
        self.path = Path(path)
        self._states = frozenset(states)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file: IO[str] | None = self.path.open("a", encoding="utf-8")
        except OSError as exc:
            raise StorageError(
                f"cannot open event file {self.path}: {exc.strerror or exc}; "
                "choose a writable path"
            ) from exc

    def publish(self, event: Event) -> None:
        if event.state not in self._states:
            return
        if self._file is None:
            raise StorageError(f"event file {self.path} is closed; publish before close()")
        try:
            self._file.write(json.dumps(event_to_dict(event), separators=(",", ":")) + "\n")
            self._file.flush()
        except OSError as exc:
            raise StorageError(
                f"cannot write event file {self.path}: {exc.strerror or exc}; "
                "check free space and permissions"
            ) from exc

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> JsonlEventSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
