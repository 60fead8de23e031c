"""The ``Supervisor`` of a cluster head, on a real PostgreSQL, with a stand-in backend: at
its start it closes no event. A head that starts may adopt camera actors an earlier head
left running, whose events are open because they are going on; a camera actor closes its
own camera's left-open events whenever it (re)starts (``CameraActor._build``)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.cluster.conftest import cluster_config
from tests.store.conftest import PgServer, new_pg_database
from vigil.config.models import ResolvedCamera
from vigil.runtime.serve import Supervisor
from vigil.runtime.view import CameraStatus
from vigil.store import Database, EventRepo
from vigil.types import Event, EventState


class _Handle:
    """What the Supervisor asks of a camera handle at start and stop."""

    def __init__(self, camera: ResolvedCamera) -> None:
        self.camera, self.name = camera, camera.name
        self.detection, self.recording = True, True
        self.latencies: deque[tuple[float, float, bool]] = deque()

    def set_detection(self, on: bool) -> None:
        self.detection = on

    def status(self) -> CameraStatus:
        return CameraStatus(name=self.name, online=True, state="running")


class _Backend:
    """A cluster backend whose cameras run elsewhere (an earlier head's actors)."""

    def __init__(self, cameras: Sequence[ResolvedCamera], *_args: Any, **_kwargs: Any) -> None:
        self._handles = {camera.name: _Handle(camera) for camera in cameras}

    kind = "ray"

    @property
    def handles(self) -> Mapping[str, _Handle]:
        return self._handles

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def close(self, timeout: float) -> None:
        pass

    def pids(self) -> list[int]:
        return []


def test_a_cluster_head_that_starts_leaves_the_cameras_events_open(
    tmp_path: Path, pg_server: PgServer
) -> None:
    url = new_pg_database(pg_server)
    config = cluster_config(tmp_path, url, "auto", {"cam0": "rtsp://127.0.0.1:1/cam0"})
    db = Database(url)
    now = time.time()
    going_on = Event(id="going-on", camera_id="cam0", label="car", class_id=2, track_id=1,
                     start=now - 30, end=None, state=EventState.START, live=True)  # fmt: skip
    try:
        with db.session() as session:
            EventRepo(session).upsert(going_on, now=now - 20)
        supervisor = Supervisor(config, db=db, cluster_backend=_Backend)
        supervisor.start()
        try:
            with db.session() as session:
                row = EventRepo(session).get("going-on")
            assert row is not None
            assert row.end is None, "an adopted camera's event is going on: left open"
        finally:
            supervisor.stop()
    finally:
        db.close()
