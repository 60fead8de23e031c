"""Over real HTTP: uvicorn on a free port in a thread; setup, login, Range request, and the
same API on a real PostgreSQL server."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from tests.api.conftest import PASSWORD, T0, Api, build_api
from tests.store.conftest import PgServer, free_port, new_pg_database
from vigil.config.models import RedactConfig
from vigil.privacy import FaceDetector, Redactor, build_redactor
from vigil.store import Database, Role


def _serve(api: Api) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(api.app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def base_url(api: Api) -> Iterator[str]:
    yield from _serve(api)


def test_login_and_range_over_real_http(api: Api, base_url: str) -> None:
    seg_id, path = api.add_segment("front", T0)
    data = path.read_bytes()
    with httpx.Client(base_url=base_url) as client:
        assert client.get("/api/health").json()["setup_required"] is True
        assert client.post("/api/setup", json={"name": "root", "password": PASSWORD}
                           ).status_code == 201  # fmt: skip
        login = client.post("/api/login", json={"name": "root", "password": PASSWORD})
        assert login.status_code == 200
        client.headers["X-CSRF-Token"] = login.json()["csrf_token"]
        part = client.get(f"/api/recordings/{seg_id}/media", headers={"Range": "bytes=10-29"})
        assert part.status_code == 206
        assert part.content == data[10:30]
        assert part.headers["content-range"] == f"bytes 10-29/{len(data)}"
        assert client.post("/api/logout").status_code == 204
        assert client.get(f"/api/recordings/{seg_id}/media").status_code == 401


@pytest.fixture
def pg_api(pg_server: PgServer, tmp_path: Path, face_detector: FaceDetector) -> Iterator[Api]:
    db = Database(new_pg_database(pg_server))

    def factory(config: RedactConfig, size: tuple[int, int]) -> Redactor:
        return build_redactor(config, size, face_detector=face_detector)

    built = build_api(db, tmp_path / "data", factory)
    yield built
    built.close()
    db.close()


def test_api_on_postgresql(pg_api: Api) -> None:
    """A subset on PostgreSQL: setup, login, events, audit chain, users."""
    from tests.api.test_events import add_event

    add_event(pg_api, "e1", zones=("door",))
    client = pg_api.client()
    assert client.post("/api/setup", json={"name": "root", "password": PASSWORD}
                       ).status_code == 201  # fmt: skip
    admin = pg_api.login("root")
    page = admin.get("/api/events", params={"zone": "door"}).json()
    assert [e["id"] for e in page["items"]] == ["e1"]
    assert admin.post("/api/events/e1/lock").json()["locked"] is True
    assert admin.post("/api/users", json={"name": "ann", "role": "auditor",
                                           "password": PASSWORD}).status_code == 201  # fmt: skip
    auditor = pg_api.login("ann")
    actions = [r["action"] for r in auditor.get("/api/audit").json()]
    assert actions == ["user.setup", "event.lock", "user.create"]
    assert auditor.get("/api/audit/verify").json()["ok"] is True
    assert pg_api.login("val", Role.VIEWER).get("/api/audit").status_code == 403


def test_event_websocket_over_real_http(api: Api, base_url: str) -> None:
    """uvicorn answers a WebSocket only when a WebSocket library is installed (it said 404
    without one): the server extra must bring it."""
    from websockets.sync.client import connect

    api.add_user("wall", Role.VIEWER)
    with httpx.Client(base_url=base_url) as client:
        login = client.post("/api/login", json={"name": "wall", "password": PASSWORD})
        client.headers["X-CSRF-Token"] = login.json()["csrf_token"]
        token = client.post("/api/tokens", json={"name": "wall"}).json()["token"]
    url = base_url.replace("http://", "ws://") + f"/api/ws/events?token={token}"
    with connect(url, open_timeout=10) as ws:
        deadline = time.monotonic() + 5
        while api.runtime.subscribers < 1:
            assert time.monotonic() < deadline, "the WebSocket never subscribed"
            time.sleep(0.01)
        api.runtime.publish({"id": "e1", "camera": "front"})
        assert '"e1"' in str(ws.recv(timeout=5))
