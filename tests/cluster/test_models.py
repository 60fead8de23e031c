"""Cameras of two models on a real Ray cluster: one worker node of two camera slots, two RTSP
cameras, one on YOLOX-nano and one on a copy of it under another path (what a user's own
export is to Vigil). The node runs one detector actor per model, each serving only its own
camera; ``vigil cluster status`` lists both; the head's start ends a detector left with other
settings but keeps both of this configuration's."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
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
from vigil.runtime.serve import Supervisor
from vigil.store import Database


@dataclass
class TwoModels:
    cluster: LocalCluster
    supervisor: Supervisor
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
            update={"detect": config.detect.model_copy(update={"model": str(own)})})
        config = config.model_copy(update={"cameras": {**config.cameras, "cam1": cam1}})
        db = Database(url)
        supervisor = Supervisor(config, db=db, backoff=fast_backoff, stall_timeout=5.0,
                                cluster_backend=RayBackend)  # fmt: skip
        try:
            supervisor.start()
            wait_for(lambda: all(s.online for s in supervisor.cameras()), 240,
                     "not every camera came online")  # fmt: skip
            yield TwoModels(cluster, supervisor, own)
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
