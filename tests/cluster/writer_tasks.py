"""What a camera on a node does with its store, as a Ray task (a module Ray workers can import
by name: ``tests.cluster.writer_tasks``; a test module is imported under its bare name)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from vigil.cluster import node_name
from vigil.record import SegmentInfo
from vigil.record.layout import segment_path
from vigil.record.motion import MotionSpans
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
        store.count(
            [
                RuleEvent(
                    "door",
                    RuleEventKind.CROSS,
                    camera,
                    index,
                    0,
                    "person",
                    start + index * 10 + 1,
                    (0.5, 0.5),
                    Direction.A_TO_B,
                )
            ]
        )
    store.close()
    return EVENTS


SEGMENTS = 30  # per camera
SEGMENT_LEN = 10.0
SHA = "ab" * 32


def segment_infos(root: Path, camera: str, start: float) -> list[SegmentInfo]:
    """``SEGMENTS`` finished 10 s segments of ``camera`` under ``root`` (rows only: the
    writer never reads the files)."""
    recordings = root / "recordings"
    return [SegmentInfo(camera, segment_path(recordings, camera, start + i * SEGMENT_LEN),
                        start + i * SEGMENT_LEN, start + (i + 1) * SEGMENT_LEN, 1000 + i, SHA,
                        False) for i in range(SEGMENTS)]  # fmt: skip


def note_motion(motion: MotionSpans, info: SegmentInfo, index: int) -> None:
    """What the camera's analysis reports before segment ``index`` is finished: motion in it
    now and then, and, behind the recording, in the segment before it."""
    if index % 3 == 0:
        motion.note(info.start + 5.0)
    if index % 4 == 1:
        motion.note(info.start - 1.0)


def ended(camera: str, start: float) -> Event:
    """An event of ``camera`` that ended within its segments 10 to 12."""
    return Event(id=f"{camera}-seg", camera_id=camera, label="person", class_id=0, track_id=1,
                 start=start + 10 * SEGMENT_LEN + 3, end=start + 12 * SEGMENT_LEN + 2,
                 state=EventState.END, top_score=0.9, live=True)  # fmt: skip


def segment_task(db_url: str, data_dir: str, camera: str, start: float) -> list[str | None]:
    """A camera's recorder on the node: its segments through ``NodeSegments``, then an event
    that ended over some of them; returns ``NodeSegments.status`` after each segment was
    answered (its error, None while every row is stored)."""
    from vigil.cluster import node_data_dir
    from vigil.cluster.writer import NodeSegments, NodeStore

    root = node_data_dir(Path(data_dir))
    store = NodeStore(db_url, data_dir)
    segments = NodeSegments(store, root, node_name())
    segments.motion = MotionSpans()
    for index, info in enumerate(segment_infos(root, camera, start)):
        note_motion(segments.motion, info, index)
        segments(info)
    segments.close(120.0)
    errors = [segments.status("recording", None)[1]]
    store.publish(ended(camera, start))
    store.close()
    return errors


def refused_task(db_url: str, data_dir: str, camera: str, start: float) -> list[str | None]:
    """A segment whose place holds another one (same path, other digest), then a good one:
    the recording's error while refused, and after."""
    from vigil.cluster import node_data_dir
    from vigil.cluster.writer import NodeSegments, NodeStore

    root = node_data_dir(Path(data_dir))
    segments = NodeSegments(NodeStore(db_url, data_dir), root, node_name())
    first, second = segment_infos(root, camera, start)[:2]
    segments(dataclasses.replace(first, sha256="cd" * 32))
    segments.close(120.0)
    refused = segments.status("recording", None)[1]
    segments(second)
    segments.close(120.0)
    return [refused, segments.status("recording", None)[1]]


def writer_of(db_url: str, data_dir: str, event_id: str) -> str:
    """Publish one ended event through the node's writer for ``db_url``; the writer's name."""
    import ray

    from vigil.cluster import NAMESPACE
    from vigil.cluster.writer import NodeStore, node_writer_actor

    store = NodeStore(db_url, data_dir)
    store.publish(Event(id=event_id, camera_id="cam", label="person", class_id=0, track_id=1,
                        start=1.0, end=2.0, state=EventState.END, top_score=0.9))  # fmt: skip
    store.close()
    actor = node_writer_actor(db_url, data_dir)
    for entry in ray.util.list_named_actors(all_namespaces=True):
        handle = ray.get_actor(entry["name"], namespace=NAMESPACE)
        if entry.get("namespace") == NAMESPACE and handle._actor_id == actor._actor_id:
            return str(entry["name"])
    raise AssertionError("the writer has no name")


class _Stale:
    def stats(self) -> dict[str, str]:
        return {}


def stale_detector() -> str:
    """A detector actor of this node made with other settings (key ``stale``), detached, as
    a head killed with -9 leaves one; its name."""
    import ray

    from vigil.cluster import NAMESPACE, detector_actor_name

    name = detector_actor_name(ray.get_runtime_context().get_node_id(), "stale")
    actor: Any = ray.remote(num_cpus=0)(_Stale)
    handle = actor.options(name=name, namespace=NAMESPACE, lifetime="detached").remote()
    ray.get(handle.stats.remote())
    return name


def outage_task(db_url: str, data_dir: str, camera: str, start: float) -> str | None:
    """A camera's segments while the database refuses connections: the recording's error
    once the writer answered (None: queued, not refused)."""
    from vigil.cluster import node_data_dir
    from vigil.cluster.writer import NodeSegments, NodeStore

    root = node_data_dir(Path(data_dir))
    segments = NodeSegments(NodeStore(db_url, data_dir), root, node_name())
    for info in segment_infos(root, camera, start)[:5]:
        segments(info)
    segments.close(120.0)
    return segments.status("recording", None)[1]
