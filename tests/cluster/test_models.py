"""Cameras of two models on a real Ray cluster: one worker node of two camera slots, two RTSP
cameras, one on YOLOX-nano and one on a copy of it under another path (what a user's own
export is to Vigil). The node runs one detector actor per model, each serving only its own
camera; ``vigil cluster status`` lists both; the head's start ends a detector left with other
settings but keeps both of this configuration's. The same head ages the exports and cached
clips it made (the nodes age their recordings): its retention runs in cluster mode too."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.conftest import Mount, cluster_config, fast_backoff, wait_for
from tests.conftest import require_file
from tests.ray_cluster import LocalCluster, local_cluster
from tests.store.conftest import PgServer, new_pg_database
from vigil.cluster import DETECTOR_PREFIX, NAMESPACE, keyed_actor_parts
from vigil.cluster.backend import RayBackend, named_actors
from vigil.cluster.status import gather_status
from vigil.paths import shared_models_dir
from vigil.record.export import manifest_path
from vigil.runtime.serve import Supervisor
from vigil.store import Database
from vigil.store.repo import SegmentRepo

EXPORT_MAX_AGE_S = 3600.0


@dataclass
class TwoModels:
    cluster: LocalCluster
    supervisor: Supervisor
    db: Database
    own: Path  # the copy's path: the second model


@pytest.fixture(scope="module")
def two_models(
    tmp_path_factory: pytest.TempPathFactory, pg_server: PgServer, relays: list[Mount]
) -> Iterator[TwoModels]:
    import ray

    model = require_file(shared_models_dir() / "yolox_nano.onnx")
    root = tmp_path_factory.mktemp("models")
    own = root / "own.onnx"
    shutil.copyfile(model, own)
    url = new_pg_database(pg_server)
    with local_cluster(root / "nodes", workers=1, slots=2) as cluster:
        ray.init(address=cluster.address, namespace=NAMESPACE)
        cameras = {"cam0": relays[0].url, "cam1": relays[1].url}
        config = cluster_config(root / "data", url, cluster.address, cameras,
                                models={"cam0": str(model)})  # fmt: skip
        # cam1 runs the copy: other model settings than the global detect's.
        cam1 = config.cameras["cam1"].model_copy(
            update={"detect": config.detect.model_copy(update={"model": str(own)})}
        )
        # Retention every second: the head's run over its exports and clips is waited for.
        server = config.server.model_copy(
            update={"retention_interval": 1.0, "export_max_age": EXPORT_MAX_AGE_S}
        )
        config = config.model_copy(update={"cameras": {**config.cameras, "cam1": cam1},
                                           "server": server})  # fmt: skip
        db = Database(url)
        supervisor = Supervisor(config, db=db, backoff=fast_backoff, stall_timeout=5.0,
                                cluster_backend=RayBackend)  # fmt: skip
        try:
            supervisor.start()
            wait_for(lambda: all(s.online for s in supervisor.cameras()), 240,
                     "not every camera came online")  # fmt: skip
            yield TwoModels(cluster, supervisor, db, own)
        finally:
            supervisor.stop()
            db.close()
            ray.shutdown()


def _detector_stats() -> list[dict[str, Any]]:
    import ray

    return [ray.get(actor.stats.remote(), timeout=30)
            for _name, actor in named_actors(DETECTOR_PREFIX)]  # fmt: skip


def test_the_node_runs_one_detector_per_model(two_models: TwoModels) -> None:
    supervisor = two_models.supervisor
    handles: dict[str, Any] = dict(supervisor.workers)
    wait_for(lambda: all(h.analysed > 5 for h in handles.values()), 240,
             "a camera analysed no frames")  # fmt: skip
    assert {h.node for h in handles.values()} == {"node-1"}, "both cameras on the one node"
    wait_for(lambda: len(_detector_stats()) == 2 and all(s["images"] > 0
             for s in _detector_stats()), 120, "not two detectors, each used")  # fmt: skip
    stats = {Path(s["model"]).name: s for s in _detector_stats()}
    assert set(stats) == {"yolox_nano.onnx", "own.onnx"}
    assert stats["own.onnx"]["model"] == str(two_models.own)
    assert {s["node"] for s in stats.values()} == {"node-1"}
    assert stats["own.onnx"]["key"] != stats["yolox_nano.onnx"]["key"]
    # Each camera's spec names its own model's detector.
    keys = {name: h.spec.detector.key for name, h in handles.items()}
    assert keys == {"cam0": stats["yolox_nano.onnx"]["key"], "cam1": stats["own.onnx"]["key"]}


def test_cluster_status_lists_each_model_of_a_node(two_models: TwoModels) -> None:
    wait_for(lambda: len(_detector_stats()) == 2, 240, "not two detectors")
    status = gather_status(timeout_s=30)
    loads = [d for d in status.detectors if d.node == "node-1"]
    assert sorted(Path(d.model).name for d in loads) == ["own.onnx", "yolox_nano.onnx"]
    assert all(d.error is None and d.input_size[0] > 0 for d in loads)


def test_a_restarted_head_keeps_both_models_detectors(two_models: TwoModels) -> None:
    """``_end_stale`` at start keeps every key of this configuration (both models)."""
    backend = two_models.supervisor.backend
    assert isinstance(backend, RayBackend)
    wait_for(lambda: len(_detector_stats()) == 2, 240, "not two detectors")
    before = sorted(name for name, _actor in named_actors(DETECTOR_PREFIX))
    backend._end_stale()
    after = sorted(name for name, _actor in named_actors(DETECTOR_PREFIX))
    assert after == before
    assert len({keyed_actor_parts(name)[0] for name in after}) == 2


def _derived(path: Path, camera: str, start: float, end: float, written: float) -> Path:
    """An export or cached clip as the API leaves it: the MP4 (its time: ``written``) and
    the manifest naming its footage."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * 64)
    iso = [datetime.fromtimestamp(t, UTC).isoformat() for t in (start, end)]
    manifest_path(path).write_text(json.dumps({"camera": camera, "start": iso[0],
                                               "end": iso[1]}), encoding="utf-8")  # fmt: skip
    os.utime(path, (written, written))
    return path


