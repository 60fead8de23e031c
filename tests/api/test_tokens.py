"""API tokens: they expire by default, only a password login mints them, they can be listed
and revoked (own, or anyone's by an admin), disabling a user or changing their password ends
them, and expired rows are purged."""

from __future__ import annotations

import sqlalchemy as sa

from tests.api.conftest import PASSWORD, Api
from vigil.store import AuditRepo, Role, TokenKind, TokenRepo, UserRepo
from vigil.store.models import TokenRow

DAY = 86400.0


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_tokens_expire_by_default(api: Api) -> None:
    op = api.login("op", Role.OPERATOR)
    made = op.post("/api/tokens", json={"name": "nvr"})
    assert made.status_code == 201
    body = made.json()
    with api.db.session() as session:
        row = session.get(TokenRow, body["id"])
        assert row is not None
        assert row.expires is not None
        assert row.expires - row.created == 90 * DAY
    assert body["expires"] == row.expires
    short = op.post("/api/tokens", json={"name": "short", "ttl_s": 3600}).json()
    assert short["expires"] - row.created < 2 * 3600
    too_long = op.post("/api/tokens", json={"name": "forever", "ttl_s": 91 * DAY})
    assert too_long.status_code == 422
    assert "at most" in too_long.json()["error"]["message"]
    # Once past its expiry the token is refused.
    machine = api.client()
    assert machine.get("/api/me", headers=_bearer(short["token"])).status_code == 200
    with api.db.session() as session:
        session.execute(sa.update(TokenRow).where(TokenRow.id == short["id"]).values(expires=1.0))
    assert machine.get("/api/me", headers=_bearer(short["token"])).status_code == 401


def test_a_token_cannot_mint_a_token(api: Api) -> None:
    op = api.login("op", Role.OPERATOR)
    token = op.post("/api/tokens", json={"name": "nvr"}).json()["token"]
    reply = api.client().post("/api/tokens", json={"name": "child"}, headers=_bearer(token))
    assert reply.status_code == 403
    with api.db.session() as session:
        assert len(TokenRepo(session).api_tokens()) == 1


def test_list_and_revoke_tokens(api: Api) -> None:
    op = api.login("op", Role.OPERATOR)
    first = op.post("/api/tokens", json={"name": "nvr"}).json()
    second = op.post("/api/tokens", json={"name": "ha"}).json()
    listed = op.get("/api/tokens").json()
    assert [(t["id"], t["user"], t["name"]) for t in listed] == [
        (first["id"], "op", "nvr"),
        (second["id"], "op", "ha"),
    ]
    assert all("token" not in t for t in listed)  # the secret is never listed
    viewer = api.login("val", Role.VIEWER)
    assert viewer.get("/api/tokens").json() == []
    assert viewer.get("/api/tokens", params={"all_users": True}).status_code == 403
    assert viewer.delete(f"/api/tokens/{first['id']}").status_code == 404  # not theirs
    # Its owner revokes one: it stops working at once.
    machine = api.client()
    assert machine.get("/api/me", headers=_bearer(first["token"])).status_code == 200
    assert op.delete(f"/api/tokens/{first['id']}").status_code == 204
    assert machine.get("/api/me", headers=_bearer(first["token"])).status_code == 401
    assert op.delete(f"/api/tokens/{first['id']}").status_code == 404
    # An admin sees and revokes anyone's; a token may revoke itself.
    admin = api.login("root", Role.ADMIN)
    own = admin.post("/api/tokens", json={"name": "script"}).json()
    everyone = admin.get("/api/tokens", params={"all_users": True}).json()
    assert [(t["user"], t["name"]) for t in everyone] == [("op", "ha"), ("root", "script")]
    assert admin.delete(f"/api/tokens/{second['id']}").status_code == 204
    assert machine.delete(f"/api/tokens/{own['id']}", headers=_bearer(own["token"])
                          ).status_code == 204  # fmt: skip
    assert admin.get("/api/tokens", params={"all_users": True}).json() == []
    # Session ids are not API tokens: they cannot be revoked (or probed) by id here.
    with api.db.session() as session:
        sessions = [r.id for r in TokenRepo(session).list() if r.kind == TokenKind.SESSION]
    assert admin.delete(f"/api/tokens/{sessions[0]}").status_code == 404
    with api.db.session() as session:
        revoked = AuditRepo(session).records(action="token.revoke")
    assert [(r.actor, r.target, r.details["name"]) for r in revoked] == [
        ("op", "op", "nvr"),
        ("root", "op", "ha"),
        ("root", "root", "script"),
    ]


def test_tokens_end_on_disable_and_password_change(api: Api) -> None:
    admin = api.login("root", Role.ADMIN)
    op = api.login("op", Role.OPERATOR)
    machine = api.client()
    token = op.post("/api/tokens", json={"name": "nvr"}).json()["token"]
    assert admin.patch("/api/users/op", json={"password": "a new long password"}
                       ).status_code == 200  # fmt: skip
    assert machine.get("/api/me", headers=_bearer(token)).status_code == 401
    op = api.client()
    reply = op.post("/api/login", json={"name": "op", "password": "a new long password"})
    op.headers["X-CSRF-Token"] = reply.json()["csrf_token"]
    token = op.post("/api/tokens", json={"name": "nvr2"}).json()["token"]
    assert admin.patch("/api/users/op", json={"disabled": True}).status_code == 200
    assert machine.get("/api/me", headers=_bearer(token)).status_code == 401
    assert admin.patch("/api/users/op", json={"disabled": False}).status_code == 200
    assert machine.get("/api/me", headers=_bearer(token)).status_code == 401  # gone, not hidden
    with api.db.session() as session:
        assert TokenRepo(session).api_tokens() == []


def test_expired_tokens_are_purged_when_tokens_are_minted(api: Api) -> None:
    api.add_user("op", Role.OPERATOR)
    with api.db.session() as session:
        user = UserRepo(session).get("op")
        assert user is not None
        for kind in (TokenKind.SESSION, TokenKind.API):
            TokenRepo(session).issue(user.id, kind, ttl_s=60, now=1_000.0)
    client = api.client()
    assert client.post("/api/login", json={"name": "op", "password": PASSWORD}
                       ).status_code == 200  # fmt: skip
    with api.db.session() as session:
        left = TokenRepo(session).list()
    assert [r.kind for r in left] == [TokenKind.SESSION]  # only the new session
    assert all(r.expires is not None and r.expires > 10_000 for r in left)
