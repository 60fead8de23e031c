"""Recordings with HTTP Range, exports (redacted, signed), camera snapshots, path traversal."""

from __future__ import annotations

from pathlib import Path

import av
import pytest

from tests.api.conftest import T0, Api, wait_job
from vigil.record.export import verify_export
from vigil.record.signing import load_or_create_key
from vigil.store import AuditRepo, Role


def _actions(api: Api) -> list[str]:
    with api.db.session() as session:
        return [r.action for r in AuditRepo(session).records(limit=1000)]


def test_list_recordings_by_camera_and_scope(api: Api) -> None:
    api.add_segment("front", T0)
    api.add_segment("front", T0 + 2)
    api.add_segment("back", T0)
    admin = api.login("root", Role.ADMIN)
    assert len(admin.get("/api/recordings").json()) == 3
    only = admin.get("/api/recordings", params={"camera": "front", "start": T0 + 2.5}).json()
    assert [s["start"] for s in only] == [T0 + 2]
    scoped = api.login("bob", Role.VIEWER, cameras=["back"])
    assert {s["camera"] for s in scoped.get("/api/recordings").json()} == {"back"}
    assert scoped.get("/api/recordings", params={"camera": "front"}).status_code == 403


@pytest.mark.parametrize(("range_header", "status", "first", "last"), [
    (None, 200, 0, None),
    ("bytes=0-99", 206, 0, 99),
    ("bytes=100-", 206, 100, None),
    ("bytes=-50", 206, -50, None),
])  # fmt: skip
def test_segment_media_range(
    api: Api, range_header: str | None, status: int, first: int, last: int | None
) -> None:
    seg_id, path = api.add_segment("front", T0)
    data = path.read_bytes()
    client = api.login("op", Role.OPERATOR)
    headers = {} if range_header is None else {"Range": range_header}
    reply = client.get(f"/api/recordings/{seg_id}/media", headers=headers)
    assert reply.status_code == status
    assert reply.headers["accept-ranges"] == "bytes"
    expected = data[first:] if last is None else data[first : last + 1]
    assert reply.content == expected
    if status == 206:
        start = first % len(data)
        stop = start + len(expected) - 1
        assert reply.headers["content-range"] == f"bytes {start}-{stop}/{len(data)}"
    assert "segment.read" in _actions(api)


@pytest.mark.parametrize("range_header", ["bytes=999999999-", "bytes=50-10"])
def test_segment_media_unsatisfiable_range(api: Api, range_header: str) -> None:
    seg_id, path = api.add_segment("front", T0)
    client = api.login("op", Role.OPERATOR)
    reply = client.get(f"/api/recordings/{seg_id}/media", headers={"Range": range_header})
    assert reply.status_code == 416
    assert reply.headers["content-range"] == f"bytes */{path.stat().st_size}"
    assert reply.json()["error"]["code"] == "range_not_satisfiable"


def test_viewer_cannot_play_unredacted_segments(api: Api) -> None:
    seg_id, _ = api.add_segment("front", T0)
    reply = api.login("val", Role.VIEWER).get(f"/api/recordings/{seg_id}/media")
    assert reply.status_code == 403
    assert reply.json()["error"]["code"] == "forbidden"


def test_segment_outside_scope_is_404(api: Api) -> None:
    seg_id, _ = api.add_segment("front", T0)
    client = api.login("op", Role.OPERATOR, cameras=["back"])
    assert client.get(f"/api/recordings/{seg_id}/media").status_code == 404


def test_segment_row_pointing_outside_media_root_is_refused(api: Api, tmp_path: Path) -> None:
    """Defence in depth: even a tampered database row cannot make the API read /etc."""
    seg_id, _ = api.add_segment("front", T0)
    from sqlalchemy import update

    from vigil.store import SegmentRow

    client = api.login("op", Role.OPERATOR)
    for bad in ("../../etc/passwd", "/etc/passwd", "recordings/../../vigil.db", "a\\..\\b"):
        with api.db.session() as session:
            session.execute(update(SegmentRow).where(SegmentRow.id == seg_id).values(path=bad))
        assert client.get(f"/api/recordings/{seg_id}/media").status_code == 404, bad


