"""A real multi-node Ray cluster on this machine, for the cluster tests.

``ray.cluster_utils.Cluster`` starts a head and worker nodes as separate raylet processes;
each node gets its own custom resource of camera slots (``vigil.cluster.CAMERA_SLOTS``), its
own node name and its own data dir through the environment it starts with, as an operator
would give each machine. ``remove`` kills one node's processes: a machine lost.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from vigil.cluster import CAMERA_SLOTS, NODE_DATA_DIR_ENV, NODE_NAME_ENV


def require_ray() -> None:
    """Skip with the reason when Ray is missing; fail instead under ``CI=true``."""
    try:
        import ray  # noqa: F401
    except ImportError:
        reason = "Ray is not installed (pip install -e '.[cluster]')"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)


@dataclass
class ClusterNode:
    name: str
    data_dir: Path
    handle: Any  # ray._private.node.Node
    node_id: str = ""


@dataclass
class LocalCluster:
    cluster: Any  # ray.cluster_utils.Cluster
    nodes: dict[str, ClusterNode] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return str(self.cluster.address)

    def add(self, name: str, data_dir: Path, *, slots: int, num_cpus: int = 1) -> ClusterNode:
        data_dir.mkdir(parents=True, exist_ok=True)
        env = {NODE_NAME_ENV: name, NODE_DATA_DIR_ENV: str(data_dir)}
        handle = self.cluster.add_node(num_cpus=num_cpus, resources={CAMERA_SLOTS: slots},
                                       env_vars=env)  # fmt: skip
        node = ClusterNode(name, data_dir, handle, handle.node_id)
        self.nodes[name] = node
        return node

    def remove(self, name: str) -> None:
        """Kill node ``name`` (its raylet and every worker on it), as a lost machine."""
        node = self.nodes.pop(name)
        self.cluster.remove_node(node.handle, allow_graceful=False)


#: Ray's GCS declares a node dead after ``health_check_failure_threshold`` missed health
#: checks ``health_check_period_ms`` apart: about 15 s by default (3 s x 5). A failover test
#: may ask for a quicker verdict, as an operator can (``ray start --system-config``).
FAST_FAILURE_DETECTION = {"health_check_period_ms": 1000, "health_check_failure_threshold": 4}


@contextmanager
def local_cluster(
    root: Path, workers: int = 2, *, slots: int = 2, system_config: dict[str, Any] | None = None,
    head_params: dict[str, Any] | None = None,
) -> Iterator[LocalCluster]:  # fmt: skip
    """A head with no camera slots (it serves the API) and ``workers`` worker nodes named
    ``node-1``… with ``slots`` camera slots each, data dirs under ``root``; ``system_config``:
    Ray settings of the head (e.g. ``FAST_FAILURE_DETECTION``); ``head_params``: more
    ``RayParams`` of the head (e.g. ``vigil.cluster.lean.LEAN_HEAD_PARAMS``)."""
    require_ray()
    from ray.cluster_utils import Cluster

    head_env = {NODE_NAME_ENV: "head", NODE_DATA_DIR_ENV: str(root / "head")}
    (root / "head").mkdir(parents=True, exist_ok=True)
    head_args: dict[str, Any] = {
        "num_cpus": 1, "resources": {CAMERA_SLOTS: 0}, "include_dashboard": False,
        "env_vars": head_env,
    }  # fmt: skip
    if system_config:
        head_args["_system_config"] = system_config
    head_args.update(head_params or {})
    cluster = Cluster(initialize_head=True, head_node_args=head_args)
    local = LocalCluster(cluster)
    local.nodes["head"] = ClusterNode("head", root / "head", cluster.head_node,
                                      cluster.head_node.node_id)  # fmt: skip
    try:
        for index in range(1, workers + 1):
            local.add(f"node-{index}", root / f"node-{index}", slots=slots)
        cluster.wait_for_nodes()
        yield local
    finally:
        cluster.shutdown()
