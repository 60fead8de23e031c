"""Event snapshots of a running Supervisor: files on disk, hashes in the database, redacted
through the API, deleted by retention unless the event is locked.

One synthetic camera (real time, model-free motion detector, one line) runs to its end with a
real SQLite database; the API is ``create_app`` with the Supervisor itself as the runtime and
a redactor whose face detector reports one fixed box (the scene has no faces), filled black.
"""

from __future__ import annotations

import hashlib
import re
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the server extra is not installed")

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from fastapi.testclient import TestClient

from tests.runtime.test_supervisor import LINE, fast_backoff, make_config, make_db, wait_for
from vigil.api import ApiSettings, create_app
from vigil.api.auth import hash_password
from vigil.config.models import RedactConfig
from vigil.privacy import Redactor, build_redactor
from vigil.runtime.serve import Supervisor
from vigil.store import Database, EventFilter, EventRepo, Role, UserRepo
from vigil.store.models import EventRow
from vigil.types import FloatArray, ImageArray

SCENE = "synthetic://?width=640&height=360&fps=10&duration=6"
FACE = (100, 60, 260, 220)  # x1, y1, x2, y2 of the "face" the fake detector always finds
PASSWORD = "correct horse battery"
PATH = re.compile(r"^snapshots/a/\d{4}-\d{2}-\d{2}/a-[0-9.]+-\d+\.jpg$")


class FixedFace:
    """A face detector that sees one face at ``FACE`` in every image."""

    def detect(self, image: ImageArray) -> FloatArray:
        return np.array([[*FACE, 0.99]], np.float32)


def redactor(config: RedactConfig, size: tuple[int, int]) -> Redactor:
    return build_redactor(config, size, face_detector=FixedFace())


@dataclass
class Run:
    supervisor: Supervisor
    db: Database
    root: Path


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    tmp = tmp_path_factory.mktemp("snapshots")
    config = make_config(tmp, {
        "a": {"sources": [{"url": SCENE}], "lines": LINE, "record": {"max_age": 3600}},
    })  # fmt: skip
    db = make_db(tmp)
    supervisor = Supervisor(config, db=db, backoff=fast_backoff)
    supervisor.start()
    try:
        wait_for(lambda: supervisor.workers["a"].state == "ended", 30, "camera a did not end")
    finally:
        supervisor.stop()
    yield Run(supervisor, db, Path(config.data_dir))
    db.close()


def events(db: Database) -> list[EventRow]:
    with db.session() as session:
        return EventRepo(session).list(EventFilter(camera="a"), limit=1000).items


