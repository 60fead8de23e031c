"""The copied unredacted live view in Chromium survives the camera reconnecting: a real
``vigil serve`` with its own RTSP camera (the test relay), whose publisher is stopped and
started again while the camera page plays the granted view. The server goes on on the same
WebSocket (its clock continued; a new head and init segment only where the camera's
parameters changed, which ``mse.js`` appends to the same ``SourceBuffer``) and the video
plays on, with no second socket (no reconnect). The camera may also come back with another
stream (issue 10 §4: another profile and size): the new head's codec string differs, the
player calls ``changeType``, and the video plays on at the new size.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
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


def watch_sockets(page: Any) -> tuple[list[Any], list[dict[str, Any]]]:
    """The page's unredacted live sockets (from now on) and the heads they brought, once the
    camera records (the copy needs its recorder connected; else it is re-encoded)."""
    sockets: list[Any] = []
    heads: list[dict[str, Any]] = []

    def on_socket(ws: Any) -> None:
        if "live.mp4ws" in ws.url and "grant=" in ws.url:
            sockets.append(ws)
            ws.on(
                "framereceived",
                lambda data: heads.append(json.loads(data)) if isinstance(data, str) else None,
            )

    def recording() -> bool:
        cameras = page.request.get("/api/cameras").json()
        return bool(cameras) and cameras[0]["recording"] == "recording"

    wait_until(recording, 60, "the camera records")
    page.on("websocket", on_socket)
    return sockets, heads


def said(page: Any, heads: list[dict[str, Any]]) -> bool:
    page.wait_for_timeout(200)  # the sync API delivers the socket's events only in a call
    return bool(heads)


def test_the_copied_view_plays_on_over_a_camera_reconnect(
    own_pages: Pages, relay: RtspRelay
) -> None:
    page = own_pages.open()
    login(page, "ada")
    sockets, heads = watch_sockets(page)
    page.goto("/#/live/door")
    page.locator("#unredact").click()
    page.get_by_label("Reason (audited)").fill("checking the door camera's reconnect")
    page.get_by_role("button", name="Continue").click()
    video = page.locator("video.stream.large")

    def now() -> float:
        return float(video.evaluate("v => v.currentTime"))

    wait_until(lambda: said(page, heads), 90, "the unredacted stream said what it sends")
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


def test_the_copied_view_plays_on_over_a_codec_and_resolution_change(
    own_pages: Pages, relay: RtspRelay, tmp_path: Path
) -> None:
    """The camera comes back with another profile and size (its publisher restarted with
    another stream: Baseline 640x360 after Main 768x432): the same socket brings a new head
    whose codec string differs, ``mse.js`` calls ``changeType`` and appends the new init
    segment, and the <video> plays on at the new size, with no MediaSource error."""
    other = tmp_path / "baseline-640x360.mp4"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i",
                    "testsrc2=size=640x360:rate=10", "-t", "20", "-c:v", "libx264",
                    "-profile:v", "baseline", "-pix_fmt", "yuv420p", "-g", "10",
                    str(other)], check=True)  # fmt: skip
    page = own_pages.open()
    # Which types the player switched its SourceBuffer to (Chromium plays some profile
    # changes without changeType, so the pictures alone would not tell).
    page.add_init_script("""
        window.changedTypes = [];
        const own = SourceBuffer.prototype.changeType;
        SourceBuffer.prototype.changeType = function (type) {
          window.changedTypes.push(type);
          return own.call(this, type);
        };
    """)
    login(page, "ada")
    sockets, heads = watch_sockets(page)
    page.goto("/#/live/door")
    page.locator("#unredact").click()
    page.get_by_label("Reason (audited)").fill("checking the door camera's new stream")
    page.get_by_role("button", name="Continue").click()
    video = page.locator("video.stream.large")

    def now() -> float:
        return float(video.evaluate("v => v.currentTime"))

    def width() -> int:
        return int(video.evaluate("v => v.videoWidth"))

    wait_until(lambda: said(page, heads), 90, "the unredacted stream said what it sends")
    assert heads[0]["mode"] == "copy", heads
    first = heads[0]["codec"]
    wait_until(lambda: width() == 768, 30, "the camera's own size shows")
    start = now()
    wait_until(lambda: now() > start + 2, 30, "the copied stream plays")
    original = relay.clip
    relay.unpublish()
    relay.clip = other
    try:
        time.sleep(1.0)
        relay.publish()
        wait_until(lambda: said(page, heads) and heads[-1]["codec"] != first, 120,
                   "the new stream's head came")  # fmt: skip
        wait_until(lambda: width() == 640, 60, "the video shows the new size")
        changed = now()
        wait_until(lambda: now() > changed + 3, 60, "the video plays on at the new size")
        assert video.evaluate("v => v.error && v.error.message") is None
        assert page.evaluate("window.changedTypes") == [heads[-1]["mime"]]
        assert video.get_attribute("title") in (None, ""), video.get_attribute("title")
    finally:
        relay.unpublish()
        relay.clip = original
        relay.publish()
    assert first == "avc1.4D401F", first  # the clip's Main profile
    assert heads[-1]["codec"].startswith("avc1.42"), heads[-1]  # Baseline
    assert len(sockets) == 1, f"the player opened {len(sockets)} unredacted sockets"
    assert not sockets[0].is_closed()
