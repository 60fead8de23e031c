"""Hardening of the API's edges: media confined to media folders, bounded integers, who reads
``/metrics``, security headers, no third-party docs page, the OpenAPI document's honesty."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from httpx import Response
from sqlalchemy import update

from tests.api.conftest import T0, Api
from tests.api.test_events import add_event
from vigil.store import EventRow, Role, SegmentRow

#: Files of the data directory that are not media: the export signing key, the database, the
#: local unredacted-access log. A database row naming one must not get it served.
NOT_MEDIA = ("keys/export_ed25519.pem", "vigil.db", "audit/unredacted.jsonl")
SECRET = b"not media: never served"


def _plant(data_dir: Path) -> None:
    for relative in NOT_MEDIA:
        path = data_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(SECRET)


@pytest.mark.parametrize("relative", [*NOT_MEDIA, "exports/x.mp4", "snapshots/front/x.mp4"])
def test_segment_rows_serve_only_recordings(api: Api, relative: str) -> None:
    seg_id, _ = api.add_segment("front", T0)
    _plant(api.data_dir)
    other = api.data_dir / relative
    other.parent.mkdir(parents=True, exist_ok=True)
    other.write_bytes(SECRET)
    with api.db.session() as session:
        session.execute(update(SegmentRow).where(SegmentRow.id == seg_id).values(path=relative))
    admin = api.login("root", Role.ADMIN)
    reply = admin.get(f"/api/recordings/{seg_id}/media")
    assert reply.status_code == 404, relative
    assert SECRET not in reply.content
    made = admin.post("/api/exports", json={"camera": "front", "start": T0, "end": T0 + 1})
    assert made.status_code == 404, (relative, made.text)
    add_event(api, "e1", start=T0)  # its clip would be cut from that row's file
    clip = admin.get("/api/events/e1/clip")
    assert clip.status_code == 404, (relative, clip.text)


def test_symlink_out_of_recordings_is_refused(api: Api) -> None:
    seg_id, path = api.add_segment("front", T0)
    _plant(api.data_dir)
    path.unlink()
    path.symlink_to(api.data_dir / "keys" / "export_ed25519.pem")
    reply = api.login("op", Role.OPERATOR).get(f"/api/recordings/{seg_id}/media")
    assert reply.status_code == 404
    assert SECRET not in reply.content


def test_recordings_folder_may_be_a_symlink(api: Api, tmp_path: Path) -> None:
    """A recordings folder on another disk (a symlink) still plays: the check is by folder."""
    seg_id, path = api.add_segment("front", T0)
    moved = tmp_path / "big-disk"
    (api.data_dir / "recordings").rename(moved)
    (api.data_dir / "recordings").symlink_to(moved)
    reply = api.login("op", Role.OPERATOR).get(f"/api/recordings/{seg_id}/media")
    assert reply.status_code == 200
    assert reply.content == (moved / path.relative_to(api.data_dir / "recordings")).read_bytes()


@pytest.mark.parametrize("relative", [*NOT_MEDIA, "recordings/front/x.jpg"])
def test_event_snapshot_rows_serve_only_snapshots(api: Api, relative: str) -> None:
    # A readable JPEG in the file's place: only the folder check can refuse it.
    ok, jpeg = cv2.imencode(".jpg", np.full((32, 32, 3), 200, np.uint8))
    assert ok
    add_event(api, "e1", snapshot=relative)
    (api.data_dir / relative).parent.mkdir(parents=True, exist_ok=True)
    (api.data_dir / relative).write_bytes(jpeg.tobytes())
    with api.db.session() as session:
        session.execute(update(EventRow).where(EventRow.id == "e1").values(snapshot_path=relative))
    reply = api.login("op", Role.OPERATOR).get("/api/events/e1/snapshot")
    assert reply.status_code == 404, relative


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def _integer_params(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for param in operation.get("parameters", []):
                schema = param["schema"]
                for option in schema.get("anyOf", [schema]):
                    if option.get("type") == "integer":
                        found.append((f"{method} {path}", param["name"], option))
    return found


def test_every_integer_parameter_is_bounded_to_int64(api: Api) -> None:
    """Integers reach the database as signed 64-bit values: every integer path or query
    parameter must declare bounds inside that range (a new one cannot forget)."""
    params = _integer_params(api.client().get("/api/openapi.json").json())
    assert {name for _, name, _ in params} >= {"segment_id", "after_seq", "limit"}
    for where, name, schema in params:
        assert schema.get("minimum", INT64_MIN - 1) >= INT64_MIN, (where, name)
        assert schema.get("maximum", INT64_MAX + 1) <= INT64_MAX, (where, name)


@pytest.mark.parametrize("url", [
    "/api/audit?after_seq=9223372036854775808",
    "/api/recordings/9223372036854775808/media",
    "/api/audit?after_seq=-9223372036854775809",
    "/api/recordings/-1/media",
])  # fmt: skip
def test_integers_beyond_int64_are_422(api: Api, url: str) -> None:
    reply = api.login("root", Role.ADMIN).get(url)
    assert reply.status_code == 422, reply.text
    assert reply.json()["error"]["code"] == "validation_error"


def test_largest_int64_is_accepted(api: Api) -> None:
    admin = api.login("root", Role.ADMIN)
    assert admin.get(f"/api/audit?after_seq={INT64_MAX}").json() == []
    assert admin.get(f"/api/recordings/{INT64_MAX}/media").status_code == 404


def test_every_string_id_in_a_path_is_bounded(api: Api) -> None:
    """An id in a path names one database row: its parameter declares a pattern or a length
    bound (so an unbounded string is a 422 the spec announces, not a lookup)."""
    spec = api.client().get("/api/openapi.json").json()
    ids = [(f"{method} {path}", param["name"], param["schema"])
           for path, operations in spec["paths"].items()
           for method, operation in operations.items()
           for param in operation.get("parameters", [])
           if param["in"] == "path" and param["name"].endswith("_id")
           and param["schema"].get("type") == "string"]  # fmt: skip
    assert {name for _, name, _ in ids} >= {"job_id", "event_id"}
    for where, name, schema in ids:
        assert "pattern" in schema or "maxLength" in schema, (where, name)


@pytest.mark.parametrize("job_id", ["x" * 10_000, "0" * 33, "ABCDEF" + "0" * 26, "zz"])
def test_a_job_id_that_cannot_be_one_is_422(api: Api, job_id: str) -> None:
    reply = api.login("val", Role.VIEWER).get(f"/api/jobs/{job_id}")
    assert reply.status_code == 422, reply.text[:200]
    assert reply.json()["error"]["code"] == "validation_error"


def test_a_job_id_of_the_right_form_is_looked_up(api: Api) -> None:
    viewer = api.login("val", Role.VIEWER)
    assert viewer.get(f"/api/jobs/{'0' * 32}").status_code == 404
    assert viewer.get(f"/api/events/{'e' * 65}").status_code == 422


def test_auditors_do_not_read_metrics(api: Api) -> None:
    """/metrics names every camera, its state and storage: the ``read`` capability, as
    /api/cameras; an auditor's role is the audit log only."""
    reply = api.login("ann", Role.AUDITOR).get("/metrics")
    assert reply.status_code == 403
    assert "vigil_camera" not in reply.text


