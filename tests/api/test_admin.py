"""Roles table, run-time rules, audit log, users, the live WebSocket (metrics: test_metrics)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import update
from starlette.websockets import WebSocketDisconnect

from tests.api.conftest import PASSWORD, Api
from vigil.store import AuditRepo, AuditRow, Role

ZONE = {"polygon": [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9]], "labels": ["person"]}
LINE = {"points": [[0.0, 0.5], [1.0, 0.5]]}


@pytest.mark.parametrize(("role", "method", "path", "body", "status"), [
    (Role.VIEWER, "GET", "/api/events", None, 200),
    (Role.VIEWER, "GET", "/api/audit", None, 403),
    (Role.VIEWER, "GET", "/api/users", None, 403),
    (Role.VIEWER, "PUT", "/api/config/cameras/front/rules", {}, 403),
    (Role.OPERATOR, "PUT", "/api/config/cameras/front/rules", {}, 200),  # issue #4: operators
    (Role.OPERATOR, "GET", "/api/audit", None, 403),
    (Role.AUDITOR, "GET", "/api/audit", None, 200),
    (Role.AUDITOR, "GET", "/api/audit/verify", None, 200),
    (Role.AUDITOR, "GET", "/api/events", None, 403),
    (Role.AUDITOR, "GET", "/api/cameras/front/snapshot", None, 403),
    (Role.AUDITOR, "GET", "/api/metrics-not-here", None, 404),
    (Role.ADMIN, "GET", "/api/users", None, 200),
    (Role.ADMIN, "PUT", "/api/config/cameras/front/rules", {}, 200),
    (Role.ADMIN, "GET", "/api/audit", None, 200),
])  # fmt: skip
def test_roles(api: Api, role: Role, method: str, path: str, *, body: Any, status: int) -> None:
    client = api.login("someone", role)
    reply = client.request(method, path, json=body)
    assert reply.status_code == status, reply.text
    if status >= 400:
        assert set(reply.json()) == {"error"}


def test_rules_get_put_validated_and_audited(api: Api) -> None:
    admin = api.login("root", Role.ADMIN)
    assert admin.get("/api/config/cameras/front/rules").json() == {"zones": {}, "lines": {}}
    bad = admin.put("/api/config/cameras/front/rules",
                    json={"zones": {"z": {"polygon": [[0, 0], [1, 1]]}}})  # fmt: skip
    assert bad.status_code == 422
    assert bad.json()["error"]["code"] == "validation_error"
    typo = admin.put("/api/config/cameras/front/rules", json={"zonez": {}})
    assert typo.status_code == 422
    good = admin.put("/api/config/cameras/front/rules",
                     json={"zones": {"door": ZONE}, "lines": {"gate": LINE}})  # fmt: skip
    assert good.status_code == 200
    zones, lines = api.runtime.rules("front")
    assert list(zones) == ["door"]
    assert zones["door"].labels == ["person"]
    assert list(lines) == ["gate"]
    assert admin.get("/api/config/cameras/front/rules").json()["zones"]["door"]["labels"] == [
        "person"
    ]
    assert admin.put("/api/config/cameras/ghost/rules", json={}).status_code == 404
    with api.db.session() as session:
        (record,) = AuditRepo(session).records(action="rules.update")
    assert record.details["old"] == {"zones": {}, "lines": {}}
    assert list(record.details["new"]["zones"]) == ["door"]


def test_a_rule_name_over_the_limit_is_refused_by_the_api(api: Api) -> None:
    from vigil.config.models import RULE_NAME_MAX

    admin = api.login("root", Role.ADMIN)
    long = "g" * (RULE_NAME_MAX + 1)
    reply = admin.put("/api/config/cameras/front/rules",
                      json={"zones": {"door": ZONE}, "lines": {long: LINE}})  # fmt: skip
    assert reply.status_code == 422, reply.text
    error = reply.json()["error"]
    assert error["code"] == "invalid"
    assert (
        f"camera 'front': line {long!r} is {RULE_NAME_MAX + 1} characters long"
        in (error["message"])
    )
    assert f"at most {RULE_NAME_MAX}" in error["message"]
    assert api.runtime.rules("front") == ({}, {}), "nothing applied"
    with api.db.session() as session:
        assert AuditRepo(session).records(action="rules.update") == []
    longest = "g" * RULE_NAME_MAX
    ok = admin.put("/api/config/cameras/front/rules", json={"lines": {longest: LINE}})
    assert ok.status_code == 200, ok.text
    assert list(api.runtime.rules("front")[1]) == [longest]


@pytest.mark.parametrize("name", ["", "  "])
def test_an_empty_rule_name_is_refused_by_the_api(api: Api, name: str) -> None:
    admin = api.login("root", Role.ADMIN)
    reply = admin.put("/api/config/cameras/front/rules", json={"zones": {name: ZONE}})
    assert reply.status_code == 422, reply.text
    error = reply.json()["error"]
    assert error["code"] == "invalid"
    assert f"camera 'front': a zone has an empty name ({name!r})" in error["message"]
    assert "give it a name of 1 to" in error["message"]
    assert api.runtime.rules("front") == ({}, {}), "nothing applied"
    with api.db.session() as session:
        assert AuditRepo(session).records(action="rules.update") == []


def test_switches_through_the_api_are_role_checked_and_audited(api: Api) -> None:
    viewer = api.login("val", Role.VIEWER)
    operator = api.login("opal", Role.OPERATOR)
    assert viewer.get("/api/cameras/front/switches").json() == {
        "detection": True,
        "recording": None,
    }
    off = {"on": False}
    assert viewer.put("/api/cameras/front/switches/detection", json=off).status_code == 403
    reply = operator.put("/api/cameras/front/switches/detection", json=off)
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"detection": False, "recording": None}
    assert api.runtime.switches("front") == {"detection": False}
    # A camera not recorded here has no recording switch; unknown names are refused.
    assert operator.put("/api/cameras/front/switches/recording", json=off).status_code == 404
    assert operator.put("/api/cameras/front/switches/lights", json=off).status_code == 422
    assert operator.put("/api/cameras/ghost/switches/detection", json=off).status_code == 404
    assert operator.put("/api/cameras/front/switches/detection",
                        json={"on": "maybe"}).status_code == 422  # fmt: skip
    with api.db.session() as session:
        (record,) = AuditRepo(session).records(action="switch.set")
    assert (record.actor, record.target) == ("opal", "front")
    assert record.details == {"switch": "detection", "on": False, "was": True}


def test_audit_log_filters_and_verify(api: Api) -> None:
    admin = api.login("root", Role.ADMIN)
    admin.post("/api/users", json={"name": "ann", "role": "viewer", "password": PASSWORD})
    admin.get("/api/cameras/front/snapshot")
    auditor = api.login("aud", Role.AUDITOR)
    records = auditor.get("/api/audit").json()
    assert [r["action"] for r in records] == ["user.create", "camera.snapshot"]
    assert auditor.get("/api/audit", params={"action": "user.*"}).json()[0]["target"] == "ann"
    assert auditor.get("/api/audit", params={"actor": "nobody"}).json() == []
    assert auditor.get("/api/audit", params={"after_seq": 1}).json()[0]["seq"] == 2
    assert auditor.get("/api/audit/verify").json()["ok"] is True
    with api.db.session() as session:
        session.execute(update(AuditRow).where(AuditRow.seq == 1).values(target="mallory"))
    broken = auditor.get("/api/audit/verify").json()
    assert broken["ok"] is False
    assert broken["first_bad_seq"] == 1


def test_users_create_patch_and_sessions_end(api: Api) -> None:
    admin = api.login("root", Role.ADMIN)
    made = admin.post("/api/users", json={"name": "ann", "role": "viewer", "password": PASSWORD,
                                           "cameras": ["front"]})  # fmt: skip
    assert made.status_code == 201
    assert made.json()["cameras"] == ["front"]
    dup = admin.post("/api/users", json={"name": "ann", "role": "viewer", "password": PASSWORD})
    assert dup.status_code == 409
    weak = admin.post("/api/users", json={"name": "bo", "role": "viewer", "password": "x"})
    assert weak.status_code == 422
    ann = api.login("ann")
    assert [c["name"] for c in ann.get("/api/cameras").json()] == ["front"]
    assert admin.patch("/api/users/ann", json={"clear_cameras": True}).json()["cameras"] is None
    assert [c["name"] for c in ann.get("/api/cameras").json()] == ["back", "front"]
    assert admin.patch("/api/users/ann", json={"role": "operator"}).json()["role"] == "operator"
    assert admin.patch("/api/users/ann", json={"disabled": True}).status_code == 200
    assert ann.get("/api/me").status_code == 401  # disabling ended the session
    assert admin.patch("/api/users/ghost", json={"disabled": True}).status_code == 404
    names = [u["name"] for u in admin.get("/api/users").json()]
    assert names == ["ann", "root"]
    with api.db.session() as session:
        actions = [r.action for r in AuditRepo(session).records(action="user.")]
    assert actions == ["user.create", "user.update", "user.update", "user.update"]


def test_the_last_enabled_admin_cannot_be_demoted_or_disabled(api: Api) -> None:
    root = api.login("root", Role.ADMIN)
    for change in ({"role": "operator"}, {"disabled": True}):
        reply = root.patch("/api/users/root", json=change)
        assert reply.status_code == 409, change
        assert "last enabled admin" in reply.json()["error"]["message"]
    api.add_user("deputy", Role.ADMIN)
    assert root.patch("/api/users/deputy", json={"disabled": True}).status_code == 200
    assert root.patch("/api/users/root", json={"role": "viewer"}).status_code == 409
    assert root.patch("/api/users/deputy", json={"disabled": False}).status_code == 200
    assert root.patch("/api/users/root", json={"role": "viewer"}).json()["role"] == "viewer"


def _wait_subscribers(api: Api, n: int) -> None:
    deadline = time.monotonic() + 5
    while api.runtime.subscribers < n:
        assert time.monotonic() < deadline, "the WebSocket never subscribed"
        time.sleep(0.01)


def test_websocket_pushes_scoped_events(api: Api) -> None:
    client = api.login("bob", Role.VIEWER, cameras=["front"])
    with client.websocket_connect("/api/ws/events") as ws:
        _wait_subscribers(api, 1)
        api.runtime.publish({"id": "b1", "camera": "back"})
        api.runtime.publish({"id": "f1", "camera": "front", "label": "person"})
        assert ws.receive_json() == {"id": "f1", "camera": "front", "label": "person"}
    deadline = time.monotonic() + 5
    while api.runtime.subscribers:  # leaving ends the subscription without another event
        assert time.monotonic() < deadline, "the subscription outlived its WebSocket"
        time.sleep(0.01)


def test_websocket_token_and_origin(api: Api) -> None:
    client = api.login("bob", Role.VIEWER)
    token = client.post("/api/tokens", json={"name": "wall"}).json()["token"]
    machine = api.client()
    with machine.websocket_connect(f"/api/ws/events?token={token}") as ws:
        _wait_subscribers(api, 1)
        api.runtime.publish({"id": "f1", "camera": "front"})
        assert ws.receive_json()["id"] == "f1"
        api.runtime.close()
    evil = {"Origin": "https://evil.example"}
    with (
        pytest.raises(WebSocketDisconnect),
        client.websocket_connect("/api/ws/events", headers=evil) as ws,
    ):
        ws.receive_json()
    auditor = api.login("aud", Role.AUDITOR)
    with pytest.raises(WebSocketDisconnect), auditor.websocket_connect("/api/ws/events") as ws:
        ws.receive_json()
