"""Every path where pixels leave the API follows the camera's own ``redact:`` settings, and
static masks apply to unredacted output too. Measured on the pixels, over real HTTP (uvicorn).

The configuration is YAML through ``parse_config`` and ``vigil serve``'s ``api_settings``:
camera ``front`` has its own mask over the left half, ``back`` only the global settings (no
mask). A masked half must come out black (the mask's fill), the other half as it was.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import av
import cv2
import httpx
import numpy as np
import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from fastapi.testclient import TestClient

from tests.api.conftest import T0, Api, build_api
from tests.api.test_events import _decode, add_event
from tests.api.test_http_server import _serve
from tests.api.test_live_view import http_login, read_parts
from vigil.commands.serve import api_settings
from vigil.config.loader import parse_config
from vigil.config.models import RedactConfig
from vigil.privacy import FaceDetector, Redactor, build_redactor
from vigil.store import Database, Role
from vigil.types import ImageArray

CONFIG = """
redact: {mode: faces, style: blur}
server: {secure_cookies: false}
cameras:
  front:
    sources: [{url: "synthetic://"}]
    redact: {masks: [[[0, 0], [0.5, 0], [0.5, 1], [0, 1]]]}
  back:
    sources: [{url: "synthetic://"}]
"""
BRIGHT = 200
REASON = {"unredacted": "true", "reason": "incident 12"}


@pytest.fixture
def masked_api(tmp_path: Path, face_detector: FaceDetector) -> Iterator[Api]:
    db = Database(f"sqlite:///{tmp_path / 'vigil.db'}")
    db.migrate()
    settings = api_settings(parse_config(CONFIG))

    def factory(config: RedactConfig, size: tuple[int, int]) -> Redactor:
        return build_redactor(config, size, face_detector=face_detector)

    api = build_api(db, tmp_path / "data", factory, redact=settings.redact,
                    camera_redact=settings.camera_redact)  # fmt: skip
    frame = np.full((96, 160, 3), BRIGHT, np.uint8)
    api.runtime.set_frame("front", frame, time=T0)
    api.runtime.set_frame("back", frame, time=T0)
    api.add_user("val", Role.VIEWER)
    api.add_user("op", Role.OPERATOR)
    yield api
    api.close()
    db.close()


@pytest.fixture
def base_url(masked_api: Api) -> Iterator[str]:
    yield from _serve(masked_api)


def get_clip(client: httpx.Client | TestClient, url: str, **kwargs: Any) -> Any:
    """GET an event clip, asking again while its job prepares it (202)."""
    deadline = time.monotonic() + 300
    while (reply := client.get(url, **kwargs)).status_code == 202:
        assert time.monotonic() < deadline, f"clip still {reply.json()['state']} after 300 s"
        time.sleep(0.2)
    return reply


@contextmanager
def viewer_and_operator(base_url: str) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    with closing(http_login(base_url, "val")) as viewer, closing(http_login(base_url, "op")) as op:
        yield viewer, op


def halves(image: ImageArray) -> tuple[float, float]:
    """Mean brightness of the left and right half, a few pixels off the middle (JPEG and
    H.264 ring at a hard edge)."""
    middle = image.shape[1] // 2
    return float(image[:, : middle - 4].mean()), float(image[:, middle + 4 :].mean())


def video_frames(data: bytes, tmp_path: Path) -> list[ImageArray]:
    path = tmp_path / "served.mp4"
    path.write_bytes(data)
    with av.open(str(path)) as container:
        return [np.ascontiguousarray(f.to_ndarray(format="bgr24"))
                for f in container.decode(video=0)]  # fmt: skip


def assert_masked(frames: list[ImageArray], *, other: float, what: str) -> None:
    """Every frame's left half black, its right half about ``other``."""
    assert frames, what
    for image in frames:
        left, right = halves(image)
        assert left < 8, f"{what}: the masked half has mean brightness {left:.0f}"
        assert abs(right - other) < 40, f"{what}: the unmasked half is {right:.0f}"


def test_camera_snapshot_follows_the_cameras_mask_redacted_and_unredacted(
    masked_api: Api, base_url: str
) -> None:
    with viewer_and_operator(base_url) as (viewer, operator):
        replies = {
            "viewer": viewer.get("/api/cameras/front/snapshot"),
            "unredacted": operator.get("/api/cameras/front/snapshot", params=REASON),
        }
        for what, reply in replies.items():
            assert reply.status_code == 200, reply.text
            assert_masked([_decode(reply.content)], other=BRIGHT, what=what)
        back = viewer.get("/api/cameras/back/snapshot")
        assert back.status_code == 200
        assert min(halves(_decode(back.content))) > BRIGHT - 10, "back has no mask of its own"


def test_event_snapshot_follows_the_cameras_mask(masked_api: Api, base_url: str) -> None:
    folder = masked_api.data_dir / "snapshots" / "front"
    folder.mkdir(parents=True)
    assert cv2.imwrite(str(folder / "e1.jpg"), np.full((96, 160, 3), BRIGHT, np.uint8))
    add_event(masked_api, "e1", snapshot="snapshots/front/e1.jpg")
    with viewer_and_operator(base_url) as (viewer, operator):
        for what, reply in {
            "viewer": viewer.get("/api/events/e1/snapshot"),
            "unredacted": operator.get("/api/events/e1/snapshot", params=REASON),
        }.items():
            assert reply.status_code == 200, reply.text
            assert_masked([_decode(reply.content)], other=BRIGHT, what=what)


