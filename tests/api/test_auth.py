"""Security on by default: every route but the public ones refuses anonymous callers; setup,
login (Argon2id, rate limit), cookies, CSRF, bearer tokens, logout."""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.routing import APIRoute, APIWebSocketRoute
from fastapi.testclient import TestClient
from starlette.routing import BaseRoute, Route
from starlette.websockets import WebSocketDisconnect

from tests.api.conftest import PASSWORD, Api
from vigil.api import PUBLIC_PATHS
from vigil.api.routes.live import WS_POLICY
from vigil.store import Role, UserRepo
from vigil.store.models import TokenRow


def walk(routes: list[BaseRoute]) -> Iterator[BaseRoute]:
    """Every route of the app, including those inside included routers."""
    for route in routes:
        inner = getattr(route, "original_router", None) or getattr(route, "router", None)
        if inner is not None and not isinstance(route, (Route, APIWebSocketRoute)):
            yield from walk(list(inner.routes))
        else:
            yield route


def concrete(path: str) -> str:
    """The path with a harmless value in each parameter ({segment_id} needs an int)."""
    return re.sub(r"\{[^}]+\}", lambda m: "1" if m[0].endswith("_id}") else "front", path)


def http_routes(api: Api) -> list[tuple[str, str]]:
    out = []
    for route in walk(list(api.app.routes)):
        if isinstance(route, (APIRoute, Route)) and route.methods:
            out.extend((m, route.path) for m in sorted(route.methods) if m != "HEAD")
    return out


def test_route_walk_finds_every_documented_route(api: Api) -> None:
    paths = {p for _, p in http_routes(api)}
    documented = set(api.client().get("/api/openapi.json").json()["paths"])
    assert documented <= paths  # the walk sees at least what OpenAPI lists
    assert len(paths) >= 20


def test_every_route_except_public_refuses_anonymous(api: Api) -> None:
    """A new route cannot forget authentication: anonymous calls get 401 in the one schema."""
    client = api.client()
    checked = 0
    for method, path in http_routes(api):
        if path in PUBLIC_PATHS:
            continue
        reply = client.request(method, concrete(path), json={})
        assert reply.status_code == 401, (method, path, reply.status_code, reply.text)
        assert reply.json()["error"]["code"] == "unauthorized", (method, path)
        checked += 1
    assert checked >= 20


def test_every_websocket_refuses_anonymous(api: Api) -> None:
    sockets = [r for r in walk(list(api.app.routes)) if isinstance(r, APIWebSocketRoute)]
    assert sockets
    client = api.client()
    for route in sockets:
        for query in ("", "?token=forged"):
            url = concrete(route.path) + query
            with pytest.raises(WebSocketDisconnect) as info, client.websocket_connect(url) as ws:
                ws.receive_json()
            assert info.value.code == WS_POLICY


def test_public_routes_are_only_these(api: Api) -> None:
    client = api.client()
    health = client.get("/api/health").json()
    assert isinstance(health.pop("free_bytes"), int)
    assert health == {"status": "ok", "database": True, "setup_required": True,
                      "storage": "ok", "recording": "off", "recording_failed": 0,
                      "segments_unindexed": 0, "quarantine_files": 0,
                      "quarantine_bytes": 0}  # fmt: skip
    assert client.get("/api/openapi.json").status_code == 200


def test_setup_creates_first_admin_once(api: Api) -> None:
    client = api.client()
    weak = client.post("/api/setup", json={"name": "root", "password": "short"})
    assert weak.status_code == 422
    assert "at least" in weak.json()["error"]["message"]
    made = client.post("/api/setup", json={"name": "root", "password": PASSWORD})
    assert made.status_code == 201
    assert made.json()["role"] == "admin"
    again = client.post("/api/setup", json={"name": "other", "password": PASSWORD})
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "conflict"
    assert client.get("/api/health").json()["setup_required"] is False
    with api.db.session() as session:
        stored = UserRepo(session).get("root")
        assert stored is not None
        assert stored.password_hash.startswith("$argon2id$")


def test_login_sets_hardened_cookies(api: Api) -> None:
    api.add_user("ann", Role.VIEWER)
    client = api.client()
    reply = client.post("/api/login", json={"name": "ann", "password": PASSWORD})
    assert reply.status_code == 200
    cookies = reply.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith("vigil_session="))
    csrf = next(c for c in cookies if c.startswith("vigil_csrf="))
    assert "HttpOnly" in session
    assert "samesite=strict" in session.lower()
    assert "HttpOnly" not in csrf  # the page's script reads it
    assert reply.json()["csrf_token"] == client.cookies["vigil_csrf"]


