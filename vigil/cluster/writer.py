"""One store writer actor per node: the node's cameras' events and counts, written in batches.

::

    node N: camera actor ─┐  publish([event]) / count(hits)    StoreWriter "vigil-writer:<node id>"
            camera actor ─┼──────────────────────────────────►  buffer ─(every flush_s)─►
            camera actor ─┘   (N's object store, in order)       publish_many · count ─► PostgreSQL

A camera writing its own rows costs one transaction per lifecycle change and one database
connection per camera: at city scale the connection count breaks first (PostgreSQL takes a
few hundred), long before its CPU (``docs/cluster.md``, City-scale event path). The writer
gathers what every camera of its node emits for ``flush_s`` and writes it as one batch
(``StoreEventSink.publish_many``: a few multi-row upserts in one transaction) over one
connection per node. Snapshots are written to the node's data dir there, as before.

Order: a Ray actor with one call at a time runs the calls of one caller in the order they
were made, so a camera's start, updates and end arrive in order; a batch keeps that order.
A database that is down queues the batches in the sink's ``WriteBacklog`` (retried in order).
What is lost with a node: at most the last ``flush_s`` of its changes, not yet committed; the
camera's restart elsewhere closes its events left open (``close_dangling``).

The actor is pinned to its node (not soft), named after the Ray node id, detached (it must
outlive the camera that created it, which may move) and created by the first camera that
needs it (``get_if_exists``). The head flushes and ends it at stop.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vigil.cluster import NAMESPACE, node_data_dir, node_name, writer_actor_name
from vigil.types import Event, RuleEvent

log = logging.getLogger(__name__)

#: Seconds of changes gathered into one batch.
FLUSH_S = 0.5


class StoreWriter:
    """The node's batched writer (a Ray actor; see the module docstring)."""

    def __init__(self, database_url: str, data_dir: str, flush_s: float = FLUSH_S) -> None:
        from vigil.store import Database
        from vigil.store.sink import StoreEventSink

        logging.basicConfig(level=logging.WARNING)  # a Ray worker's root logger has none
        self.node = node_name()
        self.db = Database(database_url)
        self.sink = StoreEventSink(self.db, node_data_dir(Path(data_dir)), node=self.node)
        self.flush_s = flush_s
        self._lock = threading.Lock()
        self._events: list[Event] = []
        self._hits: list[RuleEvent] = []
        self._written = 0
        self._batches = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="store-writer", daemon=True)
        self._thread.start()

    def publish(self, events: Sequence[Event]) -> None:
        with self._lock:
            self._events.extend(events)

    def count(self, hits: Sequence[RuleEvent]) -> None:
        with self._lock:
            self._hits.extend(hits)

    def flush(self) -> int:
        """Write what is gathered now; returns the number of event changes written."""
        with self._lock:
            events, self._events = self._events, []
            hits, self._hits = self._hits, []
        if events:
            try:
                self.sink.publish_many(events)
            except Exception:  # a bad batch (not an outage: that queues) must not end the loop
                log.exception("node %s: %d event change(s) not stored", self.node, len(events))
        if hits:
            try:
                self.sink.count(hits)
            except Exception:
                log.exception("node %s: %d count(s) not stored", self.node, len(hits))
        if events or hits:
            self._batches += 1
            self._written += len(events)
        return len(events)

    def stats(self) -> dict[str, Any]:
        backlog = self.sink.backlog.stats
        return {"node": self.node, "batches": self._batches, "events": self._written,
                "queued": backlog.queued, "dropped": backlog.dropped}  # fmt: skip

    def close(self) -> None:
        """Write what is left, then release the database."""
        self._stop.set()
        self._thread.join(5)
        self.flush()
        self.sink.close()
        self.db.close()

    def _loop(self) -> None:
        while not self._stop.wait(self.flush_s):
            self.flush()


def node_writer_actor(database_url: str, data_dir: str) -> Any:
    """This node's writer actor: the running one, or a new one pinned here (call it from a
    Ray worker on the node, e.g. a camera actor)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    node_id = ray.get_runtime_context().get_node_id()
    actor_class: Any = ray.remote(StoreWriter)
    return actor_class.options(
        name=writer_actor_name(node_id), namespace=NAMESPACE, get_if_exists=True,
        lifetime="detached", max_concurrency=1, num_cpus=0, max_restarts=0,
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
    ).remote(database_url, data_dir)  # fmt: skip


class NodeStore:
    """The node's writer as a camera actor's store (``publish``/``count``/``close``).

    Calls do not wait for the write (the camera never waits on the database); a call that
    failed because the writer is gone (its process died) is logged, with what it carried,
    and the next call gets or creates the writer again.
    """

    def __init__(self, database_url: str, data_dir: str) -> None:
        self.database_url, self.data_dir = database_url, data_dir
        self._actor: Any = None
        self._pending: list[Any] = []
        self._lock = threading.Lock()

    def publish(self, event: Event) -> None:
        self._call(lambda actor: actor.publish.remote([event]), f"event {event.id}")

    def count(self, hits: Sequence[RuleEvent]) -> None:
        if hits:
            found = list(hits)
            self._call(lambda actor: actor.count.remote(found), f"{len(found)} count(s)")

    def close(self) -> None:
        """Wait (briefly) for the calls in flight to reach the writer."""
        import ray

        with self._lock:
            pending, self._pending = self._pending, []
        if pending:
            ray.wait(pending, num_returns=len(pending), timeout=10)

    def _call(self, send: Any, what: str) -> None:
        import ray
        from ray.exceptions import RayActorError

        with self._lock:
            if self._actor is None:
                self._actor = node_writer_actor(self.database_url, self.data_dir)
            self._pending.append(send(self._actor))
            done, self._pending = ray.wait(self._pending, num_returns=len(self._pending),
                                           timeout=0)  # fmt: skip
            for ref in done:
                try:
                    ray.get(ref)
                except RayActorError:
                    log.error("the node's store writer is gone; %s and the calls before it "
                              "may be lost; starting it again", what)  # fmt: skip
                    self._actor = None
