"""Vigil on a Ray cluster (``server.backend: ray``): the names every part agrees on.

Nothing here imports Ray: the single-host product never loads it. The parts:

* camera actors (``vigil.cluster.camera``): one per camera, named ``camera_actor_name``,
  each taking one ``CAMERA_SLOTS`` unit of its node's custom resource, restarted by Ray on a
  surviving node when its node dies;
* one batched detector actor per node (``detector_actor_name``), the only detector a camera
  on that node calls, so pixels never cross the network;
* one store writer actor per node (``writer_actor_name``), through which the node's cameras
  write their events and counts in batches, over one database connection per node;
* one media actor per node (``media_actor_name``), which reads the node's recordings for the
  API served elsewhere.

A node has two identities: the Ray node id (new each time the node's raylet starts; used to
place actors on it) and its **node name**, stable across restarts: ``VIGIL_NODE_NAME`` from
the environment the node was started with, else the host name. The name is what the store
keeps (``segments.node``) and what media actors are named by. The node's data dir
(recordings, snapshots) is ``VIGIL_NODE_DATA_DIR`` from that environment, else the configured
``data_dir``. All actors live in the Ray namespace ``NAMESPACE``.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

NAMESPACE = "vigil"
# The custom resource an operator sets per node (``ray start --resources``) to say how many
# cameras it takes; every camera actor asks for one unit.
CAMERA_SLOTS = "vigil_camera_slots"
NODE_DATA_DIR_ENV = "VIGIL_NODE_DATA_DIR"
NODE_NAME_ENV = "VIGIL_NODE_NAME"


def camera_actor_name(camera: str) -> str:
    return f"vigil-camera:{camera}"


def detector_actor_name(node_id: str) -> str:
    return f"vigil-detector:{node_id}"


def writer_actor_name(node_id: str) -> str:
    return f"vigil-writer:{node_id}"


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
