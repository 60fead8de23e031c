"""The web interface: a single-page app of plain HTML, CSS and ES modules, served by the API.

No build step and nothing fetched from elsewhere: the files under ``static/`` are the app, and
they ship inside the package. ``mount(app)`` serves

* ``/`` — ``index.html`` (the app's shell; pages are hash routes such as ``#/live``), and
* ``/static/...`` — the CSS and JavaScript modules,

both without authentication, because they hold no data: every datum the pages show comes from
the authenticated ``/api`` routes. ``PUBLIC_UI_PATHS`` names exactly those public paths, so
the API's route enumeration test can exempt them deliberately and no other.

UI responses carry a strict Content-Security-Policy (no inline script or style, nothing from
other origins, no framing) plus ``nosniff`` and a same-origin referrer policy. They are added
by a small ASGI middleware that looks only at the UI paths; API responses (JSON, MJPEG streams,
MP4 with Range) pass through untouched, and ``/api/docs`` keeps working with its own assets.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: The directory of the app's files inside the installed package.
STATIC_DIR = Path(str(resources.files("vigil.web") / "static"))

#: Where the static files are served; the index is served at ``/``.
STATIC_PREFIX = "/static"

#: Routes of the UI that answer without authentication (they hold no data).
PUBLIC_UI_PATHS = frozenset({"/"})

#: Headers on every UI response (the index and static files).
SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; "
        "connect-src 'self' ws: wss:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def is_ui_path(path: str) -> bool:
    """True for the paths ``mount`` serves: the index and anything under ``/static/``."""
    return path in PUBLIC_UI_PATHS or path.startswith(STATIC_PREFIX + "/")


class SecurityHeaders:
    """ASGI middleware: add ``SECURITY_HEADERS`` to HTTP responses of UI paths only.

    Pure ASGI rather than ``BaseHTTPMiddleware`` so streaming API responses (MJPEG, video)
    are never buffered or wrapped: for non-UI paths the call goes straight through.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_ui_path(str(scope.get("path", ""))):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v) for k, v in message.get("headers", [])
                    if k.decode("latin-1").lower() not in _LOWER_NAMES
                ]  # fmt: skip
                headers += [(k.lower().encode("latin-1"), v.encode("latin-1"))
                            for k, v in SECURITY_HEADERS.items()]  # fmt: skip
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


_LOWER_NAMES = frozenset(k.lower() for k in SECURITY_HEADERS)


def mount(app: FastAPI) -> None:
    """Serve the web app from ``app``: ``/`` and ``/static/...``, with security headers.

    Call once, after the API routers are included. ``ModuleNotFoundError``-free: the files
    are package data; a missing ``index.html`` means a broken install and fails loudly here.
    """
    index = STATIC_DIR / "index.html"
    if not index.is_file():
        raise FileNotFoundError(f"the web app is missing ({index}); reinstall vigil")

    @app.get("/", include_in_schema=False, response_class=FileResponse)
    def web_index() -> FileResponse:
        # no-cache: the shell is tiny and must pick up new module versions after an upgrade.
        return FileResponse(index, media_type="text/html", headers={"Cache-Control": "no-cache"})

    app.mount(STATIC_PREFIX, StaticFiles(directory=STATIC_DIR), name="web-static")
    app.add_middleware(SecurityHeaders)
