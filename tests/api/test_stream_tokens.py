"""Stream tokens (Home Assistant's ``mjpeg`` camera): a token scoped to one camera's live view
opens its redacted MJPEG and still URLs, over real HTTP, and nothing else: no other route,
no other camera, no unredacted pixels; its uses are audited and revoking it ends them.

Redaction is made visible with a face detector that always "finds" a face in the top right
corner (style ``fill``: that corner goes black when redacted) and the camera's static mask
over the left half (black in every output, redacted or not).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import httpx
import numpy as np
import pytest
from sqlalchemy import select
from starlette.websockets import WebSocketDisconnect

from tests.api.conftest import T0, Api, build_api
from tests.api.test_events import _decode
from tests.api.test_http_server import _serve
from tests.api.test_live_view import http_login, read_parts
from vigil.commands.serve import api_settings
from vigil.config.loader import parse_config
from vigil.config.models import RedactConfig
from vigil.privacy import Redactor
from vigil.store import Database, Role
from vigil.store.models import AuditRow
from vigil.types import FloatArray, ImageArray

CONFIG = """
redact: {mode: faces, style: fill, margin: 0}
server: {secure_cookies: false}
cameras:
  front:
    sources: [{url: "synthetic://"}]
    redact: {masks: [[[0, 0], [0.5, 0], [0.5, 1], [0, 1]]]}
  back:
    sources: [{url: "synthetic://"}]