def test_secure_cookie_flag_is_on_by_default(tmp_path: Any, face_detector: Any) -> None:
    from tests.api.conftest import build_api
    from vigil.store import Database

    db = Database(f"sqlite:///{tmp_path / 'v.db'}")
    db.migrate()
    secure = build_api(db, tmp_path, lambda s: None, secure_cookies=True)  # type: ignore[arg-type,return-value]
    secure.add_user("ann", Role.VIEWER)
    with TestClient(secure.app, base_url="https://testserver") as client:
        reply = client.post("/api/login", json={"name": "ann", "password": PASSWORD})
        assert all("Secure" in c for c in reply.headers.get_list("set-cookie"))
    db.close()


@pytest.mark.parametrize(("name", "password"), [
    ("ann", "wrong password"),
    ("nobody", PASSWORD),
])  # fmt: skip
def test_bad_login_is_401_without_saying_which(api: Api, name: str, password: str) -> None:
    api.add_user("ann", Role.VIEWER)
    reply = api.client().post("/api/login", json={"name": name, "password": password})
    assert reply.status_code == 401
    assert reply.json()["error"]["message"] == "wrong user name or password"


def test_login_rate_limit(api: Api) -> None:
    api.add_user("ann", Role.VIEWER)
    client = api.client()
    for _ in range(5):
        assert client.post("/api/login", json={"name": "ann", "password": "nope-nope"}
                           ).status_code == 401  # fmt: skip
    locked = client.post("/api/login", json={"name": "ann", "password": PASSWORD})
    assert locked.status_code == 429
    assert int(locked.headers["Retry-After"]) >= 1
    assert locked.json()["error"]["code"] == "rate_limited"


def test_disabled_user_cannot_log_in(api: Api) -> None:
    api.add_user("ann", Role.VIEWER)
    with api.db.session() as session:
        UserRepo(session).set_disabled("ann")
    assert api.client().post("/api/login", json={"name": "ann", "password": PASSWORD}
                             ).status_code == 401  # fmt: skip


def test_csrf_header_required_for_cookie_sessions(api: Api) -> None:
    client = api.login("op", Role.OPERATOR)
    good = client.headers.pop("X-CSRF-Token")
    assert client.get("/api/events").status_code == 200  # safe methods need none
    missing = client.post("/api/tokens", json={"name": "cam-box"})
    assert missing.status_code == 403
    assert "X-CSRF-Token" in missing.json()["error"]["message"]
    forged = client.post("/api/tokens", json={"name": "x"}, headers={"X-CSRF-Token": "a" * 64})
    assert forged.status_code == 403
    assert client.post("/api/tokens", json={"name": "x"},
                       headers={"X-CSRF-Token": good}).status_code == 201  # fmt: skip


def test_bearer_token_needs_no_csrf_and_logout_ends_session(api: Api) -> None:
    client = api.login("op", Role.OPERATOR)
    token = client.post("/api/tokens", json={"name": "nvr"}).json()["token"]
    machine = api.client()
    bearer = {"Authorization": f"Bearer {token}"}
    assert machine.get("/api/me", headers=bearer).json()["name"] == "op"
    minted = machine.post("/api/tokens", json={"name": "y"}, headers=bearer)
    assert minted.status_code == 403  # a token cannot make more of itself
    assert "log in with a password" in minted.json()["error"]["message"]
    # A session token is not a bearer token, and a bearer token is not a cookie.
    session_token = client.cookies["vigil_session"]
    assert machine.get("/api/me", headers={"Authorization": f"Bearer {session_token}"}
                       ).status_code == 401  # fmt: skip
    assert client.post("/api/logout").status_code == 204
    replay = api.client()
    replay.cookies.set("vigil_session", session_token)
    assert replay.get("/api/me").status_code == 401
    # The token is a credential of its own (documented): it outlives the session it came from.
    assert machine.get("/api/me", headers=bearer).status_code == 200


def test_authenticated_reads_need_no_write_lock(api: Api) -> None:
    """A camera holding SQLite's write lock must not fail a logged-in request (it did: each
    request wrote ``last_used`` in a deferred transaction and got "database is locked")."""
    client = api.login("alice", Role.ADMIN)
    path = api.db.engine.url.database
    assert path is not None
    writer = sqlite3.connect(path, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("UPDATE users SET disabled = disabled")
        reply = client.get("/api/me")
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert reply.status_code == 200, reply.text


def test_last_used_is_refreshed_once_stale(api: Api) -> None:
    client = api.login("alice", Role.ADMIN)
    with api.db.session() as session:
        session.execute(sa.update(TokenRow).values(last_used=1.0))
    assert client.get("/api/me").status_code == 200
    with api.db.session() as session:
        used = session.scalars(sa.select(TokenRow.last_used)).all()
    assert len(used) == 1
    assert used[0] is not None
    assert time.time() - used[0] < 60
