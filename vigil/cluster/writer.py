"""One store writer actor per node: the node's cameras' segments, events and counts, in batches.

::

    node N: camera actor ─┐  segments([seg]) / publish([event]) / count(hits)
            camera actor ─┼──────────────────────────────────►  StoreWriter "vigil-writer:…"
            camera actor ─┘   (N's object store, in order)       buffer ─(every flush_s)─►
                                                  add_many · publish_many · count ─► PostgreSQL

A camera writing its own rows costs one transaction per lifecycle change and one database
connection per camera: at city scale the connection count breaks first (PostgreSQL takes a
few hundred), long before its CPU (``docs/cluster.md``, City-scale event path). The writer
gathers what every camera of its node emits for ``flush_s`` and writes it as one batch
(``StoreEventSink.publish_many``: a few multi-row upserts in one transaction) over one
connection per node. Snapshots are written to the node's data dir there, as before.

Segments (``NodeSegments``, a camera recorder's ``on_segment``) are written as
``index_segment`` writes one on a single host: the camera computes ``has_motion`` and the
motion spans that flag its earlier segments (its recorder's motion lives there), the writer
adds the rows (``SegmentRepo.add_many``) and flags those spans, all before the batch's events,
so an event that ended in the same batch flags the segments that hold it. A row refused (its
node and path hold another segment) comes back to the camera, whose recorder then reports
``failed`` as its segmenter does for a segment the store did not take; a database that is
down queues the batch with the events' (retried in order). The camera's ``segments`` call
waits in its own concurrency group (``SEGMENT_GROUP``) for the flush that wrote it, so it
never holds up the calls of the other cameras; the camera itself does not wait for it.

Order: a Ray actor with one call at a time runs the calls of one caller in the order they
were made, so a camera's start, updates and end arrive in order; a batch keeps that order.
A database that is down queues the batches in the sink's ``WriteBacklog`` (retried in order).
What is lost with a node: at most the last ``flush_s`` of its changes, not yet committed; the
camera's restart elsewhere closes its events left open (``close_dangling``).

The actor is pinned to its node (not soft), named after the Ray node id and ``writer_key``
(a digest of the database URL and data dir: a writer left by a head that died is reused
only by a head of the same database), detached (it must outlive the camera that created
it, which may move) and created by the first camera that needs it (``get_if_exists``). The
head flushes and ends it at stop.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vigil.cluster import actor_key, current_namespace, node_data_dir, node_name, writer_actor_name
from vigil.types import Event, RuleEvent

if TYPE_CHECKING:
    from vigil.record import SegmentInfo
    from vigil.record.motion import MotionSpans
    from vigil.record.previews import PreviewSet
    from vigil.store.repo import SegmentSpec

log = logging.getLogger(__name__)

#: Seconds of changes gathered into one batch.
FLUSH_S = 0.5

#: The writer's concurrency group for ``segments`` calls (each waits for its flush) and how
#: many may wait at once: every camera of a node has one in flight at most, now and then.
SEGMENT_GROUP = "segments"
SEGMENT_CALLS = 256

#: Seconds a ``segments`` call waits for the flush that writes it.
SEGMENT_WAIT_S = 60.0

#: Flushes whose refusals are kept for their callers to read.
KEEP_GENERATIONS = 100


@dataclass(frozen=True, slots=True)
class SegmentWrite:
    """One finished segment for the node's writer: its row and, as ``index_segment`` does,
    the spans of motion reported since the camera's previous segment (``motion``), which
    flag that camera's earlier segments."""

    spec: SegmentSpec
    motion: tuple[tuple[float, float], ...] = ()


@dataclass(frozen=True, slots=True)
class SegmentResult:
    """What became of one ``SegmentWrite``: ``refused`` says why its row was not stored
    (None: stored, or queued while the database is down)."""

    path: str
    refused: str | None = None


