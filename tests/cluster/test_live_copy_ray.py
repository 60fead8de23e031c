"""Stream-copied unredacted live video from a camera on a Ray worker node: a real cluster (a
head with no camera slot, one worker node), PostgreSQL, an RTSP camera (the test relay) and
the API on the head's Supervisor. The camera is recorded on the node, so its packets are
muxed there (its actor's ``CopyFeed``) and pulled by the head (``RemoteCopy``): the received
pictures are the camera's own H.264 slices, byte for byte; a revoked grant ends the stream;
the camera reconnecting does not (the same socket goes on with a fresh init segment).
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.api.conftest import PASSWORD
from tests.api.test_live_copy import (
    check_resumed,
    closed_with,
    decoded,
    messages,
    mp4_slices,
    resumed,
    streams_of,
)
from tests.cluster.conftest import Mount, cluster_config, fast_backoff, start_relay, wait_for
from tests.conftest import require_file
from tests.ray_cluster import local_cluster
from tests.rtsp_relay import require_tools
from tests.store.conftest import PgServer, new_pg_database
from vigil.api import ApiSettings, create_app
from vigil.api.livevideo import StreamCopy
from vigil.api.state import AppState
from vigil.cluster import NAMESPACE
from vigil.cluster.backend import RayBackend, RemoteCopy
from vigil.paths import shared_data_dir
from vigil.runtime.serve import Supervisor
from vigil.store import Database, Role, UserRepo

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from fastapi.testclient import TestClient

URL = "/api/cameras/door/live.mp4ws"


@dataclass
class Served:
    client: TestClient
    supervisor: Supervisor
    state: AppState
    mount: Mount


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, pg_server: PgServer) -> Iterator[Served]:
    import ray

    from vigil.api.auth import hash_password

    require_tools("rtsp-server-perl", "ffmpeg")
    clips = require_file(shared_data_dir() / "clips")
    root = tmp_path_factory.mktemp("raycopy")
    url = new_pg_database(pg_server)
    relay, mounts = start_relay(clips, 1)
    try:
        with local_cluster(root / "nodes", workers=1, slots=1) as cluster:
            ray.init(address=cluster.address, namespace=NAMESPACE)
            config = cluster_config(root / "data", url, cluster.address, {"door": mounts[0].url})
            db = Database(url)
            with db.session() as session:
                UserRepo(session).add("op", Role.OPERATOR, hash_password(PASSWORD))
            supervisor = Supervisor(config, db=db, backoff=fast_backoff, stall_timeout=3.0,
                                    cluster_backend=RayBackend)  # fmt: skip
            settings = ApiSettings(secure_cookies=False, job_workers=0, redact=config.redact,
                                   camera_redact={"door": config.redact_for("door")})  # fmt: skip
            app = create_app(settings, db, supervisor, data_dir=root / "data")
            client = TestClient(app)
            supervisor.start()
            try:
                login = client.post("/api/login", json={"name": "op", "password": PASSWORD})
                assert login.status_code == 200, login.text
                client.headers["X-CSRF-Token"] = login.json()["csrf_token"]
                wait_for(lambda: all(s.online and s.recording == "recording"
                                     for s in supervisor.cameras()), 240,
                         "the camera records on its node")  # fmt: skip
                yield Served(client, supervisor, app.state.vigil, mounts[0])
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


def grant(client: TestClient, reason: str) -> str:
    reply = client.post("/api/cameras/door/live/unredacted", json={"reason": reason})
    assert reply.status_code in (200, 201), reply.text
    token: str = reply.json()["grant"]
    return token


def test_the_granted_view_of_a_camera_on_a_node_is_its_own_h264(served: Served) -> None:
    status = served.supervisor.cameras()[0]
    assert status.node == "node-1"  # recorded on the worker node, not in this process
    assert served.supervisor.packet_tap("door") is None
    token = grant(served.client, "incident 21")
    with served.client.websocket_connect(f"{URL}?grant={token}&width=320") as ws:
        received, _ = messages(ws, lambda got: len(got) >= 62)  # ~6 s at 10 fps
        streams = list(served.state.video.encoders().values())
    assert len(streams) == 1
    stream = streams[0]
    assert isinstance(stream, StreamCopy)
    assert isinstance(stream._reader, RemoteCopy)  # pulled from the node's actor
    [(head, init, fragments)] = streams_of(received)
    assert head["mode"] == "copy", head
    assert "reason" not in head
    assert head["codec"] == "avc1.4D401F"  # the camera's Main profile, from its SPS
    got = mp4_slices(init + b"".join(fragments))
    assert len(got) >= 40, len(got)
    source = mp4_slices(served.mount.clip)
    foreign = [unit for unit in got if unit not in set(source)]
    # Every picture is one the camera sent, unchanged: an encoder would have made new ones.
    assert not foreign, f"{len(foreign)} of {len(got)} slices are not the camera's"
    start = source.index(got[0])
    assert got[0][0] & 0x1F == 5  # from an IDR picture
    assert got == (source + source)[start : start + len(got)]  # in order, none left out
    frames, _ = decoded(init, fragments)
    assert frames[0].shape == (432, 768, 3)  # the camera's size: width does not apply


def test_revoking_the_grant_ends_the_copied_stream(served: Served) -> None:
    token = grant(served.client, "incident 22")
    with served.client.websocket_connect(f"{URL}?grant={token}") as ws:
        assert messages(ws, lambda got: len(got) >= 5)[1] is None
        reply = served.client.delete(f"/api/cameras/door/live/unredacted/{token}")
        assert reply.status_code < 300, reply.text
        code = closed_with(ws, 30.0)
    assert code == 1008
    wait_for(lambda: not served.state.video.encoders(), 10, "the copy ends with the grant")


def test_the_copied_stream_survives_the_camera_reconnecting(served: Served) -> None:
    token = grant(served.client, "incident 23")
    watchdog = threading.Timer(180.0, served.state.video.stop_all)  # fail, never hang
    times: list[float] = []
    with served.client.websocket_connect(f"{URL}?grant={token}") as ws:
        before, _ = messages(ws, lambda got: len(got) >= 12)
        served.mount.unpublish()
        time.sleep(1.0)
        served.mount.publish_checked()  # the relay may refuse a publisher once; retried
        watchdog.start()
        try:
            received, code = messages(ws, resumed(times, 25), times)
        finally:
            watchdog.cancel()
    assert code is None, f"the socket closed ({code}) when the camera reconnected"
    check_resumed(before, received, times, mp4_slices(served.mount.clip))


def test_a_copy_waits_for_an_actor_whose_start_failed_and_is_retried() -> None:
    """A failed-over actor whose first start failed (the database or the node's detector
    not reachable yet) retries it with backoff: a copied view waits for its feed, as for one
    still starting, instead of ending at once (the head's copy gives up after a bound)."""
    from vigil.cluster.camera import CameraActor

    actor = CameraActor.__new__(CameraActor)  # the state of one whose start is retried
    actor._running, actor.recorder, actor._feed = None, None, None
    actor._feed_lock, actor.node = threading.Lock(), "node-2"
    actor._boot_error = "OperationalError: connection refused"
    batch = actor.copy_read(7, 0.1)
    assert batch.waiting, batch
    assert batch.last == 7
    assert not batch.chunks
    assert "its last start failed: OperationalError" in str(batch.problem)
