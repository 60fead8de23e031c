"""Fixtures of the media and status tests: a real Ray cluster (head + node-1 + node-2, see
``tests/ray_cluster.py``), a real PostgreSQL database, media actors on every node, and the
API served in the test process (the "head") with ``ClusterMedia``.

Recordings are made where a camera would make them: ``record_on`` runs a real ``Recorder``
inside a Ray task pinned to the node, writing into that node's data dir and inserting the
segment rows with the node's name. ``snapshot_on`` stores an event with its snapshot through
``StoreEventSink(node=...)`` on the node.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.api.conftest import PASSWORD, Api
from tests.ray_cluster import LocalCluster, local_cluster
from tests.store.conftest import PgServer, new_pg_database
from vigil.api import ApiSettings, CameraStatus, StaticRuntime, create_app
from vigil.api.auth import hash_password
from vigil.cluster import NAMESPACE, node_data_dir, node_name
from vigil.cluster.media import ClusterMedia, MediaCache, ensure_media_actors
from vigil.cluster.retention import NodeRetention
from vigil.cluster.status import gather_status
from vigil.config.models import RedactConfig
from vigil.privacy import FaceDetector, Redactor, build_redactor
from vigil.record.retention import CameraRetention, RetentionPolicy
from vigil.store import Database, Role, UserRepo
from vigil.types import Event, EventState, Snapshot

CLIP = "car-detection.mp4"
#: Segments older than this (s) are expired by the nodes' retention in the tests.
MAX_AGE_S = 3600.0
CACHE_BYTES = 64 * 1024 * 1024


@dataclass
class ClusterEnv:
    cluster: LocalCluster
    root: Path
    db_url: str
    db: Database
    api: Api
    media: ClusterMedia
    actors: dict[str, Any]


def wait_for(check: Callable[[], bool], what: str, deadline_s: float = 120.0) -> None:
    deadline = time.monotonic() + deadline_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def pinned(node_id: str) -> Any:
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return NodeAffinitySchedulingStrategy(node_id, soft=False)


def _record(url: str, camera: str, db_url: str, seconds: float, base: str) -> list[int]:
    """In a Ray task on the recording node: record ``url`` for ``seconds`` into this node's
    data dir and insert each finished segment's row with this node's name."""
    from vigil.record import Recorder
    from vigil.store import SegmentRepo

    root, node = node_data_dir(Path(base)), node_name()
    db = Database(db_url)
    ids: list[int] = []

    def on_segment(info: Any) -> None:
        with db.session() as session:
            row = SegmentRepo(session).add(
                camera=info.camera, path=info.path.relative_to(root).as_posix(),
                start=info.start, end=info.end, size=info.size, sha256=info.sha256, node=node,
            )  # fmt: skip
            ids.append(row.id)

    recorder = Recorder(url, camera, root, segment_seconds=2.0, on_segment=on_segment,
                        file_loop=False, max_attempts=3)  # fmt: skip
    thread = recorder.start()
    time.sleep(seconds)
    recorder.close()
    thread.join(60)
    db.close()
    return ids


def record_on(env: ClusterEnv, node: str, camera: str, seconds: float = 5.0) -> list[int]:
    """Segment ids recorded on ``node`` from the shared clip (real time, stream copy)."""
    import ray

    from tests.conftest import require_file
    from vigil.paths import shared_data_dir

    clip = require_file(shared_data_dir() / "clips" / CLIP)
    task = ray.remote(num_cpus=0)(_record).options(
        scheduling_strategy=pinned(env.cluster.nodes[node].node_id)
    )
    ids: list[int] = ray.get(task.remote(str(clip), camera, env.db_url, seconds,
                                         str(env.root / "unused")), timeout=180)  # fmt: skip
    return ids


def _snapshot(db_url: str, base: str, event_id: str, camera: str, when: float) -> str:
    from vigil.store.sink import StoreEventSink

    root = node_data_dir(Path(base))
    image = np.full((120, 160, 3), 90, np.uint8)
    image[30:90, 40:120] = (20, 180, 240)
    db = Database(db_url)
    sink = StoreEventSink(db, root, node=node_name())
    snap = Snapshot(seq=1, time=when, box=(40.0, 30.0, 120.0, 90.0), score=0.9, image=image,
                    frame_size=(160, 120))  # fmt: skip
    event = Event(
        id=event_id,
        camera_id=camera,
        label="car",
        class_id=2,
        track_id=1,
        start=when,
        end=when + 2.0,
        state=EventState.END,
        live=True,
        snapshot=snap,
    )
    sink.publish(event)
    db.close()
    return node_name()


def snapshot_on(env: ClusterEnv, node: str, event_id: str, camera: str, when: float) -> None:
    import ray

    task = ray.remote(num_cpus=0)(_snapshot).options(
        scheduling_strategy=pinned(env.cluster.nodes[node].node_id)
    )
    assert ray.get(task.remote(env.db_url, str(env.root / "unused"), event_id, camera, when),
                   timeout=120) == node  # fmt: skip


def login_admin(api: Api, name: str = "root") -> Any:
    with api.db.session() as session:
        if UserRepo(session).get(name) is None:
            UserRepo(session).add(name, Role.ADMIN, hash_password(PASSWORD))
    return api.login(name)


@pytest.fixture(scope="module")
def cluster_env(pg_server: PgServer, face_detector: FaceDetector) -> Iterator[ClusterEnv]:
    import ray

    root = Path(tempfile.mkdtemp(prefix="vigil-cluster-", dir=os.environ.get("TMPDIR")))
    with local_cluster(root, workers=2, slots=2) as cluster:
        ray.init(address=cluster.address, namespace=NAMESPACE, log_to_driver=False)
        try:
            db_url = new_pg_database(pg_server)
            db = Database(db_url)
            policy = RetentionPolicy(default=CameraRetention(max_age=MAX_AGE_S))
            spec = NodeRetention(db_url, policy, {"cam1": MAX_AGE_S, "cam2": MAX_AGE_S},
                                 interval_s=0)  # fmt: skip
            actors = ensure_media_actors(root / "unused", spec)
            media = ClusterMedia(root / "head", "head",
                                 MediaCache(root / "api-cache", CACHE_BYTES))  # fmt: skip

            def factory(config: RedactConfig, size: tuple[int, int]) -> Redactor:
                return build_redactor(config, size, face_detector=face_detector)

            runtime = StaticRuntime({"cam1": CameraStatus("cam1", True, "running"),
                                     "cam2": CameraStatus("cam2", True, "running")})  # fmt: skip
            settings = ApiSettings(secure_cookies=False, clip_settle_s=0.0)
            app = create_app(settings, db, runtime, data_dir=root / "head",
                             redactor_factory=factory, media_resolver=media,
                             cluster_status=gather_status)  # fmt: skip
            api = Api(app, db, runtime, root / "head")
            env = ClusterEnv(cluster, root, db_url, db, api, media, actors)
            yield env
            api.close()
            db.close()
        finally:
            ray.shutdown()
    shutil.rmtree(root, ignore_errors=True)
