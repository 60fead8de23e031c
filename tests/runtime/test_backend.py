"""The camera backend: which one ``server.backend`` picks, and the Supervisor driving either
through the one ``CameraBackend`` protocol (real synthetic cameras, a real worker process)."""

from __future__ import annotations

import pickle
from dataclasses import FrozenInstanceError, fields
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sqlalchemy", reason="the server extra is not installed")

from tests.runtime.test_supervisor import fast_backoff, make_config, wait_for
from vigil.config import parse_config
from vigil.config.models import LineConfig, ServerConfig
from vigil.errors import ConfigError, VigilError
from vigil.runtime import messages
from vigil.runtime.backend import resolve_backend
from vigil.runtime.serve import Supervisor
from vigil.runtime.view import CameraStatus
from vigil.types import Detections

SCENE = "synthetic://?width=320&height=180&fps=10&duration={d}"


@pytest.mark.parametrize(("backend", "procs", "cameras", "cpus", "expected"), [
    ("auto", "auto", 4, 2, ("threads", 0)),  # few cameras per core: threads, as before
    ("auto", "auto", 9, 2, ("processes", 2)),  # more than 4 per core: one per core
    ("auto", 0, 9, 2, ("threads", 0)),
    ("auto", 3, 9, 2, ("processes", 3)),
    ("threads", "auto", 9, 2, ("threads", 0)),  # forced, whatever the camera count
    ("threads", 0, 9, 2, ("threads", 0)),
    ("processes", "auto", 1, 8, ("processes", 1)),  # one per core, at most one per camera
    ("processes", "auto", 9, 2, ("processes", 2)),
    ("processes", "auto", 9, None, ("processes", 1)),
    ("processes", 3, 9, 2, ("processes", 3)),
    ("processes", "auto", 0, 2, ("threads", 0)),  # nothing to run
    ("ray", "auto", 9, 2, ("ray", 0)),  # actors on the cluster: no worker processes here
])  # fmt: skip
def test_resolve_backend(
    backend: str, procs: int | str, cameras: int, cpus: int | None, expected: tuple[str, int]
) -> None:
    server = ServerConfig.model_validate({"backend": backend, "worker_processes": procs})
    assert resolve_backend(server, cameras, cpus) == expected


def test_an_explicit_process_count_overrides_the_backend() -> None:
    server = ServerConfig.model_validate({"backend": "threads"})
    assert resolve_backend(server, 3, 2, worker_processes=2) == ("processes", 2)
    server = ServerConfig.model_validate({"backend": "processes"})
    assert resolve_backend(server, 3, 2, worker_processes=0) == ("threads", 0)


def test_backend_defaults_to_auto() -> None:
    assert ServerConfig().backend == "auto"


def test_ray_is_accepted_with_a_cluster_section() -> None:
    config = parse_config(
        "server:\n  backend: ray\ncluster:\n  address: 10.0.0.5:6379\n"
        "  max_restarts: 3\n  detector_num_gpus: 0.5\n",
        source="x.yaml",
    )
    assert config.server.backend == "ray"
    assert config.cluster.address == "10.0.0.5:6379"
    assert (config.cluster.max_restarts, config.cluster.detector_num_gpus) == (3, 0.5)


def test_the_cluster_section_defaults_to_an_existing_cluster_restarting_for_ever() -> None:
    config = parse_config("server:\n  backend: ray\n", source="x.yaml")
    assert (config.cluster.address, config.cluster.max_restarts) == ("auto", -1)
    assert config.cluster.detector_num_gpus == 0


@pytest.mark.parametrize("address", ["auto", "local", "ray://head:10001", "head:6379"])
def test_cluster_addresses_that_are_accepted(address: str) -> None:
    config = parse_config(f"cluster:\n  address: '{address}'\n", source="x.yaml")
    assert config.cluster.address == address


def test_a_cluster_address_without_a_port_names_the_forms() -> None:
    with pytest.raises(ConfigError, match=r"x\.yaml:2.*'auto', 'local', HOST:PORT"):
        parse_config("cluster:\n  address: somehost\n", source="x.yaml")


def test_an_unknown_backend_names_the_allowed_ones() -> None:
    allowed = r"server\.backend.*'auto', 'threads', 'processes' or 'ray'"
    with pytest.raises(ConfigError, match=allowed):
        parse_config("server:\n  backend: fibers\n", source="x.yaml")


@pytest.mark.parametrize(("text", "fix"), [
    ("server:\n  backend: threads\n  worker_processes: 2\n", "set worker_processes to 0"),
    ("server:\n  backend: processes\n  worker_processes: 0\n", "set worker_processes to a number"),
])  # fmt: skip
def test_backend_and_worker_processes_must_agree(text: str, fix: str) -> None:
    with pytest.raises(ConfigError, match=fix):
        parse_config(text, source="x.yaml")


