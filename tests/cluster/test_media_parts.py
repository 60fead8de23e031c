"""The parts of cross-node media that need no cluster: the verified cache, the shared-mount
resolver, the API's resolver seam and its 503, the node filters of the store, the CLI's
error without a cluster, and ``GET /api/cluster`` on a single host."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import T0, Api, face_detector  # noqa: F401 (fixture)
from tests.api.conftest import api as api  # noqa: PLC0414 (fixture)
from tests.store.conftest import db, pg_server  # noqa: F401 (fixtures)
from vigil.cluster.media import MediaCache, SharedMountMedia
from vigil.cluster.retention import NodeCatalog
from vigil.errors import MediaNotFoundError, NodeUnavailableError, StorageError
from vigil.store import ANY_NODE, Database, EventRepo, Role, SegmentRepo
from vigil.types import Event, EventState


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _put(cache: MediaCache, data: bytes) -> Path:
    def write(out: Any) -> str:
        out.write(data)
        return _sha(data)

    return cache.put(_sha(data), write)


def test_cache_keeps_verified_copies_within_its_bound(tmp_path: Path) -> None:
    cache = MediaCache(tmp_path / "cache", max_bytes=250)
    blobs = [bytes([i]) * 100 for i in range(3)]
    first = _put(cache, blobs[0])
    assert first.read_bytes() == blobs[0]
    assert first == tmp_path / "cache" / _sha(blobs[0])[:2] / _sha(blobs[0])
    second = _put(cache, blobs[1])
    os.utime(first, (1, 1))  # the first one was served longest ago
    os.utime(second, (2, 2))
    assert cache.get(_sha(blobs[1])) == second  # a hit makes it the newest
    third = _put(cache, blobs[2])
    assert not first.exists(), "least recently served goes first"
    assert second.exists()
    assert third.exists()
    assert cache.size() <= 250


def test_cache_keeps_the_file_being_served_even_over_the_bound(tmp_path: Path) -> None:
    cache = MediaCache(tmp_path / "cache", max_bytes=10)
    big = _put(cache, b"x" * 100)
    assert big.is_file()


def test_cache_refuses_bytes_that_do_not_match_the_row(tmp_path: Path) -> None:
    cache = MediaCache(tmp_path / "cache", max_bytes=1000)
    wanted = _sha(b"the recording")

    def write(out: Any) -> str:
        out.write(b"something else")
        return _sha(b"something else")

    with pytest.raises(StorageError, match="does not match"):
        cache.put(wanted, write)
    assert cache.get(wanted) is None
    assert list((tmp_path / "cache").rglob("*.fetch-*")) == [], "no partial file is left"
    with pytest.raises(MediaNotFoundError):
        cache.path_of("../../etc/passwd")


def test_shared_mount_reads_in_place_and_names_a_missing_node(tmp_path: Path) -> None:
    mount = tmp_path / "mnt"
    rec = mount / "node-1" / "recordings" / "cam" / "a.mp4"
    rec.parent.mkdir(parents=True)
    rec.write_bytes(b"mp4")
    (mount / "node-1" / "keys").mkdir()
    (mount / "node-1" / "keys" / "k.pem").write_text("secret")
    media = SharedMountMedia(tmp_path / "head", "head", mount)
    assert media.path("node-1", "recordings/cam/a.mp4", "recordings", None) == rec.resolve()
    with pytest.raises(MediaNotFoundError):
        media.path("node-1", "keys/k.pem", "recordings", None)
    with pytest.raises(MediaNotFoundError):
        media.path("node-1", "recordings/../keys/k.pem", "recordings", None)
    with pytest.raises(NodeUnavailableError, match="'node-9'"):
        media.path("node-9", "recordings/cam/a.mp4", "recordings", None)
    with pytest.raises(MediaNotFoundError):
        media.path("..", "recordings/cam/a.mp4", "recordings", None)


class _Down:
    """A resolver whose every other node is down (as ClusterMedia answers then)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    def path(self, node: str | None, relative: str, folder: str, sha256: str | None) -> Path:
        raise NodeUnavailableError(str(node), "ActorUnavailableError")

    def check(self, node: str | None, relative: str, folder: str) -> None:
        """Nothing to check without the node."""

    def quarantine(self) -> dict[str, tuple[int, int]]:
        return {}


