"""What the head's ``vigil serve`` adds in cluster mode, besides the camera backend: a media
actor on every node (each serving and retaining its own node's recordings), kept on nodes
that join later, and the API's view of media and status across the cluster.

The ``RayBackend`` (started by the ``Supervisor``) connects to the cluster first; ``start``
here needs that connection.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from pathlib import Path
from typing import Any

from vigil.cluster import media_actor_name, node_data_dir, node_name
from vigil.cluster.media import ClusterMedia, MediaCache, ensure_media_actors
from vigil.cluster.retention import NodeRetention
from vigil.cluster.status import ClusterStatus, gather_status
from vigil.config.models import VigilConfig

log = logging.getLogger(__name__)

#: Seconds between looks for nodes that joined (and need a media actor).
NODE_WATCH_S = 15.0


def node_retention(config: VigilConfig, database_url: str) -> NodeRetention:
    """The retention every node runs on its own files: the configuration's policy, each
    camera's snapshot age limit, the server's interval."""
    from vigil.runtime.serve import retention_policy

    snapshot_max_age = {
        name: age for name in config.cameras
        if (age := config.camera(name).record.max_age) is not None
    }  # fmt: skip
    return NodeRetention(database_url, retention_policy(config), snapshot_max_age,
                         config.server.retention_interval)  # fmt: skip


class ClusterHead:
    """Media actors on every node while the head runs; ``media`` and ``status`` for the API.

    On an API replica (``cluster.replica``) only ``media`` and ``status``: the media actors
    are the head's (found by name when a recording is asked for), never started or ended
    here."""

    def __init__(self, config: VigilConfig, database_url: str, *, replica: bool = False) -> None:
        self.config = config
        #: Not supervising: a replica, or a head that found the supervision lock held.
        self.replica = replica or config.cluster.replica
        self.retention = node_retention(config, database_url)
        self.data_dir = node_data_dir(Path(config.data_dir))
        self.media = ClusterMedia(self.data_dir, node_name(),
                                  MediaCache(self.data_dir / "cache" / "media"))  # fmt: skip
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, *, wait: bool = True) -> None:
        """Media actors on the nodes there are now, and a watch for nodes that join;
        ``wait`` False: the first ones are started by the watch too (a take-over: the lock
        watch must not wait for them)."""
        if self.replica:
            return
        self._end_left()
        if wait:
            self._ensure()
        self._thread = threading.Thread(target=self._watch, args=(not wait,),
                                        name="cluster-nodes", daemon=True)  # fmt: skip
        self._thread.start()

    def promote(self) -> None:
        """This replica supervises now (``vigil.cluster.leader``): the media actors are its
        to keep (those of the head that died are ended and made again, with this
        process's retention)."""
        if not self.replica:
            return
        self.replica = False
        self._stop = threading.Event()
        self.start(wait=False)

    def demote(self) -> None:
        """This process no longer supervises (it lost the supervision lock): the watch for
        new nodes ends; the media actors stay (they serve every API server, and the next
        supervisor makes its own)."""
        if self.replica:
            return
        self.replica = True
        self._end_watch()

    def _end_watch(self) -> None:
        """Stop the watch and wait for a round in progress (it asks the nodes: it must be
        over before this process disconnects from the cluster, or its Ray calls abort the
        process); it ends at the next node."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2 * self.config.cluster.call_timeout + 5)
            self._thread = None

    def status(self) -> ClusterStatus:
        status = gather_status(timeout_s=self.config.cluster.call_timeout)
        return dataclasses.replace(status, supervising=not self.replica)

    def stop(self) -> None:
        """End the watch and the media actors (detached: they would outlive the head)."""
        self._end_watch()
        if self.replica:
            return  # the head's media actors serve the head and the other replicas on
        import ray

        if not ray.is_initialized():
            return
        from vigil.cluster.backend import _named_actors

        for actor in _named_actors(media_actor_name("")):
            with contextlib.suppress(Exception):  # Ray's boundary: gone meanwhile
                ray.kill(actor)

    @staticmethod
    def _end_left(timeout_s: float = 30.0) -> None:
        """End the media actors a head that died left (detached, they run on, found by
        name): they hold that head's retention (its database URL and policy) and data dir,
        so this head's must be made instead. Waits (up to ``timeout_s``) for their names to
        be free, or the new ones would find the dying ones."""
        import ray

        from vigil.cluster.backend import named_actors

        left = named_actors(media_actor_name(""))
        for name, actor in left:
            log.warning("ending %s, left by an earlier head", name)
            with contextlib.suppress(Exception):  # Ray's boundary: gone meanwhile
                ray.kill(actor, no_restart=True)
        names = {name for name, _actor in left}
        deadline = time.monotonic() + timeout_s
        while names and time.monotonic() < deadline:
            time.sleep(0.2)
            names &= {name for name, _actor in named_actors(media_actor_name(""))}

    def _ensure(self) -> None:
        try:
            handles = ensure_media_actors(self.config.data_dir, self.retention,
                                          stopped=self._stop.is_set)  # fmt: skip
        except Exception:  # a node lost meanwhile must not end the watch
            log.exception("media actors not (all) started; trying again in %.0f s",
                          NODE_WATCH_S)  # fmt: skip
            return
        log.debug("media actors on %s", sorted(handles))

    def _watch(self, now: bool = False) -> None:
        if now:
            self._ensure()
        while not self._stop.wait(NODE_WATCH_S):
            self._ensure()


def cluster_head(config: VigilConfig, db: Any, *, replica: bool = False) -> ClusterHead:
    return ClusterHead(config, str(db.url), replica=replica)
