"""The OpenAPI document (``/api/openapi.json``) tells the truth: how to authenticate, every
error status the server answers, every error in the one schema, the cursor's format."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.api.conftest import PASSWORD, T0, Api
from tests.api.test_events import add_event
from vigil.api.app import PUBLIC_PATHS
from vigil.api.auth import SAFE_METHODS
from vigil.store import EventCursor, Role

ERROR_REF = "#/components/schemas/ErrorBody"


@pytest.fixture
def spec(api: Api) -> dict[str, Any]:
    reply = api.client().get("/api/openapi.json")
    assert reply.status_code == 200
    return dict(reply.json())


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method.upper(), path, op) for path, ops in spec["paths"].items()
            for method, op in ops.items()]  # fmt: skip


def test_security_schemes_are_declared(spec: dict[str, Any]) -> None:
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    assert (schemes["session"]["type"], schemes["session"]["in"],
            schemes["session"]["name"]) == ("apiKey", "cookie", "vigil_session")  # fmt: skip
    assert (schemes["csrf"]["type"], schemes["csrf"]["in"],
            schemes["csrf"]["name"]) == ("apiKey", "header", "X-CSRF-Token")  # fmt: skip


def test_every_protected_operation_requires_auth(spec: dict[str, Any]) -> None:
    """Bearer token, or session cookie (+ CSRF header on unsafe methods); public: none."""
    checked = 0
    for method, path, op in _operations(spec):
        if path in PUBLIC_PATHS:
            assert op["security"] == [], (method, path)
            continue
        session = {"session": []} if method in SAFE_METHODS else {"session": [], "csrf": []}
        assert op["security"] == [{"bearer": []}, session], (method, path)
        checked += 1
    assert checked >= 20


def test_every_error_response_has_the_error_schema(spec: dict[str, Any]) -> None:
    """416 included: each documented 4xx/5xx names the one error body."""
    for method, path, op in _operations(spec):
        for status, response in op["responses"].items():
            if int(status) >= 400:
                schema = response.get("content", {}).get("application/json", {}).get("schema")
                assert schema == {"$ref": ERROR_REF}, (method, path, status)


@pytest.mark.parametrize(("method", "path", "status"), [
    ("POST", "/api/setup", "409"), ("POST", "/api/users", "409"),
    ("PATCH", "/api/users/{name}", "409"), ("POST", "/api/login", "429"),
    ("GET", "/api/recordings/{segment_id}/media", "416"), ("GET", "/api/exports/{name}", "416"),
    ("GET", "/api/events/{event_id}/clip", "416"),
])  # fmt: skip
def test_conflict_rate_limit_and_range_are_documented(
    spec: dict[str, Any], method: str, path: str, status: str
) -> None:
    assert status in spec["paths"][path][method.lower()]["responses"]


def test_retry_after_and_content_range_headers_are_documented(spec: dict[str, Any]) -> None:
    login = spec["paths"]["/api/login"]["post"]["responses"]["429"]
    assert "Retry-After" in login["headers"]
    media = spec["paths"]["/api/recordings/{segment_id}/media"]["get"]["responses"]["416"]
    assert "Content-Range" in media["headers"]


def _documented(spec: dict[str, Any], method: str, path: str, status: int) -> bool:
    return str(status) in spec["paths"][path][method.lower()]["responses"]


def test_statuses_the_server_answers_are_documented(api: Api, spec: dict[str, Any]) -> None:
    """Make the server answer 409, 429 and 416 for real; each is in the document."""
    client = api.client()
    assert client.post("/api/setup", json={"name": "root", "password": PASSWORD}).status_code == 201
    again = client.post("/api/setup", json={"name": "x", "password": PASSWORD})
    assert again.status_code == 409
    assert _documented(spec, "POST", "/api/setup", 409)
    admin = api.login("root")
    dup = admin.post("/api/users", json={"name": "root", "role": "viewer", "password": PASSWORD})
    assert dup.status_code == 409
    assert _documented(spec, "POST", "/api/users", 409)
    last = admin.patch("/api/users/root", json={"role": "viewer"})
    assert last.status_code == 409
    assert _documented(spec, "PATCH", "/api/users/{name}", 409)
    seg_id, _ = api.add_segment("front", T0)
    far = admin.get(f"/api/recordings/{seg_id}/media", headers={"Range": "bytes=999999999-"})
    assert far.status_code == 416
    assert set(far.json()) == {"error"}
    assert _documented(spec, "GET", "/api/recordings/{segment_id}/media", 416)
    statuses = {api.client().post("/api/login", json={"name": "root", "password": "wrong"}
                                  ).status_code for _ in range(6)}  # fmt: skip
    assert 429 in statuses
    assert _documented(spec, "POST", "/api/login", 429)


def _cursor_pattern(spec: dict[str, Any]) -> str:
    params = spec["paths"]["/api/events"]["get"]["parameters"]
    schema = next(p for p in params if p["name"] == "cursor")["schema"]
    string = next(s for s in schema["anyOf"] if s.get("type") == "string")
    return str(string["pattern"])


@pytest.mark.parametrize("garbage", ["!!!", "a", "%00", "abc=", "a b", "x" * 2000])
def test_cursor_outside_the_declared_format_is_422(
    api: Api, spec: dict[str, Any], garbage: str
) -> None:
    """The spec declares the cursor's pattern, and the server refuses what does not match."""
    pattern = _cursor_pattern(spec)
    assert re.fullmatch(pattern, garbage) is None or len(garbage) > 1024
    reply = api.login("val", Role.VIEWER).get("/api/events", params={"cursor": garbage})
    assert reply.status_code == 422
    assert _documented(spec, "GET", "/api/events", 422)


def test_cursors_the_server_hands_out_match_the_declared_format(
    api: Api, spec: dict[str, Any]
) -> None:
    for i in range(5):
        add_event(api, f"ev-{i}", start=T0 + i)
    client = api.login("val", Role.VIEWER)
    pattern, cursor, pages = _cursor_pattern(spec), None, 0
    while True:
        params = {"limit": 2} if cursor is None else {"limit": 2, "cursor": cursor}
        page = client.get("/api/events", params=params).json()
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert re.fullmatch(pattern, cursor), cursor
    assert pages == 3


@given(start=st.floats(allow_nan=False, allow_infinity=False),
       event_id=st.text(min_size=1, max_size=64))  # fmt: skip
def test_every_encoded_cursor_matches_the_pattern(start: float, event_id: str) -> None:
    from vigil.api.params import CURSOR_PATTERN

    text = EventCursor(start, event_id).encode()
    assert re.fullmatch(CURSOR_PATTERN, text), text
    assert 2 <= len(text) <= 1024
