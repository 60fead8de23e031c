"""Retention on a cluster node: the one retention path, over the rows of this node only.

Recordings stay on the node that recorded them, so each node deletes its own expired files:
its media actor (``vigil.cluster.media``) runs ``run_node_retention`` every
``NodeRetention.interval_s``. Nothing here decides what goes: ``RetentionJob`` with
``plan_retention`` does, as under ``vigil serve`` on one host (rows first, in one
transaction that re-checks every evidence lock, then the files, then the empty folders),
given a ``NodeCatalog`` that sees and deletes only the segment rows whose ``node`` is this
node. Snapshots expire through ``EventRepo.expire_snapshots`` restricted the same way. A node
therefore never deletes another node's rows or files. The quotas of the policy (per camera,
total, free space) apply per node: its disk is what fills.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vigil.paths import RECORDINGS, SNAPSHOTS
from vigil.record.quarantine import QUARANTINE
from vigil.record.retention import (
    RetentionJob,
    RetentionPolicy,
    SegmentFile,
    SegmentMeta,
    prune_empty_dirs,
    snapshot_ages,
)
from vigil.store import Database, SegmentRow
from vigil.store.repo import EventRepo, NodeFilter, SegmentRepo


@dataclass(frozen=True, slots=True)
class NodeRetention:
    """What a node's retention needs (picklable, sent to its media actor): the database,
    the policy (``vigil.runtime.serve.retention_policy`` of the configuration), each camera's
    snapshot age limit (its ``record.max_age``) and how often to run."""

    database_url: str
    policy: RetentionPolicy
    snapshot_max_age: Mapping[str, float] = field(default_factory=dict)
    interval_s: float = 300.0


@dataclass(frozen=True, slots=True)
class NodeRetentionResult:
    """Paths (relative to the node's data dir) of the segments and snapshots removed."""

    segments: list[str]
    snapshots: list[str]
    warnings: list[str]


class NodeCatalog:
    """The store's segments of one node as a ``SegmentCatalog`` (``node`` None: the rows
    without a node, the server's own); files are under ``root``, that node's data dir."""

    def __init__(self, db: Database, root: Path, node: NodeFilter) -> None:
        self.db, self.root, self.node = db, root, node

    def segments(self) -> list[SegmentFile]:
        with self.db.session() as session:
            return [self._file(r) for r in SegmentRepo(session).list(node=self.node)]

    def remove(self, ids: Sequence[Hashable]) -> list[SegmentFile]:
        wanted = [int(i) for i in ids if isinstance(i, int)]
        with self.db.session(immediate=True) as session:
            return [self._file(r) for r in SegmentRepo(session).delete(wanted, node=self.node)]

    def _file(self, row: SegmentRow) -> SegmentFile:
        # A segment's previews are part of what it costs on disk (quotas, free space).
        size = row.size + (row.preview_bytes or 0)
        meta = SegmentMeta(row.id, row.camera, row.start, row.end, size, row.evidence_lock)
        return SegmentFile(meta, self.root / row.path)


def run_node_retention(db: Database, root: Path, node: str | None, spec: NodeRetention,
                       now: float) -> NodeRetentionResult:  # fmt: skip
    """Expire ``node``'s snapshots, then apply the retention policy to its segments."""
    snapshots = _expire_snapshots(db, root, node, spec, now)
    job = RetentionJob(NodeCatalog(db, root, node), spec.policy, root / RECORDINGS,
                       quarantine=root / QUARANTINE)  # fmt: skip
    result = job.run(now)
    gone = set(result.deleted) | set(result.missing)
    segments = [f.path.relative_to(root).as_posix() for f in result.removed if f.meta.id in gone]
    return NodeRetentionResult(segments, snapshots, list(result.warnings))


def _expire_snapshots(db: Database, root: Path, node: str | None, spec: NodeRetention,
                      now: float) -> list[str]:  # fmt: skip
    """The node's snapshots older than their camera's limit, configured cameras' and those
    of cameras no longer configured (by the default limits) alike."""
    paths: list[str] = []
    with db.session(immediate=True) as session:
        repo = EventRepo(session)
        cameras = set(spec.snapshot_max_age) | set(repo.snapshot_cameras(node=node))
        ages = snapshot_ages(spec.policy, cameras, spec.snapshot_max_age)
        for camera, age in sorted(ages.items()):
            paths.extend(repo.expire_snapshots(camera, now - age, node=node))
    # Rows first (committed above), files after: a crash between leaves an orphan file.
    for rel in paths:
        (root / rel).unlink(missing_ok=True)
        prune_empty_dirs((root / rel).parent, root / SNAPSHOTS)
    return paths
