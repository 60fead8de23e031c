"""The API's routers. ``public`` routes need no login; every other router carries
``Depends(authenticate)`` at router level, so its routes cannot forget authentication."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from vigil.api.deps import authenticate
from vigil.api.schemas import ErrorBody

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody} for status in (401, 403, 404, 422, 503)
}


def error(description: str, **headers: str) -> dict[str, Any]:
    """An error response in the one schema, for a route's ``responses``; ``headers``: name
    to description of headers it carries (``Retry_After`` documents ``Retry-After``)."""
    doc: dict[str, Any] = {"model": ErrorBody, "description": description}
    if headers:
        doc["headers"] = {
            name.replace("_", "-"): {"description": text, "schema": {"type": "string"}}
            for name, text in headers.items()
        }
    return doc


def protected(**kwargs: Any) -> APIRouter:
    """A router whose every route requires an authenticated caller."""
    return APIRouter(dependencies=[Depends(authenticate)], responses=ERRORS, **kwargs)
