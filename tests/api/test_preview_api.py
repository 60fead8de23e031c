"""``GET /api/recordings/{camera}/preview?at=``: the nearest redacted preview thumbnail."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import cv2
import numpy as np

from tests.api.conftest import T0, Api
from vigil.record.layout import segment_path
from vigil.record.previews import preview_dir, save_previews
from vigil.store import AuditRepo, Role, SegmentRepo

URL = "/api/recordings/front/preview"


def _jpeg(value: int) -> bytes:
    ok, data = cv2.imencode(".jpg", np.full((18, 32, 3), value, np.uint8))
    assert ok
    return bytes(data.tobytes())


def add_previewed_segment(api: Api, camera: str, start: float, offsets: list[int]) -> str:
    """A segment row of ``camera`` at ``start`` whose previews at ``offsets`` (ms) are real
    JPEG files of grey level offset/100; returns the segment's relative path."""
    path = segment_path(api.data_dir / "recordings", camera, start)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not played here")
    relative = path.relative_to(api.data_dir).as_posix()
    got = save_previews(api.data_dir, relative, start,
                        [(start + o / 1000, _jpeg(o // 100)) for o in offsets])  # fmt: skip
    with api.db.session() as session:
        SegmentRepo(session).add(camera=camera, path=relative, start=start, end=start + 10,
                                 size=15, sha256=hashlib.sha256(b"x").hexdigest(),
                                 previews=got.column(), preview_bytes=got.size)  # fmt: skip
    return relative


def test_the_nearest_preview_is_served_with_a_private_cache(api: Api) -> None:
    relative = add_previewed_segment(api, "front", T0, [0, 2000, 4000])
    viewer = api.login("val", Role.VIEWER)
    reply = viewer.get(URL, params={"at": T0 + 2.7})
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "image/jpeg"
    assert reply.content == (api.data_dir / preview_dir(relative) / "2000.jpg").read_bytes()
    assert reply.headers["cache-control"] == "private, max-age=600"
    assert float(reply.headers["x-preview-time"]) == T0 + 2.0
    assert viewer.get(URL, params={"at": T0 + 3.2}).content != reply.content, "4000.jpg"
    listed = viewer.get("/api/recordings", params={"camera": "front"}).json()
    assert [s["preview_offsets"] for s in listed] == [[0, 2000, 4000]]


def test_no_preview_near_the_time_is_404_not_cached(api: Api) -> None:
    add_previewed_segment(api, "front", T0, [0, 2000])
    viewer = api.login("val", Role.VIEWER)
    reply = viewer.get(URL, params={"at": T0 + 60})
    assert reply.status_code == 404
    assert reply.headers["cache-control"] == "no-store"
    assert viewer.get(URL, params={"at": -1}).status_code == 422
    assert viewer.get(URL).status_code == 422


def test_previews_need_a_login_and_the_camera_in_scope(api: Api) -> None:
    add_previewed_segment(api, "front", T0, [0])
    assert api.client().get(URL, params={"at": T0}).status_code == 401
    scoped = api.login("bea", Role.VIEWER, cameras=["back"])
    assert scoped.get(URL, params={"at": T0}).status_code == 403


def test_one_audit_record_per_user_and_camera_for_a_hover(api: Api) -> None:
    add_previewed_segment(api, "front", T0, [0, 2000, 4000])
    viewer = api.login("val", Role.VIEWER)
    for k in range(5):
        assert viewer.get(URL, params={"at": T0 + k}).status_code == 200
    with api.db.session() as session:
        records = [r for r in AuditRepo(session).records(actor="val")
                   if r.action == "recording.preview"]  # fmt: skip
    assert len(records) == 1
    assert records[0].target == "front"


def test_a_preview_escaping_the_media_folder_is_not_served(api: Api, tmp_path: Path) -> None:
    """A symlinked preview folder (or a tampered row) cannot reach files outside previews/."""
    relative = add_previewed_segment(api, "front", T0, [0])
    folder = api.data_dir / preview_dir(relative)
    (folder / "0.jpg").unlink()
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(_jpeg(9))
    os.symlink(secret, folder / "0.jpg")
    viewer = api.login("val", Role.VIEWER)
    assert viewer.get(URL, params={"at": T0}).status_code == 404
    with api.db.session() as session:
        SegmentRepo(session).add(camera="front", path="snapshots/x.mp4", start=T0 + 100,
                                 end=T0 + 110, size=1, sha256="ab" * 32,
                                 previews="0", preview_bytes=1)  # fmt: skip
    assert viewer.get(URL, params={"at": T0 + 100}).status_code == 404
