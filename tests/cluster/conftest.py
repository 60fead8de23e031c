"""Cluster fixtures: a real PostgreSQL (the store tests' server), real RTSP cameras, and a
Supervisor config for the Ray backend on a ``tests.ray_cluster`` cluster.

The relay (rtsp-server-perl) sometimes refuses or drops a publisher on a loaded machine; a
camera is only handed to a test once a reader got a frame from it, after as many fresh
publishes as that takes (``publish_checked``), so the asserts never have to allow for it.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

pytest.importorskip("sqlalchemy", reason="the server extra is not installed")

from tests.conftest import require_file
from tests.rtsp_relay import RtspRelay, require_tools
from tests.store.conftest import (
    pg_server,  # noqa: F401  # the session's PostgreSQL server
)
from vigil.cluster.leader import SUPERVISION_LOCK
from vigil.config.models import VigilConfig
from vigil.ingest import Backoff
from vigil.paths import shared_data_dir

#: The two clips a relay can stream-copy (H.264 MP4), 768x432 at 10-12.5 fps.
CLIPS = ("one-by-one-person-detection.mp4", "car-detection.mp4")
SEGMENT_S = 2.0


def wait_for(what: Callable[[], bool], timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} within {timeout} s")
        time.sleep(0.25)


def fast_backoff() -> Backoff:
    return Backoff(initial=0.3, factor=2.0, max=2.0, jitter=0.0)


def _readable(url: str, timeout: float = 15.0) -> bool:
    """Whether a reader gets a video frame from ``url`` (PyAV, as a camera does)."""
    import av

    try:
        with av.open(url, options={"rtsp_transport": "udp"}, timeout=timeout) as container:
            for _ in container.decode(video=0):
                return True
    except (av.error.FFmpegError, OSError):
        return False
    return False


class Mount:
    """One camera of a shared relay: its clip published (stream copy, video only) to its own
    path; one relay process serves all the cameras of a test."""

    def __init__(self, relay: RtspRelay, path: str, clip: Path) -> None:
        self.relay, self.path, self.clip = relay, path, clip
        self.publisher: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.relay.client_port}/{self.path}"

    def publish(self) -> None:
        self.publisher = subprocess.Popen(
            ["ffmpeg", "-nostdin", "-loglevel", "error", "-re", "-stream_loop", "-1",
             "-i", str(self.clip), "-an", "-c", "copy", "-f", "rtsp",
             f"rtsp://127.0.0.1:{self.relay.source_port}/{self.path}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def unpublish(self) -> None:
        """SIGINT: the relay frees a path only on the publisher's TEARDOWN (see RtspRelay)."""
        if self.publisher is not None:
            self.publisher.send_signal(signal.SIGINT)
            try:
                self.publisher.wait(5)
            except subprocess.TimeoutExpired:
                self.publisher.kill()
                self.publisher.wait()
            self.publisher = None

    def publish_checked(self, attempts: int = 8) -> None:
        """Publish until a reader gets frames."""
        for _ in range(attempts):
            self.publish()
            time.sleep(1.5)  # the publisher announces the stream
            if _readable(self.url):
                return
            self.unpublish()
            time.sleep(1.0)
        raise AssertionError(f"the RTSP relay did not serve {self.clip.name} at /{self.path} "
                             f"after {attempts} publishes")  # fmt: skip


def start_relay(
    clips: Path, cameras: int, names: tuple[str, ...] = CLIPS, servers: int = 4
) -> tuple[RtspRelay, list[Mount]]:  # fmt: skip
    """A relay serving ``cameras`` mounts (clips ``names`` in turn), each checked readable.
    A relay whose mount stays unreadable is replaced by a fresh one (new ports and RTP
    range)."""
    for attempt in range(servers):
        relay = RtspRelay(clips / names[0])
        mounts = [Mount(relay, f"cam{i}", clips / names[i % len(names)]) for i in range(cameras)]
        try:
            for mount in mounts:
                mount.publish_checked(attempts=3)
            return relay, mounts
        except AssertionError:
            for mount in mounts:
                mount.unpublish()
            relay.stop()
            if attempt == servers - 1:
                raise
    raise AssertionError("unreachable")


@contextlib.contextmanager
def relayed(cameras: int, names: tuple[str, ...] = CLIPS) -> Iterator[list[Mount]]:
    """``cameras`` RTSP cameras of the shared clips ``names`` on one relay (``start_relay``),
    unpublished and stopped at the end; skipped without the tools or the clips."""
    require_tools("rtsp-server-perl", "ffmpeg")
    clips = require_file(shared_data_dir() / "clips")
    relay, mounts = start_relay(clips, cameras, names)
    try:
        yield mounts
    finally:
        for mount in mounts:
            mount.unpublish()
        relay.stop()


@pytest.fixture(scope="module")
def relays() -> Iterator[list[Mount]]:
    """Four RTSP cameras on one relay, each serving a shared clip, checked readable."""
    with relayed(4) as mounts:
        yield mounts


def cluster_config(
    data: Path, database_url: str, address: str, cameras: dict[str, str], *,
    models: dict[str, str] | None = None, **cluster: Any,
) -> VigilConfig:  # fmt: skip
    """A ``server.backend: ray`` configuration of ``cameras`` (name -> RTSP URL), recording
    continuously in short segments, with the motion detector unless ``models`` names one
    for a camera (the shared model is the global ``detect``'s, as on a single host); two
    lines across the middle of the motion cameras so that moving things are counted."""
    lines = {"across": {"points": [[0.05, 0.5], [0.95, 0.5]]},
             "down": {"points": [[0.5, 0.05], [0.5, 0.95]]}}  # fmt: skip
    entries: dict[str, Any] = {}
    for name, url in cameras.items():
        entry: dict[str, Any] = {"sources": [{"url": url, "options": {"rtsp_transport": "udp"}}]}
        if name not in (models or {}):
            entry.update(detect={"model": "motion", "fps": 5}, lines=lines)
        # A camera with a model has no rules: every person it tracks makes an event.
        entries[name] = entry
    model = next(iter((models or {}).values()), "motion")
    return VigilConfig.model_validate({
        "detect": {"model": model, "fps": 3, "labels": ["person", "car"]},
        "tracker": {"new_track_threshold": 0.5, "high_threshold": 0.4},
        "events": {"min_duration": 0.3},
        "record": {"mode": "continuous", "segment_seconds": SEGMENT_S},
        "data_dir": str(data),
        "database_url": database_url,
        "server": {"backend": "ray"},
        "cluster": {"address": address, "call_timeout": 20.0, **cluster},
        "cameras": entries,
    })  # fmt: skip


def lock_holder(db: Any) -> int | None:
    """The PostgreSQL backend holding the supervision lock in the story's database."""
    holders = lock_holders(db, SUPERVISION_LOCK)
    return holders[0] if holders else None


def lock_holders(db: Any, key: int) -> list[int]:
    """The PostgreSQL backends holding advisory lock ``key`` in the story's database."""
    query = text(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        " AND classid = CAST(:high AS oid) AND objid = CAST(:low AS oid) ORDER BY pid"
    )
    with db.engine.connect() as connection:
        found = connection.execute(query, {"high": key >> 32, "low": key & 0xFFFF_FFFF})
        return [int(pid) for pid in found.scalars()]
