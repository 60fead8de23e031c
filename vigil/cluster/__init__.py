"""Vigil on a Ray cluster (``server.backend: ray``): the names every part agrees on.

Nothing here imports Ray: the single-host product never loads it. The parts:

* camera actors (``vigil.cluster.camera``), hosted several to an actor process by camera
  groups (``vigil.cluster.group``, ``cluster.cameras_per_actor``), each group taking one
  ``CAMERA_SLOTS`` unit of its node's custom resource per camera, restarted by Ray on a
  surviving node when its node dies;
* one batched detector actor per node and model (``detector_actor_name``, keyed by the
  model's settings), the only detector a camera of that model on that node calls, so pixels
  never cross the network;
* one store writer actor per node (``writer_actor_name``), through which the node's cameras
  write their segments, events and counts in batches, over one database connection per node;
* one media actor per node (``media_actor_name``), which reads the node's recordings for the
  API served elsewhere;
* rebalancing (``vigil.cluster.rebalance``): the supervising head moves camera groups, one at
  a time, onto a node that came back or joined.

A node has two identities: the Ray node id (new each time the node's raylet starts; used to
place actors on it) and its **node name**, stable across restarts: ``VIGIL_NODE_NAME`` from
the environment the node was started with, else the host name. The name is what the store
keeps (``segments.node``) and what media actors are named by. The node's data dir
(recordings, snapshots) is ``VIGIL_NODE_DATA_DIR`` from that environment, else the configured
``data_dir``. All actors live in the Ray namespace of the job that made them
(``current_namespace``): ``cluster.namespace``, ``NAMESPACE`` unless configured, so two Vigil
deployments on one Ray cluster never see, adopt or end each other's actors.

The detector and writer actors are detached (they outlive the camera that made them, which
may move) and found by name (``get_if_exists``), so a head that died without stopping them
(``kill -9``) leaves them running. Their names carry a short digest of what they were made
with (``actor_key``: the writer's database URL and data dir, the detector's model and
batching, and Vigil's version), so the next head's cameras never reuse one made for another
database or model; the head ends those of another key before it starts its cameras
(``RayBackend.start``).
"""

from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path

from vigil import __version__

#: The Ray namespace of a deployment that configures none (``cluster.namespace``).
NAMESPACE = "vigil"
# The custom resource an operator sets per node (``ray start --resources``) to say how many
# cameras it takes; every camera actor asks for one unit.
CAMERA_SLOTS = "vigil_camera_slots"
NODE_DATA_DIR_ENV = "VIGIL_NODE_DATA_DIR"
NODE_NAME_ENV = "VIGIL_NODE_NAME"


def current_namespace() -> str:
    """The Ray namespace this process's job runs in: the head's and every replica's
    ``cluster.namespace``, inherited by the actors they make (and those actors' own), so each
    part finds the actors of its own deployment by name and no other's."""
    import ray

    if not ray.is_initialized():
        # Not connected (a unit test's stand-in registry): the default. Asking Ray here
        # would not fail but start a throw-away local cluster in a random namespace
        # (``get_runtime_context`` connects the process), and every later ``ray.init`` of
        # this process would then be refused.
        return NAMESPACE
    return str(ray.get_runtime_context().namespace)


def actor_names(prefix: str = "") -> list[str]:
    """The names of this deployment's named actors (``current_namespace``) that start with
    ``prefix``, sorted: Ray lists every namespace's, so the namespace is asked once here
    rather than for each entry of a list that holds a city's cameras."""
    import ray

    namespace = current_namespace()
    return sorted(str(a.get("name", "")) for a in ray.util.list_named_actors(all_namespaces=True)
                  if a.get("namespace") == namespace
                  and str(a.get("name", "")).startswith(prefix))  # fmt: skip


def camera_actor_name(camera: str) -> str:
    return f"vigil-camera:{camera}"


#: Name prefixes of the per-node actors whose names carry a key (``actor_key``).
DETECTOR_PREFIX = "vigil-detector:"
WRITER_PREFIX = "vigil-writer:"


def actor_key(*parts: str) -> str:
    """A short, stable digest of what a node actor was made with (and of Vigil's version):
    the same in every process, and no secret of a database URL shows in an actor's name."""
    digest = hashlib.sha256("\0".join((__version__, *parts)).encode())
    return digest.hexdigest()[:12]


def detector_actor_name(node_id: str, key: str) -> str:
    return f"{DETECTOR_PREFIX}{key}:{node_id}"


def writer_actor_name(node_id: str, key: str) -> str:
    return f"{WRITER_PREFIX}{key}:{node_id}"


def keyed_actor_parts(name: str) -> tuple[str, str]:
    """``(key, node id)`` of a detector or writer actor's name."""
    _kind, key, node_id = [*name.split(":", 2), "", ""][:3]
    return key, node_id


def media_actor_name(node_name: str) -> str:
    return f"vigil-media:{node_name}"


def node_name() -> str:
    """This node's stable name (see the module docstring)."""
    return os.environ.get(NODE_NAME_ENV, "").strip() or socket.gethostname()


def node_data_dir(default: Path) -> Path:
    """This node's data dir: ``VIGIL_NODE_DATA_DIR`` when the node was started with it (several
    nodes on one machine, or a data disk per node), else ``default`` (the configured one)."""
    value = os.environ.get(NODE_DATA_DIR_ENV, "").strip()
    return Path(value) if value else default
