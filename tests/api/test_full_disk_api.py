"""The API on a full disk: the database and the data directory on a real 8 MiB tmpfs that is
filled up. Reads keep working although the token ``last_used`` write fails, and
``/api/health`` tells the truth about storage and recording (and stops lying once fixed)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import update

from tests.api.conftest import Api, build_api
from tests.small_disk import SmallDisk, small_disk
from vigil.errors import StorageError
from vigil.privacy import Redactor
from vigil.store import Database, Role, TokenRepo
from vigil.store.models import TokenRow


def _no_redactor(size: tuple[int, int]) -> Redactor:
    raise AssertionError("these reads need no redaction")


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[SmallDisk]:
    with small_disk(tmp_path / "disk", 8 * 1024 * 1024) as mounted:
        yield mounted


@pytest.fixture
def full_api(disk: SmallDisk) -> Iterator[Api]:
    db = Database(f"sqlite:///{disk.path / 'vigil.db'}")
    db.migrate()
    api = build_api(db, disk.path / "data", _no_redactor)
    (disk.path / "data").mkdir()
    yield api
    api.close()  # its clients and its job workers (they would poll the unmounted database)
    db.close()


def _age_tokens(db: Database) -> None:
    """Make every token's ``last_used`` old, so the next request wants to write it."""
    with db.session() as session:
        session.execute(update(TokenRow).values(last_used=0.0))


def test_authenticated_reads_work_while_the_last_used_write_fails(
    full_api: Api, disk: SmallDisk
) -> None:
    viewer = full_api.login("vera", Role.VIEWER)
    _age_tokens(full_api.db)
    ballast = disk.fill()
    with pytest.raises(StorageError, match="disk"), full_api.db.session(immediate=True) as s:
        TokenRepo(s).touch(1)  # the write really fails: the disk is full

    for _ in range(2):  # the first request tries the write; the next one must not either fail
        reply = viewer.get("/api/cameras")
        assert reply.status_code == 200, reply.text
        assert {c["name"] for c in reply.json()} == {"front", "back"}
    assert viewer.get("/api/events").status_code == 200
    assert viewer.get("/metrics").status_code == 200
    assert viewer.get("/api/me").json()["name"] == "vera"

    ballast.unlink()
    full_api.app.state.vigil.touch_retry_at = 0.0  # skip the minute's wait before a retry
    assert viewer.get("/api/cameras").status_code == 200
    with full_api.db.session() as session:
        [row] = TokenRepo(session).list()
        assert row.last_used is not None
        assert row.last_used > 0, "written once space is back"


def test_health_reports_a_full_disk_and_failed_recording(full_api: Api, disk: SmallDisk) -> None:
    client = full_api.client()
    healthy = client.get("/api/health").json()
    assert (healthy["status"], healthy["storage"], healthy["recording"]) == ("ok", "ok", "off")

    ballast = disk.fill()
    full = client.get("/api/health").json()
    assert full["status"] == "degraded"
    assert full["storage"] == "full"
    assert full["free_bytes"] < 1024 * 1024
    assert full["database"] is True, "the database still reads"

    runtime = full_api.runtime
    front = runtime.cameras()[1]
    assert front.name == "front"
    runtime.set_status(
        dataclasses.replace(
            front, recording="failed", recording_error="recording failed: disk full"
        )
    )
    runtime.set_status(dataclasses.replace(runtime.cameras()[0], recording="recording"))
    failing = client.get("/api/health").json()
    assert (failing["recording"], failing["recording_failed"]) == ("failed", 1)
    assert "front" not in str(failing), "health is public: no camera names"

    ballast.unlink()
    viewer = full_api.login("vera", Role.VIEWER)
    cameras = {c["name"]: c for c in viewer.get("/api/cameras").json()}
    assert cameras["front"]["recording"] == "failed"
    assert cameras["front"]["recording_error"] == "recording failed: disk full"
    assert cameras["back"]["recording"] == "recording"
    metrics = viewer.get("/metrics").text
    assert 'vigil_camera_recording_failed{camera="front"} 1.0' in metrics
    assert 'vigil_camera_recording_failed{camera="back"} 0.0' in metrics

    # Space is back but the recorder still fails: still degraded, storage no longer full.
    still = client.get("/api/health").json()
    assert (still["status"], still["storage"], still["recording"]) == ("degraded", "ok", "failed")
    runtime.set_status(
        dataclasses.replace(runtime.cameras()[1], recording="recording", recording_error=None)
    )
    recovered = client.get("/api/health").json()
    assert (recovered["status"], recovered["storage"], recovered["recording"]) == (
        "ok", "ok", "ok")  # fmt: skip