@pytest.mark.parametrize("database", ["sqlite", None])
def test_the_ray_backend_refuses_sqlite_naming_postgresql(
    tmp_path: Path, database: str | None
) -> None:
    from vigil.store import Database

    config = make_config(tmp_path, {"a": {"sources": [{"url": SCENE.format(d=1)}]}})
    config = config.model_copy(
        update={"server": ServerConfig.model_validate({"backend": "ray"})})  # fmt: skip
    db = None if database is None else Database(f"sqlite:///{tmp_path / 'vigil.db'}")
    with pytest.raises(ConfigError, match=r"needs PostgreSQL.*database_url: postgresql://"):
        Supervisor(config, db=db, backoff=fast_backoff)
    if db is not None:
        db.close()


def test_threads_backend_from_the_configuration(tmp_path: Path) -> None:
    # Ten cameras on any machine of up to two cores would be processes under ``auto``.
    cameras = {f"c{i}": {"sources": [{"url": SCENE.format(d=1)}]} for i in range(10)}
    config = make_config(tmp_path, cameras).model_copy(
        update={"server": ServerConfig.model_validate({"backend": "threads"})})  # fmt: skip
    supervisor = Supervisor(config, backoff=fast_backoff)
    supervisor.stop()  # never started: stopping must still be clean
    assert supervisor.backend.kind == "threads"
    assert supervisor.pool is None
    assert supervisor.processes == 0
    assert supervisor.worker_pids() == []
    assert sorted(supervisor.workers) == sorted(cameras)


def test_processes_backend_from_the_configuration(tmp_path: Path) -> None:
    config = make_config(tmp_path, {"a": {"sources": [{"url": SCENE.format(d=30)}]}})
    config = config.model_copy(
        update={"server": ServerConfig.model_validate({"backend": "processes"})})  # fmt: skip
    supervisor = Supervisor(config, backoff=fast_backoff)
    assert supervisor.backend.kind == "processes"
    assert supervisor.pool is supervisor.backend
    assert supervisor.processes == 1
    supervisor.start()
    try:
        assert len(supervisor.worker_pids()) == 1
        wait_for(lambda: supervisor.workers["a"].online, 30, "camera a not online")
        status = supervisor.cameras()[0]
        assert isinstance(status, CameraStatus)
        assert status.name == "a"
        assert status.online
        supervisor.update_rules("a", {}, {"mid": LineConfig(points=[(0.1, 0.5), (0.9, 0.5)])})
        assert "mid" in supervisor.counts("a")["lines"]
    finally:
        supervisor.stop()
    assert supervisor.workers["a"].state == "stopped"


def test_a_never_started_process_backend_stops_cleanly(tmp_path: Path) -> None:
    config = make_config(tmp_path, {"a": {"sources": [{"url": SCENE.format(d=1)}]}})
    supervisor = Supervisor(config, backoff=fast_backoff, worker_processes=1)
    supervisor.stop()  # raised AssertionError before: no control pipe to send Stop on
    assert supervisor.workers["a"].state == "stopped"


def _samples() -> list[object]:
    status = CameraStatus("a", True, "running")
    dets = Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0))
    reply = messages.Reply([dets])
    line = LineConfig(points=[(0.1, 0.5), (0.9, 0.5)])
    return [
        messages.CameraReport(status, 3, 2, 0, 1, None, ((1.0, 0.1, False),)),
        messages.Call(1, "a", messages.LatestFrame()),
        messages.Call(2, "a", messages.LatestTracks()), messages.Call(3, "a", messages.GetCounts()),
        messages.Call(4, "a", messages.UpdateRules({}, {"mid": line})),
        messages.Stop(), reply, messages.Reply(error=VigilError("no")),
        messages.StatusReport({"a": messages.CameraReport(status, 0, 0, 0, 0, "x")}),
        messages.CallReply(1, reply), messages.Bye(),
        messages.Detect("slot", [(0, (2, 2, 3))]), messages.AllocSlot(64, None),
        messages.RuleHits(()), messages.CountsChanged({"lines": {}}), messages.Online(True),
        messages.Activity(12.5),
    ]  # fmt: skip


@pytest.mark.parametrize("message", _samples(), ids=lambda m: type(m).__name__)
def test_messages_are_frozen_and_cross_a_pipe(message: object) -> None:
    back = pickle.loads(pickle.dumps(message))
    assert type(back) is type(message)
    assert repr(back) == repr(message)
    names = [f.name for f in fields(message)]  # type: ignore[arg-type]
    if names:
        with pytest.raises(FrozenInstanceError):
            setattr(message, names[0], None)


def test_a_reply_raises_its_error_where_it_is_unwrapped() -> None:
    assert messages.Reply(5).unwrap() == 5
    with pytest.raises(VigilError, match="no"):
        pickle.loads(pickle.dumps(messages.Reply(error=VigilError("no")))).unwrap()
