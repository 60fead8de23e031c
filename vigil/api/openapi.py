"""The OpenAPI document says how to authenticate.

FastAPI documents security only for dependencies built from its ``fastapi.security`` classes;
Vigil's ``authenticate`` reads the cookie, the CSRF header and the bearer token itself (one
place for the rules, see ``vigil.api.deps``). ``install`` therefore adds to the generated
document the three schemes (``bearer``: an API token; ``session``: the ``vigil_session``
cookie; ``csrf``: the ``X-CSRF-Token`` header) and, to every operation outside
``public_paths``, the requirement: a bearer token, or the session cookie plus, on unsafe
methods, the CSRF header.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from vigil.api.auth import CSRF_COOKIE, CSRF_HEADER, SAFE_METHODS, SESSION_COOKIE

SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "bearer": {
        "type": "http", "scheme": "bearer",
        "description": "An API token (POST /api/tokens), for machines; no CSRF header needed.",
    },
    "session": {
        "type": "apiKey", "in": "cookie", "name": SESSION_COOKIE,
        "description": "The HTTP-only session cookie that POST /api/login sets.",
    },
    "csrf": {
        "type": "apiKey", "in": "header", "name": CSRF_HEADER,
        "description": f"With the session cookie on unsafe methods: the value of the "
        f"{CSRF_COOKIE} cookie (also in the login reply's csrf_token).",
    },
}  # fmt: skip


def security_for(method: str) -> list[dict[str, list[str]]]:
    """The OpenAPI security requirement of a protected operation of ``method``."""
    session: dict[str, list[str]] = {"session": []}
    if method.upper() not in SAFE_METHODS:
        session["csrf"] = []
    return [{"bearer": []}, session]


def install(app: FastAPI, public_paths: Collection[str]) -> None:
    """Make ``app.openapi()`` declare the security schemes and requirements."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version,
                                 description=app.description, routes=app.routes)  # fmt: skip
            schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
            for path, operations in schema.get("paths", {}).items():
                for method, operation in operations.items():
                    operation["security"] = [] if path in public_paths else security_for(method)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
