"""A real RTSP camera for tests: Debian's ``rtsp-server-perl`` relay fed by ``ffmpeg``.

The publisher can be stopped and started again to simulate a camera dropping out. Readers use
``rtsp_transport=udp`` (the relay does not do RTP over TCP).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.alerts.alert_servers import free_port, wait_port


def require_tools(*names: str) -> None:
    """Skip with the reason when a program is missing; fail instead under ``CI=true``."""
    missing = [n for n in names if shutil.which(n) is None]
    if not missing:
        return
    reason = f"{', '.join(missing)} not installed (Debian: apt-get install {' '.join(missing)})"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason)
    pytest.skip(reason)


# rtsp-server-perl 0.4 resets its next RTP port to a hard-coded 20000 whenever it has no
# mount (``RTSP::Server::housekeeping``), whatever ``--rtp_start_port`` said, and does not
# check its ``bind``: every relay on the machine then hands out the same ports, and readers of
# all but one get no packets. Run it with that constant set to this relay's own start.
_RELAY = (
    "use RTSP::Server; $RTSP::Server::RTP_START_PORT = shift @ARGV; "
    "do '/usr/bin/rtsp-server-perl'; die $@ if $@;"
)


class RtspRelay:
    """rtsp-server-perl plus an ffmpeg publisher of ``clip`` (looped, real time, stream copy)."""

    def __init__(self, clip: Path) -> None:
        self.clip = clip
        self.client_port, self.source_port = free_port(), free_port()
        # Every relay hands out RTP ports from 20000 up unless told otherwise; a random start
        # keeps relays of parallel test runs from colliding.
        rtp_start = 2 * random.randrange(15000, 30000)
        script = shutil.which("rtsp-server-perl") or "/usr/bin/rtsp-server-perl"
        self.server = subprocess.Popen(
            ["perl", "-e", _RELAY.replace("/usr/bin/rtsp-server-perl", script), str(rtp_start),
             "-c", str(self.client_port), "-s", str(self.source_port),
             "--rtp_start_port", str(rtp_start)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.publisher: subprocess.Popen[bytes] | None = None
        wait_port(self.client_port)
        wait_port(self.source_port)

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.client_port}/cam1"

    def publish(self) -> None:
        self.publisher = subprocess.Popen(
            ["ffmpeg", "-nostdin", "-loglevel", "error", "-re", "-stream_loop", "-1",
             "-i", str(self.clip), "-c", "copy", "-f", "rtsp",
             f"rtsp://127.0.0.1:{self.source_port}/cam1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def unpublish(self) -> None:
        """Stop the camera. SIGINT, not SIGKILL: rtsp-server-perl frees a mount only on the
        publisher's TEARDOWN (ffmpeg sends it when interrupted); after a SIGKILL it keeps the
        dead mount and refuses the next ANNOUNCE with 403 Forbidden."""
        if self.publisher is not None:
            self.publisher.send_signal(signal.SIGINT)
            try:
                self.publisher.wait(5)
            except subprocess.TimeoutExpired:
                self.publisher.kill()
                self.publisher.wait()
            self.publisher = None

    def stop(self) -> None:
        self.unpublish()
        self.server.terminate()
        try:
            self.server.wait(5)
        except subprocess.TimeoutExpired:
            self.server.kill()
            self.server.wait()
