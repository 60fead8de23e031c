"""The test relay itself: several relays on one machine each serve their own readers.

rtsp-server-perl resets its RTP ports to a hard-coded 20000 whenever it has no mount, so
without ``tests.rtsp_relay``'s override every relay of parallel test runs handed out the same
ports and only one of them delivered packets (the cluster tests' cameras got no frames).
"""

from __future__ import annotations

import time
from pathlib import Path

import av

from tests.rtsp_relay import RtspRelay, require_tools

CLIP = "one-by-one-person-detection.mp4"


def _first_frame(url: str) -> bool:
    try:
        with av.open(url, options={"rtsp_transport": "udp"}, timeout=15) as container:
            for _ in container.decode(video=0):
                return True
    except av.error.FFmpegError:
        return False
    return False


def test_two_relays_at_once_both_deliver_frames(clips_dir: Path) -> None:
    require_tools("rtsp-server-perl", "ffmpeg")
    first, second = RtspRelay(clips_dir / CLIP), RtspRelay(clips_dir / CLIP)
    try:
        # A publish and unpublish leaves the relay without mounts: its housekeeping resets
        # the next RTP port, the moment at which relays used to collide.
        for relay in (first, second):
            relay.publish()
        time.sleep(1.5)
        first.unpublish()
        time.sleep(2.0)
        first.publish()
        time.sleep(1.5)
        assert _first_frame(second.url), "the second relay delivered no frame"
        assert _first_frame(first.url), "the first relay delivered no frame"
    finally:
        first.stop()
        second.stop()
