"""Recordings across nodes: each node's ``MediaActor`` and the API's ``ClusterMedia``.

Recordings and snapshots stay on the node that wrote them, under that node's data dir, with
the node's name on the row (``segments.node``, ``events.node``). The API, on the head, finds a
row's file through ``ClusterMedia`` (a ``vigil.api.media.MediaResolver``):

* a row of no node, or of the API's own node: the local file, as on a single host;
* a row of another node: fetched from that node's ``MediaActor`` in chunks (several in
  flight) into a bounded cache on the API node, named by the row's SHA-256 and kept only when
  the bytes match it, evicted least recently used first beyond ``max_bytes``; a second read
  is a cache hit, with no network at all;
* that node down, or its actor gone: ``NodeUnavailableError`` naming the node (503).

``SharedMountMedia`` is the other resolver: for sites that mount every node's data dir on the
API node (``<mount>/<node name>/``), it reads there with no copy. Routes never know which.

A ``MediaActor`` is pinned to its node (``NodeAffinitySchedulingStrategy(soft=False)``),
detached, named ``media_actor_name(node_name())`` in its deployment's namespace; it reads
only files of its node's data dir, with the API's confinement rule
(``vigil.paths.confined_media_path``: no path outside, no symlink escape), and runs that
node's retention (``vigil.cluster.retention``) when given a ``NodeRetention``.
``ensure_media_actors()`` on the head starts one on every alive node that has none; call it
again when nodes join.

How the head's ``vigil serve`` (``server.backend: ray``) wires it::

    ensure_media_actors(config.data_dir, NodeRetention(database_url, retention_policy(config),
                        {cam: max_age per camera}, config.server.retention_interval))
    create_app(..., media_resolver=ClusterMedia(data_dir, node_name(),
               MediaCache(data_dir / "cache" / "media")), cluster_status=gather_status)

and calls ``ensure_media_actors`` again when nodes join. The head's own retention then covers
only rows without a node (``NodeCatalog(db, data_dir, None)``): every node does its own.

Ray is imported only inside functions: the single-host product never loads it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from vigil.cluster import actor_names, current_namespace, media_actor_name, node_data_dir, node_name
from vigil.cluster.retention import NodeRetention, NodeRetentionResult, run_node_retention
from vigil.errors import MediaNotFoundError, NodeUnavailableError, StorageError
from vigil.paths import check_relative, confined_media_path, sha256_file
from vigil.record.quarantine import QUARANTINE, merged_usage, quarantine_usage

log = logging.getLogger(__name__)

#: Bytes per read call: large enough that the per-call overhead of Ray (a fraction of a
#: millisecond) is small against the copy, small enough for the object store of a small node.
CHUNK_BYTES = 4 * 1024 * 1024
#: Read calls in flight per fetch: hides the round trip behind the copy of the previous chunk.
IN_FLIGHT = 4
#: Calls the actor serves at once (fetches of several API requests, plus retention).
ACTOR_CONCURRENCY = 8
DEFAULT_CACHE_BYTES = 2 * 1024**3
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


# -- on each node -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FileStat:
    size: int
    sha256: str | None


class MediaActor:
    """One node's media: reads of its data dir's media folders, and its retention.

    Run as a Ray actor (``ensure_media_actors``); a plain object in unit use. ``data_dir``:
    the configured data dir, which the node's ``VIGIL_NODE_DATA_DIR`` overrides.
    """

    def __init__(self, data_dir: str, retention: NodeRetention | None = None) -> None:
        self.node = node_name()
        self.root = node_data_dir(Path(data_dir))
        self.retention = retention
        self.last_retention: NodeRetentionResult | None = None
        self.retention_error: str | None = None
        self._db: Any = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        if retention is not None and retention.interval_s > 0:
            threading.Thread(target=self._retention_loop, name="node-retention",
                             daemon=True).start()  # fmt: skip

    def identity(self) -> dict[str, str]:
        """This node's name, Ray node id and data dir."""
        import ray

        return {"node": self.node, "node_id": ray.get_runtime_context().get_node_id(),
                "data_dir": str(self.root)}  # fmt: skip

    def stat(self, relative: str, folder: str, digest: bool = False) -> FileStat:
        """Size (and, with ``digest``, SHA-256) of the file a row names; ``MediaNotFoundError``
        for a missing file or one outside ``folder`` of this node's data dir."""
        path = confined_media_path(self.root, relative, folder)
        return FileStat(path.stat().st_size, sha256_file(path) if digest else None)

    def read(self, relative: str, folder: str, offset: int, length: int) -> bytes:
        """``length`` bytes (fewer at the end) of the file from ``offset``."""
        path = confined_media_path(self.root, relative, folder)
        with path.open("rb") as stream:
            stream.seek(max(0, offset))
            return stream.read(max(0, min(length, CHUNK_BYTES * 4)))

    def quarantine(self) -> dict[str, tuple[int, int]]:
        """Files and bytes in this node's quarantine, per camera."""
        return quarantine_usage(self.root / QUARANTINE)

    def run_retention(self, now: float | None = None) -> NodeRetentionResult:
        """Apply retention to this node's rows and files now (also run every interval)."""
        if self.retention is None:
            raise StorageError(f"node {self.node!r}: its media actor was started without "
                               "retention settings")  # fmt: skip
        from vigil.store import Database

        with self._lock:  # one run at a time: the loop and a call may meet
            if self._stop.is_set():
                raise StorageError(f"node {self.node!r}: its media actor is stopping")
            if self._db is None:
                self._db = Database(self.retention.database_url)
            result = run_node_retention(self._db, self.root, self.node, self.retention,
                                        time.time() if now is None else now)  # fmt: skip
            self.last_retention = result
            return result

    def stop(self) -> None:
        """End the retention loop (after a run in progress) and close the database."""
        self._stop.set()
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _retention_loop(self) -> None:
        assert self.retention is not None
        while not self._stop.wait(self.retention.interval_s):
            try:
                self.run_retention()
                self.retention_error = None
            except Exception as exc:  # a failed run must not end the loop: retry next time
                self.retention_error = str(exc)
                log.exception("node %s: retention failed; retrying in %.0f s", self.node,
                              self.retention.interval_s)  # fmt: skip