class StoreWriter:
    """The node's batched writer (a Ray actor; see the module docstring)."""

    def __init__(self, database_url: str, data_dir: str, flush_s: float = FLUSH_S) -> None:
        from vigil.store import Database
        from vigil.store.sink import StoreEventSink

        logging.basicConfig(level=logging.WARNING)  # a Ray worker's root logger has none
        self.node = node_name()
        self.key = writer_key(database_url, data_dir)
        self.db = Database(database_url)
        self.sink = StoreEventSink(self.db, node_data_dir(Path(data_dir)), node=self.node)
        self.flush_s = flush_s
        self._lock = threading.Lock()
        self._events: list[Event] = []
        self._hits: list[RuleEvent] = []
        self._segments: list[SegmentWrite] = []
        self._written = 0
        self._batches = 0
        self._segment_rows = 0
        self._segment_batches = 0
        # ``segments`` callers wait for the flush of their generation (``_flushed`` passes it).
        self._done = threading.Condition(self._lock)
        self._generation = 0
        self._flushed = 0
        #: Why rows were refused, by the generation that wrote them: (camera, path) -> why.
        self._refused: dict[int, dict[tuple[str, str], str]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="store-writer", daemon=True)
        self._thread.start()

    def publish(self, events: Sequence[Event]) -> None:
        with self._lock:
            self._events.extend(events)

    def count(self, hits: Sequence[RuleEvent]) -> None:
        with self._lock:
            self._hits.extend(hits)

    def segments(self, writes: Sequence[SegmentWrite]) -> list[SegmentResult]:
        """Gather finished segments for the next flush and wait for it (called in the
        ``SEGMENT_GROUP`` group); what became of each (see ``SegmentResult``)."""
        with self._lock:
            self._segments.extend(writes)
            generation = self._generation
            self._done.wait_for(lambda: self._flushed > generation, SEGMENT_WAIT_S)
            refused = self._refused.get(generation, {})
            return [SegmentResult(w.spec.path, refused.get((w.spec.camera, w.spec.path)))
                    for w in writes]  # fmt: skip

    def flush(self) -> int:
        """Write what is gathered now (segments first, so an event that ended in the same
        batch flags them); returns the number of event changes written."""
        with self._lock:
            events, self._events = self._events, []
            hits, self._hits = self._hits, []
            segments, self._segments = self._segments, []
            generation = self._generation
            self._generation += 1
        try:
            self._write_segments(segments, generation)
        finally:
            with self._lock:
                self._flushed = generation + 1
                # Long since answered (a write the backlog ran late answers nobody).
                for old in [g for g in self._refused if g < generation - KEEP_GENERATIONS]:
                    del self._refused[old]
                self._done.notify_all()
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

    def _write_segments(self, writes: list[SegmentWrite], generation: int) -> None:
        """Add the rows and flag the motion spans in one transaction (queued in the sink's
        backlog, after the event writes before it, while the database is down)."""
        if not writes:
            return
        self._segment_batches += 1
        self._segment_rows += len(writes)
        try:
            self.sink.backlog.submit(lambda: self._add_segments(writes, generation),
                                     f"{len(writes)} segment(s)")  # fmt: skip
        except Exception as exc:  # a bad batch (not an outage: that queues) must not end it
            log.exception("node %s: %d segment(s) not stored", self.node, len(writes))
            with self._lock:
                refused = self._refused.setdefault(generation, {})
                for w in writes:
                    refused[(w.spec.camera, w.spec.path)] = f"{type(exc).__name__}: {exc}"

    def _add_segments(self, writes: list[SegmentWrite], generation: int) -> None:
        from vigil.store.repo import SegmentRepo

        with self.db.session(immediate=True) as session:
            repo = SegmentRepo(session)
            refused = repo.add_many([w.spec for w in writes])
            for w in writes:
                for start, end in w.motion:
                    repo.mark_motion(w.spec.camera, start, min(end, w.spec.start))
        why = {(s.camera, s.path): f"segment {s.path!r} is already recorded on node "
               f"{s.node or '(none)'} by another segment" for s in refused}  # fmt: skip
        for (camera, _path), text in why.items():
            log.error("node %s: %s: %s; its file stays on disk", self.node, camera, text)
        if why:
            with self._lock:
                self._refused.setdefault(generation, {}).update(why)

    def stats(self) -> dict[str, Any]:
        backlog = self.sink.backlog.stats
        return {"node": self.node, "key": self.key, "batches": self._batches,
                "events": self._written,
                "segment_batches": self._segment_batches, "segments": self._segment_rows,
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


def writer_key(database_url: str, data_dir: str) -> str:
    """What a node's writer must have been made with to be reused (see ``actor_key``)."""
    return actor_key("writer", database_url, data_dir, repr(FLUSH_S))


def node_writer_actor(database_url: str, data_dir: str) -> Any:
    """This node's writer actor: the running one, or a new one pinned here (call it from a
    Ray worker on the node, e.g. a camera actor)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    node_id = ray.get_runtime_context().get_node_id()
    # The segments' group is the class's (Ray takes concurrency groups there only).
    remote: Any = ray.remote  # its stubs do not know ``concurrency_groups``
    actor_class: Any = remote(concurrency_groups={SEGMENT_GROUP: SEGMENT_CALLS})(StoreWriter)
    return actor_class.options(
        name=writer_actor_name(node_id, writer_key(database_url, data_dir)),
        namespace=current_namespace(), get_if_exists=True,
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

    def segment(self, write: SegmentWrite) -> Any:
        """Hand one finished segment to the writer without waiting: the ``ObjectRef`` of its
        ``[SegmentResult]``, ready once the flush that wrote it is done."""
        with self._lock:
            if self._actor is None:
                self._actor = node_writer_actor(self.database_url, self.data_dir)
            return self._actor.segments.options(concurrency_group=SEGMENT_GROUP).remote([write])

    def lost(self) -> None:
        """The writer died: the next call gets or creates it again."""
        with self._lock:
            self._actor = None

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


def segment_write(
    root: Path, info: SegmentInfo, motion: MotionSpans | None, node: str,
    previews: PreviewSet | None = None,
) -> SegmentWrite:  # fmt: skip
    """The row of a finished segment of ``root`` (the node's data dir), with its preview
    thumbnails, and the motion spans to flag, as ``index_segment`` makes them;
    ``StorageError`` for a segment the store would refuse (the segmenter keeps it and
    reports the recording as failing)."""
    from vigil.store.repo import SegmentSpec, check_segment

    path = info.path.resolve().relative_to(root.resolve()).as_posix()
    moved = motion is not None and motion.any(info.start, info.end)
    spec = SegmentSpec(info.camera, path, info.start, info.end, info.size, info.sha256,
                       has_motion=moved, node=node,
                       previews=previews.column() if previews else None,
                       preview_bytes=previews.size if previews else 0)  # fmt: skip
    check_segment(spec)
    # Analysis runs behind the recording: motion reported since the previous segment was
    # indexed may belong to it.
    spans = () if motion is None else tuple(motion.overlapping(info.start - 60.0, info.start))
    return SegmentWrite(spec, spans)


class NodeSegments:
    """A camera recorder's ``on_segment`` through the node's writer (see the module
    docstring): the recorder never waits for the database, and learns of a refused row
    from ``status`` (a drain asks it four times a second).

    ``motion``: the recorder's motion spans, set once the recorder exists. A writer that
    died before answering gets the segment again (a row it stored already is not stored
    twice: ``add_many`` skips it).
    """

    def __init__(self, store: NodeStore, root: Path, node: str) -> None:
        self.store, self.root, self.node = store, root, node
        self.motion: MotionSpans | None = None
        #: Saves a segment's preview thumbnails (``PreviewTaker.save``), set with the recorder.
        self.previews: Callable[[SegmentInfo], PreviewSet | None] | None = None
        self._lock = threading.Lock()
        self._pending: list[tuple[Any, SegmentWrite]] = []
        #: Why the last segment answered was not stored (None once one is).
        self.error: str | None = None
        self.refused = 0

    def __call__(self, info: SegmentInfo) -> None:
        previews = None if self.previews is None else self.previews(info)
        write = segment_write(self.root, info, self.motion, self.node, previews)
        self._send(write)
        self.poll()

    def _send(self, write: SegmentWrite) -> None:
        ref = self.store.segment(write)
        with self._lock:
            self._pending.append((ref, write))

    def poll(self, timeout: float = 0.0) -> None:
        """Take the answers that are there (waiting up to ``timeout`` s for all of them)."""
        import ray
        from ray.exceptions import RayActorError

        with self._lock:
            pending = list(self._pending)
        if not pending:
            return
        refs = [ref for ref, _ in pending]
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout)
        done = set(ready)
        for ref, write in pending:
            if ref not in done:
                continue
            with self._lock:
                if (ref, write) not in self._pending:
                    continue  # another thread's poll took this answer
                self._pending.remove((ref, write))
            try:
                results: list[SegmentResult] = ray.get(ref)
            except RayActorError:
                log.error("%s: the node's store writer is gone before segment %s was "
                          "stored; handing it to a new one", write.spec.camera,
                          write.spec.path)  # fmt: skip
                self.store.lost()
                self._resend(write)
                continue
            for result in results:
                self._answer(write, result)

    def _resend(self, write: SegmentWrite) -> None:
        try:
            self._send(write)
        except Exception as exc:  # no writer can be made now: the row is lost, the file stays
            self._set_error(write, f"the node's store writer cannot be reached ({exc})")

    def _answer(self, write: SegmentWrite, result: SegmentResult) -> None:
        if result.refused is None:
            with self._lock:
                self.error = None
            return
        self._set_error(write, result.refused)

    def _set_error(self, write: SegmentWrite, why: str) -> None:
        name = Path(write.spec.path).name
        with self._lock:
            self.refused += 1
            self.error = f"segment {name} not indexed: {why}"

    def status(self, state: Any, error: str | None) -> tuple[Any, str | None]:
        """The recorder's ``(state, error)``, failing while the last answered segment was
        refused (as ``Recorder.status`` does for one the store did not take)."""
        self.poll()
        with self._lock:
            refused = self.error
        if error is None and refused is not None and state != "stopped":
            return "failed", f"recording failed: {refused}"
        return state, error

    def close(self, timeout: float) -> None:
        """Wait up to ``timeout`` s for the segments in flight to be written."""
        self.poll(timeout)
