"""Live video across a camera actor's failover (issue 9): a real cluster (a head with no
camera slot, two worker nodes of one slot each, Ray's quicker node health checks as in
``test_failover.py``), PostgreSQL, an RTSP camera (the test relay) and the API on the head.
A granted view (a stream copy from the camera's actor: its ``CopyFeed`` on the node) and a
redacted one (encoded on the head from the actor's frames) are open when the node carrying
the camera is killed; Ray restarts the actor on the other node. Both sockets go on: the copy
with a new head and init segment from the new node's feed, the camera's own slices decodable
from it, its clock going on; neither closes (no 1011).
"""

from __future__ import annotations

import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import PASSWORD
from tests.api.test_live_copy import (
    Message,
    check_resumed,
    decoded,
    messages,
    mp4_slices,
    outage,
    resumed,
    streams_of,
)
from tests.cluster.conftest import cluster_config, fast_backoff, start_relay, wait_for
from tests.conftest import require_file
from tests.ray_cluster import FAST_FAILURE_DETECTION, local_cluster
from tests.rtsp_relay import require_tools
from tests.store.conftest import PgServer, new_pg_database
from vigil.api import ApiSettings, create_app
from vigil.api.livevideo import StreamCopy
from vigil.cluster import NAMESPACE
from vigil.cluster.backend import RayBackend
from vigil.paths import shared_data_dir
from vigil.runtime.serve import Supervisor
from vigil.store import Database, Role, UserRepo

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from fastapi.testclient import TestClient

URL = "/api/cameras/door/live.mp4ws"
#: The failover's own bound (``test_failover.py``), and what the views may take beyond it:
#: the new actor's recorder connecting and reaching the camera's next keyframe.
FAILOVER_S, BEYOND_S = 30.0, 30.0


@dataclass
class Reader:
    """Reads a socket in its own thread: its messages (when it ends), their arrival times
    (as they come), its close code."""

    ws: Any
    received: list[Message] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    code: int | None = None
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        def enough(_got: list[Message]) -> bool:
            return self.stop.is_set()

        self.received, self.code = messages(self.ws, enough, self.times)


def after(times: list[float], killed: float) -> list[float]:
    """The arrival times from the last one before the kill on (the outage's gap begins
    there)."""
    first = next((i for i, t in enumerate(times) if t > killed), len(times))
    return times[max(0, first - 1) :]


@pytest.mark.slow
def test_live_views_follow_the_camera_to_its_new_node(tmp_path: Path, pg_server: PgServer) -> None:
    import ray

    from vigil.api.auth import hash_password

    require_tools("rtsp-server-perl", "ffmpeg")
    clips = require_file(shared_data_dir() / "clips")
    url = new_pg_database(pg_server)
    relay, mounts = start_relay(clips, 1)
    try:
        with local_cluster(tmp_path / "nodes", workers=2, slots=1,
                           system_config=FAST_FAILURE_DETECTION) as cluster:  # fmt: skip
            ray.init(address=cluster.address, namespace=NAMESPACE)
            config = cluster_config(tmp_path / "data", url, cluster.address,
                                    {"door": mounts[0].url})  # fmt: skip
            db = Database(url)
            with db.session() as session:
                UserRepo(session).add("op", Role.OPERATOR, hash_password(PASSWORD))
            supervisor = Supervisor(config, db=db, backoff=fast_backoff, stall_timeout=3.0,
                                    cluster_backend=RayBackend)  # fmt: skip
            settings = ApiSettings(secure_cookies=False, job_workers=0, redact=config.redact,
                                   camera_redact={"door": config.redact_for("door")})  # fmt: skip
            app = create_app(settings, db, supervisor, data_dir=tmp_path / "data")
            client = TestClient(app)
            supervisor.start()
            try:
                _follow(cluster, supervisor, client, app.state.vigil, mounts[0].clip)
            finally:
                app.state.vigil.video.stop_all()
                supervisor.stop()
                client.close()
                db.close()
                ray.shutdown()
    finally:
        for mount in mounts:
            mount.unpublish()
        relay.stop()