def _identify() -> str:
    return node_name()


@cache
def _remote_classes() -> tuple[Any, Any]:
    import ray

    remote: Any = ray.remote  # its overloads do not know actor options such as max_concurrency
    return (remote(num_cpus=0, max_concurrency=ACTOR_CONCURRENCY)(MediaActor),
            remote(num_cpus=0)(_identify))  # fmt: skip


def ensure_media_actors(data_dir: Path | str, retention: NodeRetention | None = None, *,
                        timeout_s: float = 60.0,
                        stopped: Callable[[], bool] | None = None) -> dict[str, Any]:  # fmt: skip
    """A media actor on every alive node of the connected cluster (one already running is
    kept: ``get_if_exists``); returns node name → actor handle. Safe to call again, e.g.
    when nodes join. A node that does not answer within ``timeout_s`` is logged and skipped
    (the next call tries again). ``stopped``: asked before each node; True ends the round
    (the head is stopping, and will disconnect from the cluster)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    actor_class, identify = _remote_classes()
    handles: dict[str, Any] = {}
    nodes: list[dict[str, Any]] = ray.nodes()  # type: ignore[no-untyped-call]
    for node in nodes:
        if stopped is not None and stopped():
            break
        if not node.get("Alive"):
            continue
        node_id = str(node["NodeID"])
        pinned = NodeAffinitySchedulingStrategy(node_id, soft=False)
        try:
            # The node's name lives in its own environment: ask the node.
            name = str(ray.get(identify.options(scheduling_strategy=pinned).remote(),
                               timeout=timeout_s))  # fmt: skip
            handle = actor_class.options(
                name=media_actor_name(name), namespace=current_namespace(), lifetime="detached",
                get_if_exists=True, scheduling_strategy=pinned,
            ).remote(str(data_dir), retention)  # fmt: skip
            where = ray.get(handle.identity.remote(), timeout=timeout_s)
        except Exception as exc:  # Ray's boundary: a node lost meanwhile, or too slow
            log.warning("node %s: no media actor started (%s); trying again later", node_id, exc)
            continue
        if where["node_id"] != node_id:
            log.error("two nodes are named %r (%s and %s): give each its own VIGIL_NODE_NAME; "
                      "the recordings of the second cannot be served", name, where["node_id"],
                      node_id)  # fmt: skip
            continue
        handles[name] = handle
    return handles


# -- on the API node --------------------------------------------------------------------------

#: How long the API waits for the nodes' quarantine figures (``ClusterMedia.quarantine``),
#: and how long it keeps them: health checks and scrapes ask often, the figures change
#: only when a segment is given up or retention runs.
QUARANTINE_ASK_S = 3.0
QUARANTINE_KEEP_S = 15.0


class MediaCache:
    """Verified copies of other nodes' files: ``<root>/<sha[:2]>/<sha>``, at most about
    ``max_bytes`` (least recently served first out; the file being served always stays)."""

    def __init__(self, root: Path, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.root, self.max_bytes = root, max_bytes
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def path_of(self, sha256: str) -> Path:
        if not _SHA256.match(sha256):
            raise MediaNotFoundError("media file not found (no valid digest on its row)")
        return self.root / sha256[:2] / sha256

    def get(self, sha256: str) -> Path | None:
        path = self.path_of(sha256)
        try:
            os.utime(path)  # served: newest in the least-recently-served order
        except FileNotFoundError:
            return None
        return path

    def lock(self, sha256: str) -> threading.Lock:
        """One lock per file, so that two requests do not fetch the same file at once."""
        with self._guard:
            return self._locks.setdefault(sha256, threading.Lock())

    def put(self, sha256: str, write: Callable[[Any], str]) -> Path:
        """Store the file ``write(stream)`` produces (it returns the SHA-256 of what it wrote)
        when it matches ``sha256``; ``StorageError`` (nothing kept) when it does not."""
        path = self.path_of(sha256)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".fetch-")
        try:
            with os.fdopen(fd, "wb") as stream:
                got = write(stream)
            if got != sha256:
                raise StorageError(f"the fetched copy's SHA-256 {got[:12]}… does not match the "
                                   f"row's {sha256[:12]}…: the file on its node changed or is "
                                   "damaged; it is not served")  # fmt: skip
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.prune(keep=path)
        return path

    def prune(self, *, keep: Path) -> list[Path]:
        """Delete the least recently served copies until the cache holds at most
        ``max_bytes``; never ``keep``. Returns the files deleted."""
        files = []
        for file in self.root.glob("*/*"):
            if file.name.startswith(".fetch-"):
                continue
            try:
                info = file.stat()
            except FileNotFoundError:
                continue
            files.append((info.st_mtime, info.st_size, file))
        total = sum(size for _, size, _ in files)
        deleted = []
        for _, size, file in sorted(files):
            if total <= self.max_bytes:
                break
            if file == keep:
                continue
            file.unlink(missing_ok=True)
            total -= size
            deleted.append(file)
        return deleted

    def size(self) -> int:
        return sum(f.stat().st_size for f in self.root.glob("*/*") if f.is_file())


class _LocalFirst:
    """Rows of no node or of ``local_node`` are read from ``data_dir``, as on one host."""

    def __init__(self, data_dir: Path, local_node: str) -> None:
        self.data_dir, self.local_node = data_dir, local_node

    def is_local(self, node: str | None) -> bool:
        return node is None or node == self.local_node

    def check(self, node: str | None, relative: str, folder: str) -> None:
        if self.is_local(node):
            confined_media_path(self.data_dir, relative, folder)
        else:  # the file is elsewhere: what can be checked without it
            check_relative(relative, folder)


class ClusterMedia(_LocalFirst):
    """The API's resolver on a cluster without shared storage (see the module docstring).

    ``timeout_s``: how long one call to a media actor may take before its node counts as
    unavailable. Needs a process connected to the cluster (``ray.init``).
    """

    def __init__(self, data_dir: Path, local_node: str, cache: MediaCache, *,
                 timeout_s: float = 30.0) -> None:  # fmt: skip
        super().__init__(data_dir, local_node)
        self.cache, self.timeout_s = cache, timeout_s
        self._handles: dict[str, Any] = {}
        self._guard = threading.Lock()
        self._quarantine: tuple[float, dict[str, tuple[int, int]]] | None = None

    def path(self, node: str | None, relative: str, folder: str, sha256: str | None) -> Path:
        if self.is_local(node):
            return confined_media_path(self.data_dir, relative, folder)
        assert node is not None
        check_relative(relative, folder)
        if sha256 is None:  # an old row without a digest: ask the node for it
            sha256 = self._stat(node, relative, folder, digest=True).sha256 or ""
        found = self.cache.get(sha256)
        if found is not None:
            return found
        with self.cache.lock(sha256):
            found = self.cache.get(sha256)  # fetched by the request we waited for
            if found is not None:
                return found
            return self.cache.put(sha256, lambda out: self.fetch(node, relative, folder, out))

    def fetch(self, node: str, relative: str, folder: str, out: Any) -> str:
        """Copy the file from ``node``'s media actor into the stream ``out``, ``IN_FLIGHT``
        chunks at a time; returns the SHA-256 of the bytes written."""
        size = self._stat(node, relative, folder).size
        actor = self._actor(node)
        digest = hashlib.sha256()
        offsets = deque(range(0, size, CHUNK_BYTES))
        pending: deque[Any] = deque()
        written = 0
        while offsets or pending:
            while offsets and len(pending) < IN_FLIGHT:
                pending.append(actor.read.remote(relative, folder, offsets.popleft(),
                                                 CHUNK_BYTES))  # fmt: skip
            chunk = self._get(node, pending.popleft())
            digest.update(chunk)
            out.write(chunk)
            written += len(chunk)
        if written != size:
            raise StorageError(f"node {node!r}: {relative} changed size while it was fetched")
        return digest.hexdigest()

    def _stat(self, node: str, relative: str, folder: str, *, digest: bool = False) -> FileStat:
        stat: FileStat = self._get(node, self._actor(node).stat.remote(relative, folder, digest))
        return stat

    def _actor(self, node: str) -> Any:
        import ray

        with self._guard:
            handle = self._handles.get(node)
        if handle is not None:
            return handle
        try:
            handle = ray.get_actor(media_actor_name(node), namespace=current_namespace())
        except ValueError:
            raise NodeUnavailableError(node, "no media actor runs there: the node is down or "
                                       "has not joined the cluster") from None  # fmt: skip
        with self._guard:
            self._handles[node] = handle
        return handle

    def quarantine(self) -> dict[str, tuple[int, int]]:
        """This server's quarantine and every other node's, asked of their media actors at
        once (``QUARANTINE_ASK_S`` at most: a node that does not answer is left out) and kept
        ``QUARANTINE_KEEP_S``, since ``/api/health`` and each scrape ask."""
        with self._guard:
            kept = self._quarantine
            if kept is not None and time.monotonic() - kept[0] < QUARANTINE_KEEP_S:
                return kept[1]
        import ray

        local = quarantine_usage(self.data_dir / QUARANTINE)
        refs: list[Any] = []
        for name in actor_names(media_actor_name("")):
            if name != media_actor_name(self.local_node):
                with contextlib.suppress(ValueError):  # ended meanwhile
                    actor = ray.get_actor(name, namespace=current_namespace())
                    refs.append(actor.quarantine.remote())
        ready = ray.wait(refs, num_returns=len(refs), timeout=QUARANTINE_ASK_S)[0] if refs else []
        answers = [local]
        for ref in ready:
            try:
                answers.append(ray.get(ref, timeout=0))
            except Exception:  # its node went down meanwhile: left out, as one that is slow
                continue
        usage = merged_usage(*answers)
        with self._guard:
            self._quarantine = (time.monotonic(), usage)
        return usage

    def _get(self, node: str, ref: Any) -> Any:
        import ray
        from ray.exceptions import GetTimeoutError, RayError

        try:
            return ray.get(ref, timeout=self.timeout_s)
        except MediaNotFoundError:  # the actor's own answer (Ray re-raises it as its cause)
            raise MediaNotFoundError("media file not found") from None
        except GetTimeoutError:
            self._forget(node)
            raise NodeUnavailableError(node, f"no answer within {self.timeout_s:.0f} s") from None
        except RayError as exc:
            self._forget(node)
            raise NodeUnavailableError(node, type(exc).__name__) from exc

    def _forget(self, node: str) -> None:
        # A handle of a dead actor stays dead: look the node's actor up again next time
        # (the node may have come back with a new one).
        with self._guard:
            self._handles.pop(node, None)


class SharedMountMedia(_LocalFirst):
    """The resolver for a declared shared mount: node ``N``'s data dir is visible on the API
    node at ``<mount>/<N>/``, so a file is read where it lies, with no copy. A node whose
    folder is missing under the mount counts as unavailable."""

    def __init__(self, data_dir: Path, local_node: str, mount: Path) -> None:
        super().__init__(data_dir, local_node)
        self.mount = mount

    def quarantine(self) -> dict[str, tuple[int, int]]:
        """This server's quarantine and each mounted node's (``<mount>/<node>/quarantine``)."""
        nodes = [p for p in self.mount.iterdir() if p.is_dir() and p.name != self.local_node] \
            if self.mount.is_dir() else []  # fmt: skip
        return merged_usage(quarantine_usage(self.data_dir / QUARANTINE),
                            *(quarantine_usage(n / QUARANTINE) for n in nodes))  # fmt: skip

    def path(self, node: str | None, relative: str, folder: str, sha256: str | None) -> Path:
        if self.is_local(node):
            return confined_media_path(self.data_dir, relative, folder)
        assert node is not None
        check_relative(node)  # a node name is one plain path part here
        root = self.mount / node
        if "/" in node or not root.is_dir():
            raise NodeUnavailableError(node, f"its data dir is not mounted at {root}")
        return confined_media_path(root, relative, folder)
