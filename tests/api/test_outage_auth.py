"""Authentication while the database is down: ``/metrics`` and ``/api/cameras`` stay open to
credentials verified lately, nothing else does.

The API runs on a real PostgreSQL server of its own, stopped with ``pg_ctl -m fast`` mid-test
(``own_pg``, the fault suite's fixture). A credential that this process verified before the
outage still reads the two routes of ``OUTAGE_READS`` (with its role and camera scope as they
were); every other route, every write and every login answers 503 as before; a credential
never seen, or one that this process revoked (logout, a revoked token, a changed user), is
not let in. ``PrincipalCache``'s bounds (age, the credential's expiry, size) are checked on
their own with a fake clock.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import Api, build_api
from tests.store.conftest import PgServer
from vigil.api.auth import Principal, PrincipalCache
from vigil.privacy import Redactor
from vigil.store import Database, Role, TokenRepo


def _no_redactor(config: object, size: tuple[int, int]) -> Redactor:
    raise AssertionError("these reads need no redaction")


@pytest.fixture
def pg_api(own_pg: PgServer, tmp_path: Path) -> Iterator[Api]:
    own_pg.admin_sql("CREATE DATABASE vigil_api")
    db = Database(own_pg.url("vigil_api"))
    db.migrate()
    api = build_api(db, tmp_path / "data", _no_redactor, job_workers=0)
    yield api
    api.close()
    db.close()


def _token(client: Any, name: str = "scraper") -> str:
    reply = client.post("/api/tokens", json={"name": name})
    assert reply.status_code == 201, reply.text
    token: str = reply.json()["token"]
    return token


def _bearer(api: Api, token: str) -> Any:
    client = api.client()
    client.headers["Authorization"] = f"Bearer {token}"
    return client


def _code(reply: Any) -> str:
    code: str = reply.json()["error"]["code"]
    return code


def test_metrics_and_cameras_answer_during_a_database_outage(pg_api: Api, own_pg: PgServer) -> None:
    viewer = pg_api.login("val", Role.VIEWER, cameras=["front"])
    scraper = _bearer(pg_api, _token(viewer))
    unseen = _bearer(pg_api, _token(viewer, "never used"))
    for client in (viewer, scraper):  # verified once while the database answers
        assert client.get("/metrics").status_code == 200
        assert client.get("/api/cameras").status_code == 200

    own_pg.halt()
    try:
        metrics = scraper.get("/metrics")
        assert metrics.status_code == 200, metrics.text
        assert "vigil_database_up 0.0" in metrics.text
        assert 'vigil_camera_online{camera="front"} 1.0' in metrics.text
        assert 'camera="back"' not in metrics.text, "the scope is the one verified"
        for client in (viewer, scraper):
            cameras = client.get("/api/cameras")
            assert cameras.status_code == 200, cameras.text
            assert [c["name"] for c in cameras.json()] == ["front"]
        # Only those two reads: any other route, a write, a login, an unseen credential: 503.
        refused = {
            "events": viewer.get("/api/events"),
            "me": scraper.get("/api/me"),
            "snapshot": viewer.get("/api/cameras/front/snapshot"),
            "token": viewer.post("/api/tokens", json={"name": "more"}),
            "login": pg_api.client().post("/api/login", json={"name": "val", "password": "x"}),
            "unseen": unseen.get("/metrics"),
        }  # fmt: skip
        for what, reply in refused.items():
            assert (what, reply.status_code) == (what, 503), reply.text
            assert _code(reply) == "storage_unavailable", (what, reply.text)
        assert pg_api.client().get("/metrics").status_code == 401, "no credential: as ever"
    finally:
        own_pg.resume()
    back = scraper.get("/metrics")
    assert back.status_code == 200
    assert "vigil_database_up 1.0" in back.text


def test_what_this_process_revokes_is_not_let_in_during_an_outage(
    pg_api: Api, own_pg: PgServer
) -> None:
    admin = pg_api.login("ada", Role.ADMIN)
    revoked = pg_api.login("rev", Role.VIEWER)
    token = _token(revoked)
    changed = pg_api.login("cha", Role.OPERATOR)
    gone = pg_api.login("out", Role.VIEWER)
    elsewhere = pg_api.login("cli", Role.VIEWER)
    clients = {"token": _bearer(pg_api, token), "changed": changed, "logged out": gone,
               "revoked elsewhere": elsewhere}  # fmt: skip
    for client in clients.values():
        assert client.get("/api/cameras").status_code == 200
    (row,) = revoked.get("/api/tokens").json()
    assert revoked.delete(f"/api/tokens/{row['id']}").status_code == 204
    assert admin.patch("/api/users/cha", json={"role": "viewer"}).status_code == 200
    session_cookie = gone.cookies["vigil_session"]
    assert gone.post("/api/logout").status_code == 204
    gone.cookies.set("vigil_session", session_cookie)  # as a client that kept it would
    # ... and one revoked behind this process's back (``vigil user``): the next lookup that
    # reaches the database finds it gone and forgets it.
    with pg_api.db.session() as session:
        TokenRepo(session).revoke(elsewhere.cookies["vigil_session"])
    assert elsewhere.get("/api/cameras").status_code == 401

    own_pg.halt()
    try:
        for what, client in clients.items():
            reply = client.get("/api/cameras")
            assert (what, reply.status_code) == (what, 503), reply.text
        assert admin.get("/api/cameras").status_code == 200, "the admin was not revoked"
    finally:
        own_pg.resume()


def _who(user_id: int = 1) -> Principal:
    return Principal(user_id, f"u{user_id}", Role.VIEWER, None, "token", None)


def test_the_cache_is_bounded_in_age_expiry_and_size() -> None:
    now = [1000.0]
    wall = [1_700_000_000.0]
    cache = PrincipalCache(60.0, max_entries=2, clock=lambda: now[0], wall=lambda: wall[0])
    cache.remember("a", "api", _who(1), expires=None)
    cache.remember("b", "api", _who(2), expires=wall[0] + 10)
    assert cache.recall("a", "api") == _who(1)
    assert cache.recall("a", "session") is None, "a credential of another kind"
    wall[0] += 11
    assert cache.recall("b", "api") is None, "past the credential's own expiry"
    now[0] += 61
    assert cache.recall("a", "api") is None, "verified too long ago"
    assert len(cache) == 0
    for key in "xyz":
        cache.remember(key, "api", _who(3), expires=None)
    assert len(cache) == 2, "the least recently verified went"
    assert cache.recall("x", "api") is None
    cache.forget_user(3)
    assert len(cache) == 0
    off = PrincipalCache(0.0)
    off.remember("a", "api", _who(), expires=None)
    assert off.recall("a", "api") is None, "ttl 0: never"