def test_media_routes_answer_503_naming_the_node(api: Api) -> None:
    seg_id, _ = api.add_segment("front", T0)
    with api.db.session() as session:
        segment = SegmentRepo(session).get(seg_id)
        assert segment is not None
        segment.node = "node-3"
        EventRepo(session).upsert(Event(id="e1", camera_id="front", label="person", class_id=0,
                                        track_id=1, start=T0, end=T0 + 1, state=EventState.END,
                                        live=True),
                                  snapshot_path="snapshots/front/e1.jpg",
                                  snapshot_sha256="0" * 64, node="node-3")  # fmt: skip
    api.app.state.vigil.media_resolver = _Down(api.data_dir)
    admin = api.login("root", Role.ADMIN)
    for url in (f"/api/recordings/{seg_id}/media", "/api/events/e1/snapshot"):
        reply = admin.get(url)
        assert reply.status_code == 503, reply.text
        assert reply.json()["error"]["code"] == "node_unavailable"
        assert "'node-3'" in reply.json()["error"]["message"]
        assert reply.headers["retry-after"] == "30"


def test_api_cluster_is_null_on_a_single_host_and_for_admins_only(api: Api) -> None:
    admin = api.login("root", Role.ADMIN)
    assert admin.get("/api/cluster").json() == {"cluster": None}
    operator = api.login("op", Role.OPERATOR)
    assert operator.get("/api/cluster").status_code == 403


def _segments(db: Database) -> dict[str | None, int]:  # noqa: F811
    ids = {}
    with db.session() as session:
        for node in (None, "node-1", "node-2"):
            row = SegmentRepo(session).add(camera="c", path=f"recordings/c/{node}.mp4",
                                           start=T0, end=T0 + 1, size=1, sha256="0" * 64,
                                           node=node)  # fmt: skip
            ids[node] = row.id
    return ids


def test_segment_queries_filter_by_node(db: Database) -> None:  # noqa: F811
    ids = _segments(db)
    with db.session() as session:
        repo = SegmentRepo(session)
        assert {r.id for r in repo.list(node=ANY_NODE)} == set(ids.values())
        assert [r.id for r in repo.list(node="node-1")] == [ids["node-1"]]
        assert [r.id for r in repo.list(node=None)] == [ids[None]]
        # A node deletes only its own rows, whatever ids it is handed.
        gone = repo.delete(list(ids.values()), node="node-2")
    assert [r.id for r in gone] == [ids["node-2"]]
    catalog = NodeCatalog(db, Path("/data"), "node-1")
    assert [f.meta.id for f in catalog.segments()] == [ids["node-1"]]
    assert [f.path for f in catalog.segments()] == [Path("/data/recordings/c/node-1.mp4")]
    assert catalog.remove([ids[None]]) == []


def test_snapshot_expiry_filters_by_node(db: Database) -> None:  # noqa: F811
    with db.session() as session:
        repo = EventRepo(session)
        for i, node in enumerate((None, "node-1")):
            repo.upsert(Event(id=f"e{i}", camera_id="c", label="car", class_id=2, track_id=i,
                              start=T0, end=T0 + 1, state=EventState.END, live=True),
                        snapshot_path=f"snapshots/c/e{i}.jpg", snapshot_sha256="0" * 64,
                        node=node)  # fmt: skip
    with db.session() as session:
        # The cameras a node has snapshots of, configured or not (its retention's list).
        assert EventRepo(session).snapshot_cameras(node="node-1") == ["c"]
        assert EventRepo(session).snapshot_cameras(node="node-2") == []
        assert EventRepo(session).expire_snapshots("c", T0 + 10, node="node-1") == [
            "snapshots/c/e1.jpg"
        ]
        assert EventRepo(session).expire_snapshots("c", T0 + 10, node="node-2") == []
        assert EventRepo(session).expire_snapshots("c", T0 + 10) == ["snapshots/c/e0.jpg"]


