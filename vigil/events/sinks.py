"""Where events go: the `EventSink` protocol, its JSON form, and a JSON Lines file sink.

`event_to_dict` is the one JSON shape of an event, shared by every sink (file, MQTT, webhooks,
WebSocket) and by the REST API: `vigil.events.schema.EventPayload`, documented in
``docs/events.md``::

    {"id": "cam-12.400-7", "camera": "cam", "label": "person", "class_id": 0, "track_id": 7,
     "state": "end", "live": false, "start": 12.4, "end": 19.9, "duration": 7.5,
     "zones": ["door"], "zones_now": [], "lines": ["gate"],
     "counts": {"door:enter": 1, "gate:a_to_b": 1},
     "measures": {"road:speed_kmh": 48.2, "road:heading": 91.5}, "top_score": 0.91,
     "box": [0.41, 0.22, 0.52, 0.71], "has_snapshot": true, "has_clip": false,
     "evidence_lock": false, "reviewed": false}

Times are float seconds (UNIX for live sources, media seconds for files); the snapshot's
pixels never appear here: they leave the system only through the redactor.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from pathlib import Path
from typing import IO, Any, Protocol

from vigil.errors import StorageError
from vigil.events.schema import event_payload
from vigil.types import Event, EventState


class EventSink(Protocol):
    """Receives lifecycle changes of events, in order; ``close`` flushes and releases."""

    def publish(self, event: Event) -> None: ...

    def close(self) -> None: ...


def event_to_dict(event: Event) -> dict[str, Any]:
    """The JSON-ready form of an event (see the module docstring); no pixels."""
    return event_payload(event).model_dump(mode="json")


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
                f"cannot open event file {self.path}: {exc.strerror or exc}; choose a writable path"
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
