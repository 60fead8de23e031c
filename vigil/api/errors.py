"""One error schema for every API error: ``{"error": {"code": ..., "message": ...}}``.

``VigilError`` subclasses map to statuses here, at the boundary (routes raise them freely):
``AuthError`` 401 (``ForbiddenError``, its subclass, 403), ``PrivacyError`` 403, ``ConfigError``
422, ``SourceError`` 404 (no such media), ``StorageError`` 503 (``NodeUnavailableError``, the
cluster node holding the media is down: 503 ``node_unavailable`` naming it). ``ApiError``
carries any other status with a code.
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from vigil.errors import (
    AuthError,
    ConfigError,
    MediaNotFoundError,
    NodeUnavailableError,
    PrivacyError,
    SourceError,
    StorageError,
    VigilError,
)


class ForbiddenError(AuthError):
    """Authenticated, but the role or camera scope does not allow this (403)."""


class ApiError(VigilError):
    """An error with an explicit HTTP status and machine-readable code."""

    def __init__(
        self, status: int, code: str, message: str, *, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.headers = dict(headers or {})


#: Seconds a client is told to wait before asking again for media of a node that is down.
NODE_RETRY_S = 30
#: Seconds a client is told to wait when every password-check slot is taken.
BUSY_RETRY_S = 1


def hashing_busy() -> ApiError:
    """503 for a password check that the hash gate has no room for (``HashGate``)."""
    return ApiError(503, "busy", "the server is busy checking passwords; retry in a moment",
                    headers={"Retry-After": str(BUSY_RETRY_S)})  # fmt: skip


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} not found (or not in your camera scope)")


_STATUS: tuple[tuple[type[VigilError], int, str], ...] = (
    (ForbiddenError, 403, "forbidden"),
    (AuthError, 401, "unauthorized"),
    (PrivacyError, 403, "privacy"),
    (ConfigError, 422, "invalid"),
    (MediaNotFoundError, 404, "not_found"),
    (SourceError, 404, "no_media"),
    (NodeUnavailableError, 503, "node_unavailable"),
    (StorageError, 503, "storage_unavailable"),
)

_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 409: "conflict", 416: "range_not_satisfiable",
               413: "too_large", 429: "rate_limited", 503: "busy"}  # fmt: skip


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    body = {"error": {"code": code, "message": message}}
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


def status_of(exc: BaseException) -> tuple[int, str]:
    """``(HTTP status, code)`` of an error, as the API answers it."""
    if isinstance(exc, ApiError):
        return exc.status, exc.code
    for cls, status, code in _STATUS:
        if isinstance(exc, cls):
            return status, code
    return 500, "internal"


def _vigil(_request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, ApiError):
        return error_response(exc.status, exc.code, str(exc), exc.headers)
    status, code = status_of(exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if isinstance(exc, NodeUnavailableError):  # a node comes back: worth asking again
        headers = {"Retry-After": str(NODE_RETRY_S)}
    return error_response(status, code, str(exc), headers)


def _http(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail), exc.headers)


def _validation(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()))
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return error_response(422, "validation_error", "; ".join(parts) or "invalid request")


def install(app: FastAPI) -> None:
    """Register the handlers that give every error the one schema."""
    app.add_exception_handler(VigilError, _vigil)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(RequestValidationError, _validation)