@pytest.mark.parametrize("name", [
    "..%2F..%2Fvigil.db", "%2E%2E%2Fvigil.db", "..", "%2Fetc%2Fpasswd", "..%5Cvigil.db",
    "x.mp4%00.json", ".hidden.mp4", "a..b.mp4",
])  # fmt: skip
def test_export_name_traversal(api: Api, name: str) -> None:
    (api.data_dir / "exports").mkdir(parents=True)
    (api.data_dir / "vigil.db").write_text("secret")
    client = api.login("root", Role.ADMIN)
    for suffix in ("", "/manifest"):
        reply = client.get(f"/api/exports/{name}{suffix}")
        assert reply.status_code in (404, 422), (name, reply.status_code)
        assert b"secret" not in reply.content


@pytest.mark.parametrize("camera", ["..%2F..%2Fetc", "%2E%2E", "..", "a%2Fb", "%00"])
def test_camera_name_traversal(api: Api, camera: str) -> None:
    client = api.login("root", Role.ADMIN)
    for path in (f"/api/cameras/{camera}/snapshot", f"/api/config/cameras/{camera}/rules"):
        assert client.get(path).status_code in (404, 422), path
    reply = client.post("/api/exports", json={"camera": camera.replace("%2F", "/"),
                                               "start": T0, "end": T0 + 1})  # fmt: skip
    assert reply.status_code in (403, 404, 422)


def test_redacted_export_for_viewer_is_signed_and_downloadable(api: Api) -> None:
    api.add_segment("front", T0)
    api.add_segment("front", T0 + 2)
    viewer = api.login("val", Role.VIEWER)
    made = viewer.post("/api/exports", json={"camera": "front", "start": T0 + 0.5,
                                              "end": T0 + 3.5})  # fmt: skip
    assert made.status_code == 202, made.text
    job = wait_job(viewer, made.json())
    assert job["state"] == "done", job
    body = job["result"]
    assert body["redaction"] == "faces"
    assert body["frames"] > 0
    manifest = viewer.get(body["manifest_url"]).json()
    assert manifest["camera"] == "front"
    assert manifest["redaction"]["mode"] == "faces"
    file = api.data_dir / "exports" / body["name"]
    key = load_or_create_key(api.data_dir / "keys" / "export_ed25519.pem").public_key()
    assert verify_export(file, trusted_key=key).ok
    part = viewer.get(body["url"], headers={"Range": "bytes=0-9"})
    assert part.status_code == 206
    assert part.content == file.read_bytes()[:10]
    with av.open(str(file)) as container:
        assert container.streams.video[0].width == 96
    assert {"export.create", "export.read"} <= set(_actions(api))


def test_unredacted_export_needs_operator_and_reason(api: Api) -> None:
    api.add_segment("front", T0)
    request = {"camera": "front", "start": T0, "end": T0 + 1.5, "unredacted": True}
    viewer = api.login("val", Role.VIEWER)
    assert viewer.post("/api/exports", json={**request, "reason": "court"}).status_code == 403
    operator = api.login("op", Role.OPERATOR)
    no_reason = operator.post("/api/exports", json=request)
    assert no_reason.status_code == 403
    assert "reason" in no_reason.json()["error"]["message"]
    made = operator.post("/api/exports", json={**request, "reason": "police request 118"})
    assert made.status_code == 202
    result = wait_job(operator, made.json())["result"]
    assert result["redaction"] == "none"
    # A viewer may not download an unredacted export, nor see the operator's job.
    assert viewer.get(result["url"]).status_code == 403
    assert viewer.get(made.json()["url"]).status_code == 404
    with api.db.session() as session:
        rows = AuditRepo(session).records(action="export.create")
    assert rows[-1].reason == "police request 118"
    assert rows[-1].actor == "op"


def test_export_without_recordings_is_404(api: Api) -> None:
    client = api.login("op", Role.OPERATOR)
    reply = client.post("/api/exports", json={"camera": "front", "start": T0, "end": T0 + 5})
    assert reply.status_code == 404
    assert reply.json()["error"]["code"] == "no_media"
