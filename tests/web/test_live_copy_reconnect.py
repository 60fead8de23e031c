"""The copied unredacted live view in Chromium survives the camera reconnecting: a real
``vigil serve`` with its own RTSP camera (the test relay), whose publisher is stopped and
started again while the camera page plays the granted view. The server goes on on the same
WebSocket (its clock continued; a new head and init segment only where the camera's
parameters changed, which ``mse.js`` appends to the same ``SourceBuffer``) and the video
plays on, with no second socket (no reconnect).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.alerts.alert_servers import free_port
from tests.conftest import require_file
from tests.rtsp_relay import RtspRelay, require_tools
from tests.web.conftest import (
    CLIP,
    Pages,
    Server,
    checked_pages,
    login,
    serve_with_admin,
    wait_until,
)
from vigil.paths import shared_data_dir

CONFIG = """
detect: {{model: motion, fps: 5}}
data_dir: "{data}"
record: {{mode: continuous, segment_seconds: 2}}
server: {{host: 127.0.0.1, port: {port}, secure_cookies: false}}
cameras:
  door:
    sources: [{{url: "{url}", options: {{rtsp_transport: udp}}}}]
"""


@pytest.fixture(scope="module")
def relay() -> Iterator[RtspRelay]:
    require_tools("rtsp-server-perl", "ffmpeg")
    camera = RtspRelay(require_file(shared_data_dir() / "clips" / CLIP))
    camera.publish()
    time.sleep(1.5)  # the publisher announces the stream
    try:
        yield camera
    finally:
        camera.stop()


@pytest.fixture(scope="module")
def own_server(tmp_path_factory: pytest.TempPathFactory, relay: RtspRelay) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("web-reconnect")
    port = free_port()
    config = root / "vigil.yaml"
    config.write_text(CONFIG.format(data=root / "data", port=port, url=relay.url))
    with serve_with_admin(root, config, port) as served:
        yield served


@pytest.fixture
def own_pages(browser: Any, own_server: Server) -> Iterator[Pages]:
    yield from checked_pages(browser, own_server)


def test_the_copied_view_plays_on_over_a_camera_reconnect(
    own_pages: Pages, relay: RtspRelay
) -> None:
    page = own_pages.open()
    login(page, "ada")
    sockets: list[Any] = []
    heads: list[dict[str, Any]] = []

    def on_socket(ws: Any) -> None:
        if "live.mp4ws" in ws.url and "grant=" in ws.url:
            sockets.append(ws)
            ws.on(
                "framereceived",
                lambda data: heads.append(json.loads(data)) if isinstance(data, str) else None,
            )

    def recording() -> bool:  # the copy needs the recorder connected (else: re-encoded)
        cameras = page.request.get("/api/cameras").json()
        return bool(cameras) and cameras[0]["recording"] == "recording"

    wait_until(recording, 60, "the camera records")
    page.on("websocket", on_socket)
    page.goto("/#/live/door")
    page.locator("#unredact").click()
    page.get_by_label("Reason (audited)").fill("checking the door camera's reconnect")
    page.get_by_role("button", name="Continue").click()
    video = page.locator("video.stream.large")

    def now() -> float:
        return float(video.evaluate("v => v.currentTime"))

    def said() -> bool:
        page.wait_for_timeout(200)  # the sync API delivers the socket's events only in a call
        return bool(heads)

    wait_until(said, 90, "the unredacted stream said what it sends")
    assert heads[0]["mode"] == "copy", heads
    start = now()
    wait_until(lambda: now() > start + 2, 30, "the copied stream plays")
    relay.unpublish()
    time.sleep(1.0)
    relay.publish()
    away = now()  # what played before the camera came back (the player holds 0.5 s at most)
    wait_until(lambda: now() > away + 3, 120, "the video plays on after the reconnect")
    assert len(sockets) == 1, f"the player opened {len(sockets)} unredacted sockets"
    assert not sockets[0].is_closed()
