"""``vigil serve`` as a real child process, and the parts the serve and fault tests share.

The camera analyses a paced synthetic scene (cheap on a busy machine, objects always coming
and going) and records a real RTSP stream (``tests.rtsp_relay``) or a UDP one
(``UdpCameras``), so the run has events, segments and a live recorder to finish. MQTT and
webhooks are optional.

Shared with the tests of a ``Supervisor`` in this process: the clip (``CLIP``), cameras
pushing it over UDP (``UdpCameras``), the RTSP relay of a fixture (``rtsp_camera``), a
Mosquitto broker of a fixture (``running_broker``) and ``wait_for``.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from tests.alerts.alert_servers import Broker, free_port
from tests.rtsp_relay import RtspRelay, require_tools
from vigil.store import Database, EventFilter, EventRepo, SegmentRepo

PASSWORD = "correct horse battery"
CAMERA = "door"
#: The shared clip every camera of these tests streams.
CLIP = "one-by-one-person-detection.mp4"


def wait_for(
    what: Callable[[], bool], timeout: float, message: str, why: Callable[[], str] = str
) -> None:
    """Poll ``what`` until true; fail after ``timeout`` s with ``message`` and ``why()``."""
    deadline = time.monotonic() + timeout
    while not what():
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} within {timeout} s {why()}")
        time.sleep(0.1)


class UdpCameras:
    """One ``ffmpeg`` per name pushing ``clip`` as MPEG-TS over UDP to a local port, in
    real time and for ever: a camera stream with no server process in between (the RTSP
    relay, a Perl program, starves on a loaded machine), which a reader may leave and join
    again at any time, as the recorders do after a storage failure. The names are cameras,
    or the roles of one camera's inputs."""

    def __init__(self, clip: Path, names: tuple[str, ...]) -> None:
        require_tools("ffmpeg")
        self.ports = {name: free_port() for name in names}
        self.publishers = [
            subprocess.Popen(
                ["ffmpeg", "-nostdin", "-loglevel", "error", "-re", "-stream_loop", "-1",
                 "-i", str(clip), "-c", "copy", "-f", "mpegts",
                 f"udp://127.0.0.1:{port}?pkt_size=1316"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            for port in self.ports.values()
        ]  # fmt: skip

    def url(self, name: str) -> str:
        return f"udp://127.0.0.1:{self.ports[name]}"

    def stop(self) -> None:
        for publisher in self.publishers:
            publisher.kill()
            publisher.wait(10)


def udp_cameras(clip: Path, names: tuple[str, ...]) -> Iterator[UdpCameras]:
    """A fixture's body: ``UdpCameras`` until the test ends."""
    streams = UdpCameras(clip, names)
    try:
        yield streams
    finally:
        streams.stop()


def rtsp_camera(clip: Path, *, publish: bool = True) -> Iterator[RtspRelay]:
    """A fixture's body: an RTSP relay of ``clip`` (published now, or by the test)."""
    require_tools("rtsp-server-perl", "ffmpeg")
    relay = RtspRelay(clip)
    try:
        if publish:
            relay.publish()
        yield relay
    finally:
        relay.stop()


def running_broker(folder: Path) -> Iterator[Broker]:
    """A fixture's body: a Mosquitto broker of its own under ``folder``."""
    folder.mkdir()
    server = Broker(folder)
    try:
        yield server
    finally:
        server.stop()


def serve_config(
    data: Path,
    port: int,
    rtsp_url: str,
    *,
    mqtt_port: int | None = None,
    webhook_url: str | None = None,
    segment_seconds: float = 2.0,
    worker_processes: int = 0,
) -> str:
    """A YAML configuration: one camera, synthetic analysis, RTSP recording, API on ``port``;
    the camera analysed in a thread (``worker_processes`` 0) or in worker processes."""
    lines = [
        "detect: {model: motion, fps: 10}",
        "tracker: {new_track_threshold: 0.5, high_threshold: 0.4}",
        f"data_dir: {data}",
        f"record: {{mode: continuous, segment_seconds: {segment_seconds}}}",
        f"server: {{host: 127.0.0.1, port: {port}, secure_cookies: false, "
        f"worker_processes: {worker_processes}}}",
        "cameras:",
        f"  {CAMERA}:",
        "    sources:",
        '      - {url: "synthetic://?fps=10&duration=300", roles: [detect]}',
        f'      - {{url: "{rtsp_url}", roles: [record], options: {{rtsp_transport: udp}}}}',
        "    lines:",
        "      middle: {points: [[0.05, 0.5], [0.95, 0.5]]}",
    ]
    if mqtt_port is not None:
        lines.append(f"mqtt: {{host: 127.0.0.1, port: {mqtt_port}, discovery: false}}")
    if webhook_url is not None:
        lines.append(f'webhooks: {{urls: ["{webhook_url}"], secret: "s3cret-for-tests", '
                     "states: [start, end]}")  # fmt: skip
    return "\n".join(lines) + "\n"


class ServeProcess:
    """``python -m vigil.cli serve --config FILE`` with its output in ``serve.log``."""

    def __init__(
        self, folder: Path, config_text: str, port: int, db_url: str | None = None
    ) -> None:
        self.folder = folder
        self.db_url = db_url  # the config's database_url; None: SQLite in data_dir
        self.port = port
        self.data = folder / "data"
        config = folder / "vigil.yaml"
        config.write_text(config_text)
        self.log = folder / "serve.log"
        with self.log.open("wb") as out:  # a file, not a pipe: a full pipe would block it
            self.process = subprocess.Popen(
                [sys.executable, "-m", "vigil.cli", "serve", "--config", str(config)],
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_for(self, what: Callable[[], bool], timeout: float, message: str) -> None:
        """Poll ``what`` until true; fail at once (with the log) if the process died."""
        deadline = time.monotonic() + timeout
        while not what():
            assert self.process.poll() is None, f"vigil serve exited early:\n{self.output}"
            if time.monotonic() > deadline:
                raise AssertionError(f"{message} within {timeout} s\n{self.output[-4000:]}")
            time.sleep(0.2)

    def api_up(self) -> bool:
        try:
            return httpx.get(f"{self.base_url}/api/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def admin(self) -> httpx.Client:
        """A client logged in as the first admin (created through first-run setup)."""
        client = httpx.Client(base_url=self.base_url, timeout=30)
        link = re.search(r"/#/setup\?token=(\S+)", self.output)  # printed while no user exists
        assert link is not None, f"vigil serve printed no setup link:\n{self.output[-4000:]}"
        setup = client.post("/api/setup", json={"name": "root", "password": PASSWORD,
                                                "token": link.group(1)})  # fmt: skip
        assert setup.status_code == 201, setup.text
        login = client.post("/api/login", json={"name": "root", "password": PASSWORD})
        assert login.status_code == 200, login.text
        client.headers["X-CSRF-Token"] = login.json()["csrf_token"]
        return client

    def query(self, read: Callable[[Any], Any], default: Any) -> Any:
        """``read(session)`` on the server's database; ``default`` before migration (or
        while the database does not answer)."""
        db_file = self.data / "vigil.db"
        if self.db_url is None and not db_file.exists():
            return default
        db = Database(self.db_url or f"sqlite:///{db_file}")
        try:
            with db.session() as session:
                return read(session)
        except Exception:
            return default  # not migrated yet
        finally:
            db.close()

    def events(self) -> list[Any]:
        return list(self.query(
            lambda s: EventRepo(s).list(EventFilter(camera=CAMERA)).items, []
        ))  # fmt: skip

    def segment_paths(self) -> set[str]:
        return set(self.query(lambda s: [r.path for r in SegmentRepo(s).list(CAMERA)], []))

    def stop(self) -> None:
        """Kill it if a test left it running (a failed assertion)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
