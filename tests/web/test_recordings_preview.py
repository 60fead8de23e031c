"""The recordings timeline's hover previews in a real browser, against a real ``vigil serve``
whose camera is the face clip as a looping file (recorded in 2 s segments, previews made at
record time, redacted): hovering the recorded span shows the preview image and its time; a
sweep across the timeline asks for a bounded number of previews."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.alerts.alert_servers import free_port
from tests.conftest import require_file
from tests.rtsp_relay import require_tools
from tests.web.conftest import (
    Pages,
    Server,
    checked_pages,
    login,
    serve_with_admin,
    wait_until,
)
from vigil.paths import shared_data_dir

pytestmark = pytest.mark.slow

CONFIG = """
detect: {{model: motion, fps: 5}}
data_dir: "{data}"
record: {{mode: continuous, segment_seconds: 2, preview_interval: 1}}
server: {{host: 127.0.0.1, port: {port}, secure_cookies: false}}
cameras:
  lobby:
    sources: [{{url: "{clip}", loop: true}}]
"""


@pytest.fixture(scope="module")
def lobby(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    require_tools("ffmpeg")
    gif = require_file(shared_data_dir() / "clips" / "face-demographics-walking.gif")
    root = tmp_path_factory.mktemp("lobby")
    clip = root / "face.mp4"  # H.264: a recorder stream-copies, a GIF cannot go into an MP4
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(gif), "-c:v",
                    "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-r", "10", "-g",
                    "10", "-sc_threshold", "0", str(clip)], check=True)  # fmt: skip
    port = free_port()
    config = root / "vigil.yaml"
    config.write_text(CONFIG.format(data=root / "data", port=port, clip=clip))
    with serve_with_admin(root, config, port) as served:
        yield served


@pytest.fixture
def lobby_pages(browser: Any, lobby: Server) -> Iterator[Pages]:
    yield from checked_pages(browser, lobby)


def previewed_segments(page: Any) -> int:
    got = page.evaluate("""async () => {
      const r = await fetch('/api/recordings?camera=lobby');
      return r.ok ? (await r.json()).filter((s) => s.preview_offsets.length > 0).length : 0;
    }""")
    return int(got)


def previewed_span(page: Any) -> tuple[float, float]:
    """First and last preview time (UNIX s) of the camera's recordings."""
    got = page.evaluate("""async () => {
      const r = await fetch('/api/recordings?camera=lobby');
      const at = (await r.json()).flatMap((s) => s.preview_offsets.map((o) => s.start + o / 1000));
      return [Math.min(...at), Math.max(...at)];
    }""")
    return float(got[0]), float(got[1])


def test_hovering_the_timeline_shows_the_redacted_preview_and_its_time(
    lobby_pages: Pages, shots: Path
) -> None:
    page = lobby_pages.open()
    login(page, "ada")
    wait_until(lambda: previewed_segments(page) >= 4, 90, "four segments with previews")
    page.goto("/#/recordings?camera=lobby")
    page.get_by_text("segment(s)").wait_for()
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/preview?" in r.url else None)
    timeline = page.locator("#timeline")
    box = timeline.bounding_box()
    assert box is not None
    # The day opens zoomed on the recordings, centred unless that would start before
    # midnight (a run just after midnight): point at the middle of the previewed span.
    view = [float(v) for v in str(timeline.get_attribute("data-view")).split()]
    span = previewed_span(page)
    middle = box["x"] + box["width"] * ((span[0] + span[1]) / 2 - view[0]) / (view[1] - view[0])
    page.mouse.move(middle, box["y"] + 20)
    tip = page.locator("#preview-tip")
    tip.wait_for(state="visible")
    image = tip.locator("img")
    wait_until(lambda: bool(image.evaluate("(i) => i.complete && i.naturalWidth > 0")), 15,
               "the preview image did not load")  # fmt: skip
    assert image.evaluate("(i) => i.naturalWidth") == 320
    assert tip.locator(".preview-time").inner_text().count(":") == 2  # HH:MM:SS
    page.screenshot(path=shots / "recordings-preview.png")
    # A sweep over the recorded part: one request at a time, the latest wanted; rounded times.
    asked.clear()
    moves = 60
    for k in range(moves):
        page.mouse.move(middle + box["width"] * 0.1 * (k / moves - 0.5), box["y"] + 20)
    page.wait_for_timeout(1000)
    assert asked, "the sweep showed no preview"
    assert len(asked) < moves / 2, f"{len(asked)} preview requests for {moves} moves"
    page.mouse.move(middle, box["y"] + 200)  # off the timeline
    tip.wait_for(state="hidden")
