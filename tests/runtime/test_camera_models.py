"""A camera's own ``detect.model`` settings: one batching detector per distinct model, the
cameras that share one batch together, on the thread and worker-process backends, with the
real YOLOX-nano (a copy of it under another path stands for "a different model"); a model
file that does not exist is a configuration error naming the camera; the Ray backend takes
cameras of several models too (a detector actor per node and model: tests/cluster/test_models.py
runs them)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("sqlalchemy", reason="the server extra is not installed")

from tests.runtime.test_supervisor import fast_backoff, wait_for
from vigil.commands.serve import check_cluster, with_cluster
from vigil.config.loader import parse_config
from vigil.config.models import VigilConfig
from vigil.detect.onnx import OnnxDetector
from vigil.errors import ConfigError
from vigil.runtime.batcher import BatchingDetector
from vigil.runtime.serve import Supervisor

# People walk through the whole clip: every camera's detector gets frames at once.
SCENE = "synthetic://?width=320&height=180&fps=5&duration=60"


def config_of(tmp: Path, cameras: dict[str, Any]) -> VigilConfig:
    """The global model is the registry's YOLOX-nano (resolved from the shared folder); the
    global sections are merged into the cameras' (by ``VigilConfig`` itself)."""
    return VigilConfig.model_validate({
        "detect": {"model": "yolox-nano", "fps": 5, "threads": 1},
        "data_dir": str(tmp / "data"),
        "cameras": {name: {"sources": [{"url": SCENE}], **cam} for name, cam in cameras.items()},
    })  # fmt: skip


@pytest.fixture
def other_model(tmp_path: Path, yolox_nano_path: Path) -> Path:
    """A second model file (the same network under another path: what a user's own
    fine-tuned export would be to Vigil)."""
    copy = tmp_path / "models" / "own.onnx"
    copy.parent.mkdir()
    shutil.copyfile(yolox_nano_path, copy)
    return copy


def onnx_of(batcher: BatchingDetector) -> OnnxDetector:
    model = batcher.detector
    assert isinstance(model, OnnxDetector)
    return model


def every_model_inferred(supervisor: Supervisor) -> Callable[[], bool]:
    return lambda: all(b.stats.images > 0 for b in supervisor.batchers)


CAMERAS: dict[str, Any] = {
    "global": {},  # the global model
    "cars": {"detect": {"labels": ["car"], "confidence": 0.5}},  # filters only: shares it
    "own": {"detect": {"model": "OWN"}},  # its own file
    "small": {"detect": {"input_size": 320}},  # the global file at another input size
    "blobs": {"detect": {"model": "motion"}},  # no model
}


def cameras_with(model: Path) -> dict[str, Any]:
    out = dict(CAMERAS)
    out["own"] = {"detect": {"model": str(model)}}
    return out


@pytest.mark.parametrize("processes", [0, 1], ids=["threads", "processes"])
def test_each_camera_runs_on_its_own_model_settings(
    tmp_path: Path, other_model: Path, yolox_nano_path: Path, processes: int
) -> None:
    config = config_of(tmp_path, cameras_with(other_model))
    supervisor = Supervisor(config, backoff=fast_backoff, worker_processes=processes)
    try:
        detectors = supervisor.detectors
        assert len(supervisor.batchers) == 3, "global+cars, own, small"
        assert detectors["cars"] is detectors["global"], "same model: one batch"
        assert "blobs" not in detectors
        assert onnx_of(detectors["own"]).path == other_model
        assert onnx_of(detectors["global"]).path.name == yolox_nano_path.name
        assert detectors["small"].input_size == (320, 320)
        assert detectors["global"].input_size == (416, 416)
        # The shared model keeps what any of its cameras wants; each camera filters.
        assert onnx_of(detectors["global"]).confidence == pytest.approx(0.3)
        supervisor.start()
        wait_for(every_model_inferred(supervisor), 120,
                 "every model did not get its cameras' frames")  # fmt: skip
    finally:
        supervisor.stop()
    for name in ("global", "own", "small"):
        assert supervisor.workers[name].analysed > 0, name


def test_a_missing_camera_model_file_names_the_camera_and_the_fix(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "mine.onnx"
    text = f"""
detect:
  fps: 5
cameras:
  door:
    sources: [{{url: "{SCENE}"}}]
  yard:
    sources: [{{url: "{SCENE}"}}]
    detect:
      model: {missing}
"""
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="cameras.yaml")
    message = str(caught.value)
    assert "cameras.yaml:10" in message, message
    assert "camera 'yard'" in message
    assert str(missing) in message
    assert "does not exist" in message
    assert "registry name" in message
    assert "door" not in message


def test_a_missing_global_model_file_is_an_error_too(tmp_path: Path) -> None:
    missing = tmp_path / "gone.onnx"
    with pytest.raises(ConfigError, match=r"cameras.yaml:2: detect.model: model file .*gone"):
        parse_config(f"detect:\n  model: {missing}\n", source="cameras.yaml")


def test_existing_camera_model_file_loads(tmp_path: Path, other_model: Path) -> None:
    config = parse_config(
        f"cameras:\n  yard:\n    sources: [{{url: '{SCENE}'}}]\n"
        f"    detect: {{model: {other_model}}}\n"
    )
    assert config.camera("yard").detect.model == str(other_model)


def test_the_ray_backend_takes_several_models_at_load(tmp_path: Path, other_model: Path) -> None:
    text = f"""
server: {{backend: ray}}
database_url: postgresql://vigil@localhost/vigil
cameras:
  door: {{sources: [{{url: "{SCENE}"}}]}}
  yard: {{sources: [{{url: "{SCENE}"}}], detect: {{model: {other_model}}}}}
  lane: {{sources: [{{url: "{SCENE}"}}], detect: {{labels: [car], confidence: 0.6}}}}
"""
    config = parse_config(text, source="cameras.yaml")
    assert config.server.backend == "ray"
    assert config.camera("yard").detect.model == str(other_model)


def test_the_ray_backend_takes_cameras_that_differ_only_in_filters(tmp_path: Path) -> None:
    text = f"""
server: {{backend: ray}}
cameras:
  door: {{sources: [{{url: "{SCENE}"}}], detect: {{model: yolox_nano}}}}
  lane: {{sources: [{{url: "{SCENE}"}}], detect: {{labels: [car], confidence: 0.6, fps: 2}}}}
"""
    assert parse_config(text).server.backend == "ray"


def test_cluster_flag_takes_several_models(tmp_path: Path, other_model: Path) -> None:
    pytest.importorskip("ray", reason="the cluster extra is not installed")
    config = config_of(tmp_path, {"door": {}, "yard": {"detect": {"model": str(other_model)}}})
    config = config.model_copy(update={"database_url": "postgresql://vigil@localhost/vigil"})
    check_cluster(with_cluster(config, "local"))  # no refusal: one detector per node and model
    # SQLite is still refused: every node writes to the database.
    with pytest.raises(ConfigError, match="PostgreSQL"):
        check_cluster(with_cluster(config_of(tmp_path, {"door": {}}), "local"))
