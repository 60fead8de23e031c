"""A move's standby group (``CameraGroup(standby=True, replaces=...)``) that Ray restarts, on
a real cluster: while the group it replaces lives, it stands by again (started at once, it
recorded the cameras beside the old group until the move ended); once that group is gone, it
is failing over and starts its cameras.

The cameras are synthetic (no network, no model): what is checked is whether the group
started them, which ``peek_many`` tells (a standby group answers for none of its cameras).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.conftest import wait_for
from tests.ray_cluster import LocalCluster, local_cluster
from vigil.cluster import NAMESPACE, camera_actor_name
from vigil.cluster.camera import CameraSpec
from vigil.cluster.group import CameraGroup, _alive
from vigil.config.models import VigilConfig

OLD = camera_actor_name("k0:door")
NEW = camera_actor_name("k0+1:door")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    import ray

    root = tmp_path_factory.mktemp("move-standby")
    with local_cluster(root / "nodes", workers=1, slots=4) as local:
        ray.init(address=local.address, namespace=NAMESPACE)
        try:
            yield local
        finally:
            ray.shutdown()


def _spec(data: Path) -> CameraSpec:
    config = VigilConfig.model_validate({
        "detect": {"model": "motion"}, "data_dir": str(data),
        "cameras": {"door": {"sources": [{"url": "synthetic://?fps=5"}]}},
    })  # fmt: skip
    return CameraSpec(config, config.camera("door"), "postgresql://nobody@127.0.0.1:9/none", None)


def _started(group: Any) -> bool:
    import ray

    return bool(ray.get(group.peek_many.remote({"door": 0}), timeout=60))


def _restarts(name: str) -> tuple[int, str]:
    """``(restarts, state)`` of the live actor ``name`` in the GCS's actor table (as
    ``vigil cluster status`` reads it: this cluster runs no dashboard)."""
    from ray._private import state

    (found,) = [a for a in state.actors().values()
                if a.get("Name") == name and a.get("State") != "DEAD"]  # fmt: skip
    return int(found.get("NumRestarts") or 0), str(found.get("State"))


def _restart(group: Any, name: str) -> None:
    """Kill the group's process as a dying node would, and wait until Ray restarted it."""
    import ray

    before, _ = _restarts(name)
    ray.kill(group, no_restart=False)
    wait_for(lambda: _restarts(name) == (before + 1, "ALIVE"), 120, "the group was not restarted")
    ray.get(group.ready.remote(), timeout=60)


def test_a_restarted_standby_waits_while_the_group_it_replaces_lives(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    import ray

    # The group being replaced: only its name and life matter here (a group of no camera;
    # a class of this module would not import on the node).
    old = ray.remote(CameraGroup).options(name=OLD, lifetime="detached", num_cpus=0).remote([])
    ray.get(old.ready.remote(), timeout=120)
    new = ray.remote(CameraGroup).options(
        name=NEW, lifetime="detached", num_cpus=0, max_restarts=3, max_task_retries=0,
        max_concurrency=8,
    ).remote([_spec(tmp_path)], True, OLD)  # fmt: skip
    try:
        ray.get(new.ready.remote(), timeout=120)
        assert not _started(new), "a standby group started its cameras"
        _restart(new, NEW)
        assert not _started(new), "restarted beside the group it replaces, it started them"
        ray.kill(old, no_restart=True)  # the old group's node died for good: a failover
        wait_for(lambda: not _alive(OLD), 60, "the old group is still listed")
        _restart(new, NEW)
        assert _started(new), "restarted with the old group gone, it did not start them"
        ray.get(new.activate.remote(), timeout=60)  # the head's switch, late: nothing twice
        assert _started(new)
    finally:
        for actor in (new, old):
            ray.kill(actor, no_restart=True)
