"""JSONL sink and the JSON form of events, for media and live time bases."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vigil.errors import StorageError
from vigil.events.schema import EventPayload
from vigil.events.sinks import EventSink, JsonlEventSink, event_to_dict
from vigil.types import Event, EventState, Snapshot


def event(
    state: EventState = EventState.END,
    live: bool = False,
    start: float = 12.4,
    end: float | None = 19.9,
) -> Event:
    return Event(
        id=f"cam-{start:.3f}-7",
        camera_id="cam",
        label="person",
        class_id=0,
        track_id=7,
        start=start,
        end=end,
        state=state,
        live=live,
        zones=["door"],
        lines=["gate"],
        counts={"door:enter": 1, "gate:a_to_b": 1},
        top_score=0.91,
        snapshot=Snapshot(
            seq=311,
            time=start + 2.75,
            box=(1.0, 2.0, 30.5, 80.25),
            score=98.1,
            image=np.zeros((4, 4, 3), np.uint8),
            frame_size=(100, 200),
        ),
        zones_now=["door"],
    )


def read_lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_media_time_jsonl_writes_end_events_only(tmp_path: Path) -> None:
    path = tmp_path / "out" / "events.jsonl"  # the folder does not exist yet
    sink: EventSink = JsonlEventSink(path)
    for state in (EventState.START, EventState.UPDATE, EventState.END):
        sink.publish(event(state))
    sink.close()
    (record,) = read_lines(path)
    assert record == {
        "id": "cam-12.400-7",
        "state": "end",
        "camera": "cam",
        "label": "person",
        "class_id": 0,
        "track_id": 7,
        "live": False,
        "start": 12.4,
        "end": 19.9,
        "duration": pytest.approx(7.5),
        "zones": ["door"],
        "zones_now": ["door"],
        "lines": ["gate"],
        "counts": {"door:enter": 1, "gate:a_to_b": 1},
        "measures": {},
        "top_score": 0.91,
        "box": [0.01, 0.01, 0.305, 0.4012],
        "has_snapshot": True,
        "has_clip": False,
        "evidence_lock": False,
        "reviewed": False,
    }
    EventPayload.model_validate(record)  # the documented schema, as REST serves it


def test_live_times_are_unix_seconds_as_everywhere(tmp_path: Path) -> None:
    start = 1_714_564_803.25
    with JsonlEventSink(tmp_path / "live.jsonl") as sink:
        sink.publish(event(live=True, start=start, end=start + 7.5))
    (record,) = read_lines(tmp_path / "live.jsonl")
    assert (record["live"], record["start"], record["end"]) == (True, start, start + 7.5)
    assert record["duration"] == pytest.approx(7.5)


def test_scores_and_box_stay_in_0_to_1() -> None:
    wild = event()
    wild.top_score = 1.7
    assert wild.snapshot is not None
    wild.snapshot = Snapshot(
        seq=1, time=13.0, box=(-5.0, -2.0, 150.0, 250.0), score=223.0, frame_size=(100, 200)
    )
    record = event_to_dict(wild)
    assert record["top_score"] == 1.0
    assert record["box"] == [0.0, 0.0, 1.0, 1.0]
    assert record["has_snapshot"] is False  # no pixels kept: no snapshot to fetch
    assert "score" not in record
    assert "snapshot" not in record


def test_appends_and_selectable_states(tmp_path: Path) -> None:
    path = tmp_path / "all.jsonl"
    with JsonlEventSink(path, states=set(EventState)) as sink:
        sink.publish(event(EventState.START, end=None))
    with JsonlEventSink(path, states=set(EventState)) as sink:
        sink.publish(event(EventState.END))
    records = read_lines(path)
    assert [(r["state"], r["end"], r["duration"]) for r in records] == [
        ("start", None, None),
        ("end", 19.9, pytest.approx(7.5)),
    ]


def test_no_pixels_in_the_json_form() -> None:
    record = event_to_dict(event())
    assert "image" not in json.dumps(record)


def test_unwritable_path_is_a_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StorageError, match="cannot open event file"):
        JsonlEventSink(blocker / "events.jsonl")


def test_publish_after_close_is_a_storage_error(tmp_path: Path) -> None:
    sink = JsonlEventSink(tmp_path / "e.jsonl")
    sink.close()
    sink.close()  # idempotent
    with pytest.raises(StorageError, match="closed"):
        sink.publish(event())