"""
BRIGHT = 200
W, H = 160, 96


class CornerFace:
    """A face detector that sees a face in the top right corner of every image."""

    def detect(self, image: ImageArray) -> FloatArray:
        h, w = image.shape[:2]
        return np.array([[w * 0.75, 0, w, h * 0.4, 0.99]], np.float32)


@pytest.fixture
def stream_api(tmp_path: Path) -> Iterator[Api]:
    db = Database(f"sqlite:///{tmp_path / 'vigil.db'}")
    db.migrate()
    settings = api_settings(parse_config(CONFIG))

    def factory(config: RedactConfig, size: tuple[int, int]) -> Redactor:
        return Redactor(config, size, face_detector=CornerFace())

    api = build_api(db, tmp_path / "data", factory, redact=settings.redact,
                    camera_redact=settings.camera_redact)  # fmt: skip
    frame = np.full((H, W, 3), BRIGHT, np.uint8)
    api.runtime.set_frame("front", frame, time=T0)
    api.runtime.set_frame("back", frame, time=T0)
    api.add_user("val", Role.VIEWER)
    api.add_user("op", Role.OPERATOR)
    api.add_user("frontonly", Role.VIEWER, cameras=["front"])
    yield api
    db.close()


@pytest.fixture
def base_url(stream_api: Api) -> Iterator[str]:
    yield from _serve(stream_api)


def regions(image: ImageArray) -> tuple[float, float, float]:
    """Mean brightness of the masked left half, the "face" corner and the rest of the right."""
    h, w = image.shape[:2]
    left = float(image[:, : w // 2 - 4].mean())
    corner = float(image[: int(h * 0.4) - 4, int(w * 0.75) + 4 :].mean())
    rest = float(image[int(h * 0.4) + 4 :, w // 2 + 4 :].mean())
    return left, corner, rest


def assert_redacted(image: ImageArray, what: str) -> None:
    left, corner, rest = regions(image)
    assert left < 8, f"{what}: the static mask is not black ({left:.0f})"
    assert corner < 8, f"{what}: the face is not hidden ({corner:.0f})"
    assert rest > BRIGHT - 30, f"{what}: the rest is not shown ({rest:.0f})"


def mint(client: httpx.Client, camera: str = "front") -> dict[str, object]:
    reply = client.post(f"/api/cameras/{camera}/stream-token", json={"name": "home assistant"})
    assert reply.status_code == 201, reply.text
    body: dict[str, object] = reply.json()
    return body


def first_part(client: httpx.Client, url: str) -> bytes:
    with client.stream("GET", url) as reply:
        assert reply.status_code == 200, reply.read()
        (jpeg,) = read_parts(reply.iter_bytes(), 1)
    return jpeg


def test_the_stream_urls_show_the_camera_redacted_and_are_audited(
    stream_api: Api, base_url: str
) -> None:
    with closing(http_login(base_url, "op")) as operator:
        made = mint(operator)
        # The operator's own unredacted view shows the corner: redaction is what hides it.
        grant = operator.post("/api/cameras/front/live/unredacted", json={"reason": "x 12"})
        unredacted = first_part(operator, f"/api/cameras/front/live.mjpeg?grant="
                                          f"{grant.json()['grant']}")  # fmt: skip
        assert regions(_decode(unredacted))[1] > BRIGHT - 30
    assert made["camera"] == "front"
    with httpx.Client(base_url=base_url, timeout=10) as ha:  # no cookie, no header: the URL
        still = ha.get(str(made["still_image_url"]))
        assert still.status_code == 200, still.text
        assert still.headers["content-type"] == "image/jpeg"
        assert_redacted(_decode(still.content), "still")
        assert_redacted(_decode(first_part(ha, str(made["mjpeg_url"]))), "mjpeg")
        # Asking for more changes nothing: there is no way to unredacted pixels here.
        sneaky = ha.get(f"{made['still_image_url']}&grant={grant.json()['grant']}"
                        "&unredacted=true&reason=x&overlay=true")  # fmt: skip
        assert sneaky.status_code == 200
        assert_redacted(_decode(sneaky.content), "still with grant")
    with stream_api.db.session() as session:
        rows = session.scalars(select(AuditRow).where(AuditRow.actor == "op")).all()
        media = [(r.action, r.details) for r in rows if (r.details or {}).get("via")]
    assert [a for a, _ in media] == ["camera.snapshot", "camera.live", "camera.snapshot"]
    assert all(d["redacted"] is True for _, d in media)


def test_a_stream_token_opens_nothing_else(stream_api: Api, base_url: str) -> None:
    with closing(http_login(base_url, "val")) as viewer:
        made = mint(viewer)
        token = str(made["token"])
        full = viewer.post("/api/tokens", json={"name": "full"}).json()["token"]
    bearer = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base_url, timeout=10) as other:
        for path in ("/api/events", "/api/cameras", "/api/cameras/front/snapshot",
                     "/api/me", "/metrics", "/api/tokens"):  # fmt: skip
            assert other.get(path, headers=bearer).status_code == 401, path
        with other.stream("GET", "/api/cameras/front/live.mjpeg", headers=bearer) as reply:
            assert reply.status_code == 401
        assert other.post("/api/tokens", headers=bearer, json={"name": "x"}).status_code == 401
        # Another camera's stream, a full API token, no token, a made-up one: refused.
        assert other.get(f"/api/stream/back/still.jpg?token={token}").status_code == 401
        assert other.get(f"/api/stream/front/still.jpg?token={full}").status_code == 401
        assert other.get("/api/stream/front/still.jpg?token=nope").status_code == 401
        assert other.get("/api/stream/front/still.jpg").status_code == 401
    with (
        pytest.raises(WebSocketDisconnect),
        stream_api.client().websocket_connect(f"/api/ws/events?token={token}") as ws,
    ):
        ws.receive_json()


def test_only_password_logins_who_see_the_camera_mint_and_revoking_ends_the_url(
    stream_api: Api, base_url: str
) -> None:
    with closing(http_login(base_url, "frontonly")) as limited:
        assert limited.post("/api/cameras/back/stream-token",
                            json={"name": "x"}).status_code == 404  # fmt: skip
        made = mint(limited)
        full = limited.post("/api/tokens", json={"name": "machine"}).json()["token"]
        listed = {t["id"]: t for t in limited.get("/api/tokens").json()}
        assert listed[made["id"]]["scope"] == "live:front"
        with httpx.Client(base_url=base_url, timeout=10) as machine:
            reply = machine.post("/api/cameras/front/stream-token", json={"name": "x"},
                                 headers={"Authorization": f"Bearer {full}"})  # fmt: skip
            assert reply.status_code == 403, "a token cannot mint more tokens"
            assert machine.get(str(made["still_image_url"])).status_code == 200
            with machine.stream("GET", str(made["mjpeg_url"])) as stream:
                assert stream.status_code == 200
                chunks = stream.iter_bytes()
                read_parts(chunks, 1)
                assert limited.delete(f"/api/tokens/{made['id']}").status_code == 204
                # The open stream re-checks its token: it ends (the client's read returns)
                # instead of streaming on after the revocation.
                for _ in chunks:
                    pass
            assert machine.get(str(made["still_image_url"])).status_code == 401