@pytest.mark.parametrize("unredacted", [False, True])
def test_live_stream_follows_the_cameras_mask(
    masked_api: Api, base_url: str, unredacted: bool
) -> None:
    params: dict[str, Any] = {}
    with closing(http_login(base_url, "op" if unredacted else "val")) as client:
        if unredacted:
            made = client.post("/api/cameras/front/live/unredacted", json={"reason": "x 12"})
            params["grant"] = made.json()["grant"]
        with client.stream("GET", "/api/cameras/front/live.mjpeg", params=params) as reply:
            assert reply.status_code == 200
            (jpeg,) = read_parts(reply.iter_bytes(), 1)
    assert_masked([_decode(jpeg)], other=BRIGHT, what="unredacted" if unredacted else "viewer")


def test_event_clip_follows_the_cameras_mask(
    masked_api: Api, base_url: str, tmp_path: Path
) -> None:
    masked_api.add_segment("front", T0)
    add_event(masked_api, "e2")
    with viewer_and_operator(base_url) as (viewer, operator):
        for what, reply in {
            "viewer": get_clip(viewer, "/api/events/e2/clip"),
            "unredacted": get_clip(operator, "/api/events/e2/clip", params=REASON),
        }.items():
            assert reply.status_code == 200, reply.text
            # The segment is noise of mean ~127: the right half keeps it, the left is black.
            assert_masked(video_frames(reply.content, tmp_path), other=127, what=what)


def export(client: httpx.Client, camera: str, **extra: object) -> tuple[bytes, dict[str, Any]]:
    made = client.post("/api/exports", json={"camera": camera, "start": T0, "end": T0 + 2,
                                             **extra})  # fmt: skip
    assert made.status_code == 202, made.text
    job = made.json()
    deadline = time.monotonic() + 300
    while job["state"] in ("queued", "running"):  # the export is a job: follow it
        assert time.monotonic() < deadline, f"export still {job['state']} after 300 s"
        time.sleep(0.2)
        job = client.get(job["url"]).json()
    assert job["state"] == "done", job
    body = job["result"]
    video = client.get(body["url"])
    assert video.status_code == 200, video.text
    return video.content, client.get(body["manifest_url"]).json()


def test_exports_follow_the_cameras_mask_and_say_so(
    masked_api: Api, base_url: str, tmp_path: Path
) -> None:
    masked_api.add_segment("front", T0)
    masked_api.add_segment("back", T0)
    with viewer_and_operator(base_url) as (viewer, operator):
        data, manifest = export(viewer, "front")
        assert_masked(video_frames(data, tmp_path), other=127, what="redacted export")
        assert manifest["redaction"] == {"mode": "faces", "static_masks": 1}
        data, manifest = export(operator, "front", unredacted=True, reason="incident 12")
        assert_masked(video_frames(data, tmp_path), other=127, what="unredacted export")
        assert manifest["redaction"]["mode"] == "none"
        assert manifest["redaction"]["static_masks"] == 1
        assert manifest["redaction"]["reason"] == "incident 12"
        # Without a mask of its own, an unredacted export stays the recording's stream copy.
        data, manifest = export(operator, "back", unredacted=True, reason="incident 12")
        assert manifest["redaction"]["static_masks"] == 0
        assert min(halves(video_frames(data, tmp_path)[0])) > 60


def test_a_clip_cut_before_a_mask_was_configured_is_cut_again(
    tmp_path: Path, face_detector: FaceDetector
) -> None:
    """The clip cache outlives a restart: a new mask must not be served an old clip."""
    db = Database(f"sqlite:///{tmp_path / 'vigil.db'}")
    db.migrate()

    def factory(config: RedactConfig, size: tuple[int, int]) -> Redactor:
        return build_redactor(config, size, face_detector=face_detector)

    settings = api_settings(parse_config(CONFIG))
    # One server after the other (a restart): two at once would share the job queue.
    before = build_api(db, tmp_path / "data", factory)
    try:
        before.add_segment("front", T0)
        add_event(before, "e3")
        before.add_user("val", Role.VIEWER)
        first = get_clip(before.login("val"), "/api/events/e3/clip")
        assert first.status_code == 200
        assert min(halves(video_frames(first.content, tmp_path)[0])) > 60, "no mask yet"
    finally:
        before.close()
    after = build_api(db, tmp_path / "data", factory, redact=settings.redact,
                      camera_redact=settings.camera_redact)  # fmt: skip
    try:
        second = get_clip(after.login("val"), "/api/events/e3/clip")
        assert second.status_code == 200
        assert second.headers["x-vigil-clip-cache"] == "miss"
        assert_masked(video_frames(second.content, tmp_path), other=127, what="after restart")
    finally:
        after.close()
        db.close()


def test_segment_playback_of_a_masked_camera_is_masked(
    masked_api: Api, base_url: str, tmp_path: Path
) -> None:
    """Operators play recorded segments as they are, except where a static mask lies."""
    front, _ = masked_api.add_segment("front", T0)
    back, back_path = masked_api.add_segment("back", T0)
    with viewer_and_operator(base_url) as (_, operator):
        played = operator.get(f"/api/recordings/{front}/media")
        assert played.status_code == 200, played.text
        assert_masked(video_frames(played.content, tmp_path), other=127, what="segment")
        again = operator.get(f"/api/recordings/{front}/media", headers={"Range": "bytes=0-99"})
        assert again.status_code == 206
        assert again.content == played.content[:100], "cut once, then served from the cache"
        plain = operator.get(f"/api/recordings/{back}/media")
        assert plain.content == back_path.read_bytes(), "no mask: the recording itself"