def test_every_event_has_its_snapshot_file_with_matching_hash(run: Run) -> None:
    rows = events(run.db)
    assert rows, "the scene produced no event"
    for row in rows:
        assert row.snapshot_path is not None
        assert PATH.match(row.snapshot_path), row.snapshot_path
        assert row.snapshot_path.endswith(f"/{row.id}.jpg")
        data = (run.root / row.snapshot_path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == row.snapshot_sha256
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None
        assert image.shape == (360, 640, 3), "snapshots are full-resolution frames"
    files = sorted((run.root / "snapshots").rglob("*.jpg"))
    assert len(files) == len(rows), "one file per event, no temporary leftovers"


def test_api_serves_the_snapshot_redacted(run: Run) -> None:
    row = events(run.db)[0]
    assert row.snapshot_path is not None
    with run.db.session() as session:
        UserRepo(session).add("vera", Role("viewer"), hash_password(PASSWORD))
    settings = ApiSettings(secure_cookies=False, redact=RedactConfig(style="fill", margin=0.0))
    app = create_app(settings, run.db, run.supervisor,
                     data_dir=run.root, redactor_factory=redactor)  # fmt: skip
    with TestClient(app) as client:
        reply = client.post("/api/login", json={"name": "vera", "password": PASSWORD})
        assert reply.status_code == 200, reply.text
        reply = client.get(f"/api/events/{row.id}/snapshot")
        assert reply.status_code == 200, reply.text
        assert reply.headers["content-type"] == "image/jpeg"
        served = cv2.imdecode(np.frombuffer(reply.content, np.uint8), cv2.IMREAD_COLOR)
        assert served is not None
        listed = client.get("/api/events", params={"camera": "a"}).json()
    original = cv2.imread(str(run.root / row.snapshot_path))
    assert original is not None
    x1, y1, x2, y2 = FACE
    inner = (slice(y1 + 8, y2 - 8), slice(x1 + 8, x2 - 8))
    assert original[inner].mean() > 40, "the stored original is unredacted"
    assert served[inner].mean() < 10, "the served copy has the face filled"
    outside = (slice(260, 350), slice(300, 630))
    assert np.abs(served[outside].astype(int) - original[outside]).mean() < 4
    items = listed["items"] if isinstance(listed, dict) else listed
    assert all(item["has_snapshot"] for item in items)


def test_retention_deletes_old_snapshots_unless_locked(run: Run) -> None:
    rows = events(run.db)
    assert len(rows) >= 2, "need a locked and an unlocked event"
    locked = rows[0]
    with run.db.session() as session:
        EventRepo(session).set_evidence_lock(locked.id, True)
    before = {r.id: r.snapshot_path for r in rows}
    assert run.supervisor.expire_snapshots(time.time()) == [], "nothing is older than max_age"
    deleted = run.supervisor.expire_snapshots(time.time() + 3601)
    assert sorted(deleted) == sorted(p for i, p in before.items() if i != locked.id and p)
    after = {r.id: r for r in events(run.db)}
    for event_id, path in before.items():
        assert path is not None
        kept = event_id == locked.id
        assert (run.root / path).exists() is kept
        assert (after[event_id].snapshot_path is not None) is kept
        assert (after[event_id].snapshot_sha256 is not None) is kept


def _snapshot_row(camera: str, event_id: str, end: float) -> EventRow:
    return EventRow(id=event_id, camera=camera, label="person", class_id=0, track_id=1,
                    start=end - 5, end=end, state="end", live=True, zones=[], lines=[],
                    counts={}, top_score=0.9, snapshot_path=f"snapshots/{camera}/{event_id}.jpg",
                    snapshot_sha256="0" * 64, updated=end)  # fmt: skip


def test_a_removed_cameras_snapshots_expire_by_the_default_limits(tmp_path: Path) -> None:
    """Camera ``gone`` left the configuration with its event snapshots stored: they expire
    by the top-level ``record.max_age``, as its segments do; a configured camera kept for
    ever (no ``max_age`` of its own, none by default either) keeps its own."""
    now = time.time()
    config = make_config(tmp_path, {"b": {"sources": [{"url": SCENE}]}})
    db = make_db(tmp_path)
    root = Path(config.data_dir)
    rows = [_snapshot_row("gone", "old", now - 7200), _snapshot_row("gone", "new", now - 60),
            _snapshot_row("b", "b-old", now - 7200)]  # fmt: skip
    with db.session() as session:
        session.add_all(rows)
    for row in rows:
        assert row.snapshot_path is not None
        (root / row.snapshot_path).parent.mkdir(parents=True, exist_ok=True)
        (root / row.snapshot_path).write_bytes(b"jpeg")
    try:
        kept_for_ever = Supervisor(config, db=db)
        assert kept_for_ever.expire_snapshots(now) == [], "no limit anywhere: all kept"
        limited = config.model_copy(update={"record": config.record.model_copy(
            update={"max_age": 3600.0})})  # fmt: skip
        assert limited.camera("b").record.max_age == 3600.0, "b follows the default too"
        deleted = Supervisor(limited, db=db).expire_snapshots(now)
        assert sorted(deleted) == ["snapshots/b/b-old.jpg", "snapshots/gone/old.jpg"]
        assert not (root / "snapshots/gone/old.jpg").exists()
        assert (root / "snapshots/gone/new.jpg").is_file()
    finally:
        db.close()


def test_an_unwritable_snapshot_folder_still_stores_the_event(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from vigil.store.sink import StoreEventSink
    from vigil.types import Event, EventState, Snapshot

    db = make_db(tmp_path)
    (tmp_path / "media").write_text("a file where the folder should be")
    image = np.zeros((36, 64, 3), np.uint8)
    event = Event(
        id="a-1.000-1",
        camera_id="a",
        label="person",
        class_id=0,
        track_id=1,
        start=1.0,
        end=None,
        state=EventState.START,
        snapshot=Snapshot(seq=3, time=1.0, box=(0, 0, 8, 8), score=1.0, image=image),
    )
    try:
        StoreEventSink(db, tmp_path / "media").publish(event)
        with db.session() as session:
            row = EventRepo(session).get(event.id)
        assert row is not None
        assert row.snapshot_path is None
        assert "snapshot not stored" in caplog.text
    finally:
        db.close()


def test_a_full_disk_leaves_no_temporary_snapshot_file(tmp_path: Path) -> None:
    """Snapshot writes that fail on a real full disk store the event and leave no ``.tmp``
    behind (they held space for ever: 145 of them after one disk-full in the field)."""
    from tests.small_disk import small_disk
    from vigil.store.sink import StoreEventSink
    from vigil.types import Event, EventState, Snapshot

    db = make_db(tmp_path)  # the database is not on the small disk
    rng = np.random.default_rng(0)
    try:
        with small_disk(tmp_path / "disk", 1024 * 1024) as disk:
            media = disk.path / "media"
            (media / "snapshots/a/1970-01-01").mkdir(parents=True)
            disk.fill()
            sink = StoreEventSink(db, media)
            for i in range(5):
                # Noise does not compress: each JPEG is far bigger than what is left.
                image = rng.integers(0, 255, (360, 640, 3), dtype=np.uint8)
                sink.publish(Event(
                    id=f"a-1.000-{i}", camera_id="a", label="person", class_id=0, track_id=i,
                    start=1.0, end=None, state=EventState.START,
                    snapshot=Snapshot(seq=3, time=1.0, box=(0, 0, 8, 8), score=1.0,
                                      image=image)))  # fmt: skip
            left = [p.name for p in media.rglob("*") if p.is_file()]
            assert left == [], "no temporary (or partial) snapshot file stays"
        with db.session() as session:
            assert EventRepo(session).count(EventFilter(camera="a")) == 5, "events stored"
    finally:
        db.close()