def test_metrics_scrape_with_a_viewer_token(api: Api) -> None:
    viewer = api.login("prometheus", Role.VIEWER, cameras=["back"])
    token = viewer.post("/api/tokens", json={"name": "scrape"}).json()["token"]
    scraper = api.client()
    reply = scraper.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert reply.status_code == 200
    assert 'vigil_camera_online{camera="back"} 0.0' in reply.text
    assert 'camera="front"' not in reply.text


API_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
    "content-security-policy": "frame-ancestors 'none'",
}


def _has_api_headers(reply: Response, cache: str = "no-store") -> None:
    for name, value in API_HEADERS.items():
        assert reply.headers.get(name) == value, (str(reply.url), name)
    assert reply.headers.get("cache-control") == cache, str(reply.url)


def test_api_responses_carry_security_headers(api: Api) -> None:
    seg_id, _ = api.add_segment("front", T0)
    anonymous = api.client()
    _has_api_headers(anonymous.get("/api/health"))
    _has_api_headers(anonymous.get("/api/openapi.json"))
    _has_api_headers(anonymous.get("/api/events"))  # the 401 error
    _has_api_headers(anonymous.get("/api/no-such-route"))  # the 404 of the router
    admin = api.login("root", Role.ADMIN)
    _has_api_headers(admin.get("/api/events"))
    _has_api_headers(admin.get("/api/users"))
    _has_api_headers(admin.get("/metrics"))
    part = admin.get(f"/api/recordings/{seg_id}/media", headers={"Range": "bytes=0-9"})
    assert part.status_code == 206
    assert len(part.content) == 10
    _has_api_headers(part)
    _has_api_headers(admin.get("/api/cameras/front/snapshot"))


def test_ui_keeps_its_own_headers(api: Api) -> None:
    """The index keeps its ``no-cache`` and the UI's policy (vigil.web), not the API's."""
    from vigil.web import SECURITY_HEADERS

    index = api.client().get("/")
    assert index.headers["cache-control"] == "no-cache"
    assert index.headers["content-security-policy"] == SECURITY_HEADERS["Content-Security-Policy"]


def test_no_docs_page_from_a_cdn(api: Api) -> None:
    """FastAPI's Swagger UI page loads scripts from a CDN onto Vigil's origin: not served;
    the OpenAPI document is."""
    client = api.client()
    for path in ("/api/docs", "/api/docs/oauth2-redirect", "/docs", "/redoc"):
        reply = client.get(path)
        assert reply.status_code in (401, 404), path
        assert "cdn" not in reply.text.lower(), path
    assert client.get("/api/openapi.json").json()["info"]["title"] == "Vigil"
