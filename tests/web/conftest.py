"""Browser fixtures: a real ``vigil serve`` with an RTSP camera, and Debian's Chromium.

``server`` (session): an RTSP relay publishing a shared clip in a loop, ``vigil serve`` as a
subprocess on a free port with a temporary data directory and YOLOX-Nano, continuous 2 s
segments (so event clips exist quickly). ``browser`` (session): Playwright driving
``/usr/bin/chromium`` (``apt-get install chromium``; nothing is downloaded). Both skip with
the reason when something is missing, and fail instead under ``CI=true``.

``open_page(viewport)`` makes a fresh context and page and records console errors and
uncaught exceptions; every test ends with ``assert_clean()`` on its pages.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.alerts.alert_servers import free_port
from tests.conftest import require_file
from tests.rtsp_relay import RtspRelay, require_tools
from vigil.paths import shared_data_dir, shared_models_dir

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking"]  # fmt: skip
CLIP = "one-by-one-person-detection.mp4"
PASSWORD = "correct horse battery"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}

CONFIG = """
detect: {{model: "{model}", fps: 5, labels: [person]}}
events: {{min_duration: 0.5}}
data_dir: "{data}"
record: {{mode: continuous, segment_seconds: 2}}
server: {{host: 127.0.0.1, port: {port}, secure_cookies: false}}
cameras:
  door:
    sources: [{{url: "{url}", options: {{rtsp_transport: udp}}}}]
"""


def _missing(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@dataclass
class Server:
    url: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    log: Path
    setup_link: str = ""  # the one-time first-run link vigil serve printed ("/#/setup?token=…")


def _health(url: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"{url}/api/health", timeout=1) as reply:
            return dict(json.loads(reply.read()))
    except OSError:
        return None


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    require_tools("rtsp-server-perl", "ffmpeg")
    model = require_file(shared_models_dir() / "yolox_nano.onnx")
    clip = require_file(shared_data_dir() / "clips" / CLIP)
    root = tmp_path_factory.mktemp("web")
    camera = RtspRelay(clip)
    camera.publish()
    time.sleep(1.5)  # the publisher announces the stream
    port = free_port()
    config = root / "vigil.yaml"
    config.write_text(CONFIG.format(model=model, data=root / "data", port=port, url=camera.url))
    try:
        with serving(root, config, port) as served:
            text = served.log.read_text()
            link = re.search(r"open http://127\.0\.0\.1:\d+(/#/setup\?token=\S+)", text)
            assert link is not None, f"vigil serve printed no setup link:\n{text[-4000:]}"
            yield dataclasses.replace(served, setup_link=link.group(1))
    finally:
        camera.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed (pip install -e '.[dev]')")
    if not CHROMIUM.exists() or shutil.which(str(CHROMIUM)) is None:
        _missing(f"{CHROMIUM} is missing (Debian: apt-get install chromium)")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="session")
def shots() -> Path:
    """Where screenshots go: ``$VIGIL_ARTIFACTS_DIR/screenshots`` or ``artifacts/screenshots``."""
    base = Path(os.environ.get("VIGIL_ARTIFACTS_DIR") or Path(__file__).parents[2] / "artifacts")
    folder = base / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@dataclass
class Pages:
    """Pages opened by one test, with the console errors each one logged."""

    browser: Any
    base_url: str
    opened: list[tuple[Any, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def open(self, viewport: dict[str, int] | None = None) -> Any:
        context = self.browser.new_context(viewport=viewport or DESKTOP, base_url=self.base_url)
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.on("console", lambda msg: self._console(page, msg))
        page.on("pageerror", lambda exc: self.errors.append(f"{page.url}: uncaught {exc}"))
        self.opened.append((context, page))
        return page

    def _console(self, page: Any, msg: Any) -> None:
        if msg.type == "error":
            # A failed load names the page, not the resource: the location does.
            where = (msg.location or {}).get("url") or ""
            self.errors.append(f"{page.url}: {msg.text}" + (f" [{where}]" if where else ""))

    def close(self) -> None:
        for context, _ in self.opened:
            context.close()


@contextmanager
def serve_with_admin(root: Path, config: Path, port: int) -> Iterator[Server]:
    """``vigil serve --config config`` (listening on ``port``, data in ``root / data``) with
    the admin ``ada`` (``PASSWORD``) made first, until the block ends; its output in
    ``root / serve.log``."""
    subprocess.run([sys.executable, "-m", "vigil.cli", "user", "--config", str(config), "add",
                    "ada", "--role", "admin", "--password-stdin"],
                   input=f"{PASSWORD}\n".encode(), check=True)  # fmt: skip
    with serving(root, config, port) as served:
        yield served


@contextmanager
def serving(root: Path, config: Path, port: int) -> Iterator[Server]:
    """``vigil serve --config config`` (on ``port``, data in ``root / data``, output in
    ``root / serve.log``) once its API answers, until the block ends."""
    log = root / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "vigil.cli", "serve", "--config",
                                    str(config)], stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while _health(url) is None:
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"vigil serve did not start:\n{log.read_text()[-4000:]}")
            time.sleep(0.2)
        yield Server(url, root / "data", process, log)
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def checked_pages(browser: Any, server: Server) -> Iterator[Pages]:
    """Pages on ``server`` for one test, failing it on any console error they logged."""
    opened = Pages(browser, server.url)
    try:
        yield opened
        assert not opened.errors, (
            "console errors:\n"
            + "\n".join(opened.errors)
            + "\nthe server's log ends:\n"
            + log_tail(server.log)
        )
    finally:
        opened.close()


@pytest.fixture
def pages(browser: Any, server: Server) -> Iterator[Pages]:
    yield from checked_pages(browser, server)


def log_tail(log: Path, chars: int = 4000) -> str:
    """The end of a server's log, from its last traceback when it has one."""
    text = log.read_text(errors="replace") if log.is_file() else "(no log)"
    last = text.rfind("Traceback")
    return text[last:][:chars] if last >= 0 else text[-chars:]


def login(page: Any, name: str, password: str = PASSWORD) -> None:
    """Log in through the login page and wait for the navigation to show the user."""
    page.goto("/#/login")
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    # attached, not visible: on a phone the navigation (and the name in it) is collapsed
    page.locator("#whoami", has_text=f"{name} (").wait_for(state="attached")


def wait_until(what: Callable[[], bool], timeout: float,
               message: str | Callable[[], str]) -> None:  # fmt: skip
    """Wait for ``what``; past ``timeout`` fail with ``message`` (a callable: what the page
    shows then)."""
    deadline = time.monotonic() + timeout
    while not what():
        if time.monotonic() > deadline:
            said = message if isinstance(message, str) else message()
            raise AssertionError(f"{said} within {timeout} s")
        time.sleep(0.25)
