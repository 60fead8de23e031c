"""Events (filters, keyset pages, scope, evidence lock), counts (JSON/CSV), snapshots redacted
with the real CenterFace and checked with YuNet, unredacted only with role + reason."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from tests.api.conftest import T0, Api
from vigil.store import AuditRepo, CountKey, CountRepo, EventRepo, Role, SegmentRepo
from vigil.types import Event, EventState, ImageArray


def add_event(api: Api, event_id: str, camera: str = "front", start: float = T0, *,
              label: str = "person", zones: tuple[str, ...] = (), snapshot: str | None = None,
              ) -> None:  # fmt: skip
    event = Event(event_id, camera, label, 0, 1, start, start + 5, EventState.END, live=True,
                  zones=list(zones))  # fmt: skip
    with api.db.session() as session:
        EventRepo(session).upsert(event, snapshot_path=snapshot)


@pytest.fixture
def events(api: Api) -> Api:
    for i in range(5):
        add_event(api, f"f{i}", "front", T0 + i, zones=("door",) if i % 2 else ())
    add_event(api, "b0", "back", T0 + 10, label="car")
    return api


@pytest.mark.parametrize(("params", "ids"), [
    ({}, ["b0", "f4", "f3", "f2", "f1", "f0"]),
    ({"camera": "front", "zone": "door"}, ["f3", "f1"]),
    ({"label": "car"}, ["b0"]),
    ({"start": T0 + 9.5, "end": T0 + 100}, ["b0"]),
    ({"start": T0 + 8.5, "end": T0 + 100}, ["b0", "f4"]),
    ({"end": T0 + 1}, ["f0"]),
])  # fmt: skip
def test_event_filters(events: Api, params: dict[str, object], ids: list[str]) -> None:
    reply = events.login("val", Role.VIEWER).get("/api/events", params=params)
    assert [e["id"] for e in reply.json()["items"]] == ids


def test_event_pages_are_keyset_and_complete(events: Api) -> None:
    client = events.login("val", Role.VIEWER)
    seen, cursor = [], None
    while True:
        params: dict[str, object] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = client.get("/api/events", params=params).json()
        seen += [e["id"] for e in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["b0", "f4", "f3", "f2", "f1", "f0"]
    bad = client.get("/api/events", params={"cursor": "!!"})
    assert bad.status_code == 422


def test_camera_scope_hides_events(events: Api) -> None:
    client = events.login("bob", Role.VIEWER, cameras=["back"])
    assert [e["id"] for e in client.get("/api/events").json()["items"]] == ["b0"]
    assert client.get("/api/events/f0").status_code == 404
    assert client.get("/api/events", params={"camera": "front"}).status_code == 403
    assert client.get("/api/events/b0").json()["label"] == "car"


def test_evidence_lock_covers_event_and_segments(events: Api) -> None:
    events.add_segment("front", T0 - 1)
    events.add_segment("front", T0 + 30)
    viewer = events.login("val", Role.VIEWER)
    assert viewer.post("/api/events/f0/lock").status_code == 403
    operator = events.login("op", Role.OPERATOR)
    reply = operator.post("/api/events/f0/lock", json={"locked": True, "reason": "case 7"})
    assert reply.json() == {"event": "f0", "locked": True, "segments": 1}
    with events.db.session() as session:
        assert [s.evidence_lock for s in SegmentRepo(session).list("front")] == [True, False]
        row = EventRepo(session).get("f0")
        assert row is not None
        assert row.evidence_lock
        audit = AuditRepo(session).records(action="event.lock")
    assert [(a.actor, a.target, a.reason) for a in audit] == [("op", "f0", "case 7")]
    assert operator.post("/api/events/nope/lock").status_code == 404


def test_counts_json_and_csv(api: Api) -> None:
    with api.db.session() as session:
        counts = CountRepo(session)
        counts.increment(CountKey("front", "gate", "line", "person", "a_to_b"), T0 + 5, 2)
        counts.increment(CountKey("front", "gate", "line", "person", "a_to_b"), T0 + 65, 1)
        counts.increment(CountKey("front", "gate", "line", "car", "b_to_a"), T0 + 5)
    client = api.login("val", Role.VIEWER)
    hourly = client.get("/api/counts", params={"camera": "front", "period": "hour"}).json()
    assert [(p["label"], p["count"]) for p in hourly] == [("car", 1), ("person", 3)]
    minutes = client.get("/api/counts", params={"camera": "front", "period": "minute",
                                                "label": "person"}).json()  # fmt: skip
    assert [p["count"] for p in minutes] == [2, 1]
    as_csv = client.get("/api/counts", params={"camera": "front"},
                        headers={"Accept": "text/csv"})  # fmt: skip
    assert as_csv.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(as_csv.text)))
    assert rows[0] == ["time", "label", "metric", "count"]
    hour = str(int(T0))
    assert rows[1:] == [[hour, "car", "b_to_a", "1"], [hour, "person", "a_to_b", "3"]]
    forced = client.get("/api/counts", params={"camera": "front", "format": "csv"})
    assert forced.text == as_csv.text
    assert client.get("/api/counts", params={"camera": "nope", "period": "year"}).status_code == 422


# -- snapshots: real faces, real redaction --------------------------------------------------


def _first_frame(path: Path) -> ImageArray:
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        return np.ascontiguousarray(frame.to_ndarray(format="bgr24"))


def _faces(model: Path, image: ImageArray) -> int:
    h, w = image.shape[:2]
    detector = cv2.FaceDetectorYN.create(str(model), "", (w, h), 0.5, 0.3, 5000)
    _, found = detector.detect(image)
    return 0 if found is None else len(found)


@pytest.fixture
def face_event(api: Api, clips_dir: Path, yunet_path: Path) -> ImageArray:
    image = _first_frame(clips_dir / "face-demographics-walking.gif")
    assert _faces(yunet_path, image) >= 1  # the input really shows a face
    target = api.data_dir / "snapshots" / "front" / "e1.jpg"
    target.parent.mkdir(parents=True)
    assert cv2.imwrite(str(target), image)
    add_event(api, "e1", snapshot="snapshots/front/e1.jpg")
    api.runtime.set_frame("front", image)
    return image


def _decode(data: bytes) -> ImageArray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return np.ascontiguousarray(image)


@pytest.mark.parametrize("path", ["/api/events/e1/snapshot", "/api/cameras/front/snapshot"])
def test_snapshot_is_redacted_and_audited(
    api: Api, face_event: ImageArray, yunet_path: Path, path: str
) -> None:
    reply = api.login("val", Role.VIEWER).get(path)
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "image/jpeg"
    out = _decode(reply.content)
    assert out.shape == face_event.shape
    assert _faces(yunet_path, out) == 0
    with api.db.session() as session:
        (record,) = AuditRepo(session).records(actor="val")
    assert record.action in ("snapshot.read", "camera.snapshot")
    assert record.details["redacted"] is True
    assert record.source == "testclient"


def test_unredacted_snapshot_needs_role_and_reason(
    api: Api, face_event: ImageArray, yunet_path: Path
) -> None:
    url = "/api/events/e1/snapshot"
    viewer = api.login("val", Role.VIEWER)
    assert viewer.get(url, params={"unredacted": True, "reason": "curious"}).status_code == 403
    operator = api.login("op", Role.OPERATOR)
    assert operator.get(url, params={"unredacted": True}).status_code == 403  # no reason
    reply = operator.get(url, params={"unredacted": True, "reason": "incident 42"})
    assert reply.status_code == 200
    assert _faces(yunet_path, _decode(reply.content)) >= 1
    with api.db.session() as session:
        records = AuditRepo(session).records(action="snapshot.")
    assert [(r.actor, r.reason, r.details["redacted"]) for r in records] == [
        ("op", "incident 42", False)
    ]
    with api.db.session() as session:
        denied = AuditRepo(session).records(action="unredacted.denied")
    assert [(r.actor, r.target, r.reason) for r in denied] == [
        ("val", "snapshot e1", "curious"),
        ("op", "snapshot e1", None),
    ]
    assert denied[0].details["why"] == "role viewer"
    assert "reason" in denied[1].details["why"]
    assert (api.data_dir / "audit" / "unredacted.jsonl").read_text().count("incident 42") == 1


def test_snapshot_missing_or_outside_root(api: Api) -> None:
    add_event(api, "none")
    add_event(api, "evil", snapshot="../../../etc/passwd")
    client = api.login("val", Role.VIEWER)
    assert client.get("/api/events/none/snapshot").status_code == 404
    assert client.get("/api/events/evil/snapshot").status_code == 404
    assert client.get("/api/cameras/ghost/snapshot").status_code == 404


def test_a_page_of_events_asks_for_its_clips_in_one_query(api: Api) -> None:
    """``has_clip`` of a page is one query (``SegmentRepo.recorded_many``), not one per row:
    at city scale the per-row round trips were most of ``GET /api/events`` (bench/city.py)."""
    from sqlalchemy import event as sa_event

    with api.db.session() as session:
        SegmentRepo(session).add(camera="front", path="rec/front/a.mp4", start=T0 + 20,
                                 end=T0 + 30, size=1, sha256="ab" * 32)  # fmt: skip
    viewer = api.login("val", Role.VIEWER)
    statements: list[str] = []

    def count(_c: object, _cur: object, statement: str, *_: object) -> None:
        statements.append(statement)

    sa_event.listen(api.db.engine, "before_cursor_execute", count)
    try:
        sizes = {}
        for n in (2, 40):
            for i in range(n):
                add_event(api, f"p{n}-{i}", "front", T0 + i)  # ends 5 s after its start
            statements.clear()
            items = viewer.get("/api/events", params={"camera": "front", "limit": n}).json()
            # The segments asked about (auth's own statements vary: token touches).
            sizes[n] = sum("segments" in st for st in statements)
            clips = {e["id"]: e["has_clip"] for e in items["items"]}
            assert len(clips) == n
            # The segment [T0+20, T0+30) overlaps the events that start in (T0+15, T0+30).
            mine = {e: has for e, has in clips.items() if e.startswith(f"p{n}-")}
            assert mine == {e: 15 < int(e.split("-")[1]) < 30 for e in mine}
    finally:
        sa_event.remove(api.db.engine, "before_cursor_execute", count)
    assert sizes == {2: 1, 40: 1}
