"""What a camera on a node does with its store, as a Ray task (a module Ray workers can import
by name: ``tests.cluster.writer_tasks``; a test module is imported under its bare name)."""

from __future__ import annotations

import numpy as np

from vigil.types import Direction, Event, EventState, RuleEvent, RuleEventKind, Snapshot

EVENTS = 40  # per camera


def _life(camera: str, index: int, start: float) -> list[Event]:
    """START, two UPDATEs and END of one event (the END with a snapshot image)."""
    image = np.full((60, 80, 3), 40 + index % 200, np.uint8)
    snap = Snapshot(seq=3, time=start + 1, box=(10.0, 10.0, 50.0, 40.0), score=0.9,
                    image=image, frame_size=(80, 60))  # fmt: skip
    base = {"id": f"{camera}-{index}", "camera_id": camera, "label": "person", "class_id": 0,
            "track_id": index, "start": start, "live": True}  # fmt: skip
    return [Event(**base, end=None, state=EventState.START, top_score=0.5),
            Event(**base, end=None, state=EventState.UPDATE, top_score=0.7),
            Event(**base, end=None, state=EventState.UPDATE, top_score=0.8),
            Event(**base, state=EventState.END, end=start + 2.0, top_score=0.9,
                  snapshot=snap)]  # fmt: skip


def camera_task(db_url: str, data_dir: str, camera: str, start: float) -> int:
    from vigil.cluster.writer import NodeStore

    store = NodeStore(db_url, data_dir)
    for index in range(EVENTS):
        for event in _life(camera, index, start + index * 10):
            store.publish(event)
        store.count([RuleEvent("door", RuleEventKind.CROSS, camera, index, 0, "person",
                               start + index * 10 + 1, (0.5, 0.5), Direction.A_TO_B)])
    store.close()
    return EVENTS