def test_a_node_expires_the_snapshots_of_a_camera_no_longer_configured(
    db: Database,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Camera ``c`` is in no camera's limit (removed from the configuration): its node's
    retention expires its snapshots by the default ``max_age``, its file deleted."""
    from vigil.cluster.retention import NodeRetention, run_node_retention
    from vigil.record.retention import CameraRetention, RetentionPolicy

    with db.session() as session:
        EventRepo(session).upsert(
            Event(id="e0", camera_id="c", label="car", class_id=2, track_id=0, start=T0,
                  end=T0 + 1, state=EventState.END, live=True),
            snapshot_path="snapshots/c/e0.jpg", snapshot_sha256="0" * 64, node="node-1",
        )  # fmt: skip
    (tmp_path / "snapshots" / "c").mkdir(parents=True)
    (tmp_path / "snapshots" / "c" / "e0.jpg").write_bytes(b"jpeg")
    spec = NodeRetention(str(db.engine.url), RetentionPolicy(CameraRetention(max_age=60.0)))
    result = run_node_retention(db, tmp_path, "node-1", spec, T0 + 120)
    assert result.snapshots == ["snapshots/c/e0.jpg"]
    assert not (tmp_path / "snapshots" / "c" / "e0.jpg").exists()


def test_cluster_status_without_a_cluster_is_a_clear_error() -> None:
    done = subprocess.run([sys.executable, "-m", "vigil.cli", "cluster", "status", "--address",
                           "127.0.0.1:1", "--json"], capture_output=True, text=True, timeout=120,
                          check=False)  # fmt: skip
    assert done.returncode == 2
    assert "no Ray cluster reachable at '127.0.0.1:1'" in done.stderr
    assert "ray start --head" in done.stderr
    assert "Traceback" not in done.stderr


def test_cluster_status_refuses_a_ray_client_address(capsys: pytest.CaptureFixture[str]) -> None:
    from vigil.cli import main

    assert main(["cluster", "status", "--address", "ray://10.0.0.5:10001"]) == 2
    assert "give the head's GCS address" in capsys.readouterr().err


def test_cluster_status_without_ray_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from vigil.cli import main

    monkeypatch.setitem(sys.modules, "ray", None)  # as if the cluster extra were not installed
    assert main(["cluster", "status", "--address", "auto"]) == 2
    assert "pip install 'vigil[cluster]'" in capsys.readouterr().err


def test_media_actor_runs_its_node_retention_every_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The actor's own loop (here a plain object, as Ray runs it) expires this node's files."""
    import time

    from tests.cluster.media_fixtures import wait_for
    from vigil.cluster import NODE_DATA_DIR_ENV, NODE_NAME_ENV
    from vigil.cluster.media import MediaActor
    from vigil.cluster.retention import NodeRetention
    from vigil.record.retention import CameraRetention, RetentionPolicy

    node_dir = tmp_path / "node-7"
    monkeypatch.setenv(NODE_NAME_ENV, "node-7")
    monkeypatch.setenv(NODE_DATA_DIR_ENV, str(node_dir))
    url = f"sqlite:///{tmp_path / 'vigil.db'}"
    database = Database(url)
    database.migrate()
    files = {}
    with database.session() as session:
        for node in ("node-7", "node-8"):
            rel = f"recordings/c/{node}.mp4"
            files[node] = (tmp_path / node) / rel
            files[node].parent.mkdir(parents=True)
            files[node].write_bytes(b"old")
            SegmentRepo(session).add(camera="c", path=rel, start=T0, end=T0 + 1, size=3,
                                     sha256=_sha(b"old"), node=node)  # fmt: skip
    policy = RetentionPolicy(default=CameraRetention(max_age=60.0))
    actor = MediaActor(str(tmp_path / "configured"), NodeRetention(url, policy, interval_s=0.2))
    assert actor.root == node_dir
    assert actor.stat("recordings/c/node-7.mp4", "recordings").size == 3
    assert actor.read("recordings/c/node-7.mp4", "recordings", 1, 10) == b"ld"
    wait_for(lambda: not files["node-7"].exists(), "node-7's retention to delete its file", 60)
    assert actor.last_retention is not None
    assert actor.last_retention.segments == ["recordings/c/node-7.mp4"]
    time.sleep(0.5)  # a few more runs: they must leave the other node's file alone
    assert files["node-8"].exists()
    assert not (node_dir / "recordings" / "c").exists(), "the emptied folder is pruned"
    actor.stop()
    with database.session() as session:
        assert [r.node for r in SegmentRepo(session).list()] == ["node-8"]
    database.close()


def test_a_preview_of_another_node_goes_through_the_resolver(api: Api, tmp_path: Path) -> None:
    """The preview route finds the row's node and asks the resolver (here a shared mount,
    then a node that is down): no route knows where a preview lies."""
    from vigil.record.previews import preview_file

    relative = "recordings/front/2024-05-01/12/00.00.mp4"
    mount = tmp_path / "mnt"
    preview = mount / "node-2" / preview_file(relative, 1000)
    preview.parent.mkdir(parents=True)
    preview.write_bytes(b"\xff\xd8 a jpeg of node-2")
    with api.db.session() as session:
        SegmentRepo(session).add(camera="front", path=relative, start=T0, end=T0 + 10, size=1,
                                 sha256="ab" * 32, node="node-2", previews="1000",
                                 preview_bytes=20)  # fmt: skip
    viewer = api.login("val", Role.VIEWER)
    url = f"/api/recordings/front/preview?at={T0 + 2}"
    assert viewer.get(url).status_code == 404, "not in this server's own data dir"
    api.app.state.vigil.media_resolver = SharedMountMedia(api.data_dir, "head", mount)
    reply = viewer.get(url)
    assert reply.status_code == 200, reply.text
    assert reply.content == preview.read_bytes()
    api.app.state.vigil.media_resolver = _Down(api.data_dir)
    reply = viewer.get(url)
    assert reply.status_code == 503
    assert "'node-2'" in reply.json()["error"]["message"]