def test_the_head_ages_its_exports_and_clips(two_models: TwoModels) -> None:
    root = two_models.supervisor.root
    assert two_models.supervisor.clustered

    def segments(camera: str) -> list[Any]:
        with two_models.db.session() as session:
            return list(SegmentRepo(session).list(camera))

    wait_for(lambda: bool(segments("cam0") and segments("cam1")), 180, "no segments stored")
    held, recorded = segments("cam0")[0], segments("cam1")[-1]
    with two_models.db.session() as session:
        assert SegmentRepo(session).set_lock("cam0", held.start, held.end, True) >= 1
    now, long_ago = time.time(), time.time() - 86400.0
    old = now - 2 * EXPORT_MAX_AGE_S
    # Kept, written first so that the run that deletes the others has seen them too.
    evidence = _derived(root / "exports" / "evidence.mp4", "cam0", held.start, held.end, old)
    fresh = _derived(root / "exports" / "fresh.mp4", "cam1", long_ago, long_ago + 5, now)
    cached = _derived(root / "clips" / "cam1" / "cached.mp4", "cam1", recorded.start,
                      recorded.end, now)  # fmt: skip
    # Deleted: an export past export_max_age, a clip whose recordings are gone.
    expired = _derived(root / "exports" / "expired.mp4", "cam1", long_ago, long_ago + 5, old)
    orphan = _derived(root / "clips" / "cam1" / "orphan.mp4", "cam1", long_ago,
                      long_ago + 5, now)  # fmt: skip
    wait_for(lambda: not expired.exists() and not orphan.exists(), 60,
             "the head's retention left an expired export or an orphaned clip")  # fmt: skip
    assert not manifest_path(expired).exists()
    assert evidence.exists(), "an export of locked footage stays while the lock holds"
    assert fresh.exists()
    assert cached.exists()