def _follow(cluster: Any, supervisor: Supervisor, client: TestClient, state: Any,
            clip: Path) -> None:  # fmt: skip
    login = client.post("/api/login", json={"name": "op", "password": PASSWORD})
    assert login.status_code == 200, login.text
    client.headers["X-CSRF-Token"] = login.json()["csrf_token"]
    wait_for(lambda: all(s.online and s.recording == "recording" for s in supervisor.cameras()),
             240, "the camera records on its node")  # fmt: skip
    node = supervisor.cameras()[0].node
    assert node in ("node-1", "node-2")
    reply = client.post("/api/cameras/door/live/unredacted", json={"reason": "incident 31"})
    assert reply.status_code in (200, 201), reply.text
    token = reply.json()["grant"]
    watchdog = threading.Timer(400.0, state.video.stop_all)  # fail, never hang
    watchdog.start()
    try:
        with client.websocket_connect(f"{URL}?grant={token}") as ws, \
                client.websocket_connect(f"{URL}?width=320") as plain:  # fmt: skip
            # Both read as their messages come: a socket left unread meanwhile holds a
            # backlog, and one longer than the outage hides its gap (the test waited 400 s).
            copied, redacted = Reader(ws), Reader(plain)
            readers = [threading.Thread(target=r.run, daemon=True) for r in (copied, redacted)]
            for reader in readers:
                reader.start()
            wait_for(lambda: len(copied.times) >= 12 and len(redacted.times) >= 5, 120,
                     "the views play")  # fmt: skip
            # Kept before the kill: an ended copy leaves the encoders with its socket.
            started = [s for s in state.video.encoders().values() if isinstance(s, StreamCopy)]
            killed = time.monotonic()
            cluster.remove(node)

            def went_on() -> bool:
                return copied.code is not None or resumed(after(copied.times, killed), 25)([])

            wait_for(went_on, FAILOVER_S + BEYOND_S + 120, "the copied view did not go on")
            wait_for(lambda: redacted.code is not None
                     or sum(t > killed + 4.0 for t in redacted.times) >= 10,
                     120, "the redacted view did not go on")  # fmt: skip
            copies = [s for s in state.video.encoders().values() if isinstance(s, StreamCopy)]
            for each in (copied, redacted):
                each.stop.set()
            for reader in readers:
                reader.join(60)  # each ends at its next message, before its socket closes
    finally:
        watchdog.cancel()
    assert not any(r.is_alive() for r in readers), "a view stopped sending"
    code = copied.code
    first = len(copied.times) - len(after(copied.times, killed))
    before, received, times = copied.received[:first], copied.received[first:], copied.times[first:]
    at = outage(times)
    back = float("nan") if at is None else times[at] - killed
    print(f"the copied view went on {back:.1f} s after the node was killed")
    why = [s.error for s in started]
    assert code is None, f"the copied view closed ({code}) at the failover: {why}"
    assert redacted.code is None, f"the redacted view closed ({redacted.code})"
    now = supervisor.cameras()[0].node
    assert now not in (None, node), f"the camera did not move: {now}"
    assert back <= FAILOVER_S + BEYOND_S, f"{back:.1f} s"
    [copy] = copies
    assert copy.feeds >= 1  # it followed the new node's feed
    # A new head and init segment from the new node's feed, decodable, its clock going on.
    streams = streams_of(before + received)
    assert len(streams) >= 2, [head for head, _, _ in streams]
    (_, init1, fragments1), (head2, init2, fragments2) = streams[0], streams[-1]
    assert head2["mode"] == "copy"
    frames, clock = decoded(init2, fragments2)
    assert len(frames) >= 15
    assert frames[0].shape == (432, 768, 3)
    assert clock[0] >= decoded(init1, fragments1)[1][-1]
    check_resumed(before, received, times, mp4_slices(clip))
