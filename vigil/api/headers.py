"""Security headers on every API response (the web UI's files get theirs from ``vigil.web``).

``API_HEADERS`` go on every HTTP response outside the UI's paths: JSON, MJPEG streams, MP4 and
JPEG media, errors. ``Cache-Control: no-store`` (nothing the API answers may sit in a shared
or browser cache: events, media, tokens) is a default a route may override, as the event
index does with ``no-cache``; the others replace whatever a route set. The policy is
``frame-ancestors`` only: media opened directly in a tab is a document the browser builds
itself, and a ``default-src 'none'`` there could stop it from playing.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vigil.web import is_ui_path

#: Set on every API response, replacing a route's own value.
API_HEADERS: dict[str, str] = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
}

#: Set on API responses that do not say otherwise.
API_DEFAULT_HEADERS: dict[str, str] = {"Cache-Control": "no-store"}

_FORCED = frozenset(k.lower().encode("latin-1") for k in API_HEADERS)
_ADDED = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in API_HEADERS.items()]
_DEFAULTS = [(k.lower().encode("latin-1"), v.encode("latin-1"))
             for k, v in API_DEFAULT_HEADERS.items()]  # fmt: skip


def with_api_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` (ASGI form) with ``API_HEADERS`` set and missing defaults added."""
    kept = [(k, v) for k, v in headers if k.lower() not in _FORCED]
    present = {k.lower() for k, _ in kept}
    return kept + _ADDED + [(k, v) for k, v in _DEFAULTS if k not in present]


class ApiSecurityHeaders:
    """ASGI middleware: ``with_api_headers`` on HTTP responses outside the UI's paths.

    Pure ASGI (as ``vigil.web.SecurityHeaders``): only the response's start message is
    touched, so streams (MJPEG, video with Range) pass unbuffered.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_ui_path(str(scope.get("path", ""))):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": with_api_headers(list(message.get("headers", [])))}
            await send(message)

        await self.app(scope, receive, send_with_headers)
