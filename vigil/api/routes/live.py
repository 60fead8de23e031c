"""Prometheus ``/metrics``, the live event WebSocket, and (included from ``view``) the live
view: MJPEG stream, unredacted-live grants, overlay."""

from __future__ import annotations

import contextlib
from urllib.parse import urlsplit

import anyio
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from vigil.api.auth import Capability, Principal
from vigil.api.deps import Reader, StateDep, client_address, get_state, principal_for
from vigil.api.metrics import render_metrics
from vigil.api.routes import protected, view
from vigil.api.state import AppState
from vigil.errors import AuthError, StorageError
from vigil.store import TokenKind

router = protected(tags=["live"])
router.include_router(view.router)
sockets = APIRouter(tags=["live"])

#: WebSocket close code for a refused connection (RFC 6455 "policy violation").
WS_POLICY = 1008


@router.get("/metrics", responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
            response_class=Response)  # fmt: skip
def metrics(who: Reader, state: StateDep) -> Response:
    """Prometheus text of the cameras in the caller's scope: what ``/api/cameras`` shows,
    plus recorded bytes, so the same ``read`` capability (viewers, operators, admins; not
    auditors, whose role is the audit log only). Scrape with a viewer's API token
    (``Authorization: Bearer``), scoped to the cameras it may report on."""
    return Response(render_metrics(state, who), media_type=CONTENT_TYPE_LATEST)


def _same_origin(ws: WebSocket) -> bool:
    """Browsers send ``Origin``: refuse cross-site pages riding on the session cookie."""
    origin = ws.headers.get("origin")
    return origin is None or urlsplit(origin).netloc == ws.headers.get("host")


def ws_principal(ws: WebSocket, state: AppState) -> Principal:
    """The caller of a WebSocket: ``?token=`` (API token) or the session cookie."""
    client = client_address(ws)
    token = ws.query_params.get("token")
    if token:
        return principal_for(state, token, TokenKind.API, client)
    cookie = ws.cookies.get("vigil_session")
    if not cookie or not _same_origin(ws):
        raise AuthError("log in first, or pass ?token=<api token>")
    return principal_for(state, cookie, TokenKind.SESSION, client)


@sockets.websocket("/api/ws/events")
async def events_socket(ws: WebSocket) -> None:
    """Live events (``event_to_dict`` JSON) of the cameras in the caller's scope."""
    state = get_state(ws)
    try:
        who = await run_in_threadpool(ws_principal, ws, state)  # a database lookup
    except (AuthError, StorageError):
        await ws.close(code=WS_POLICY)
        return
    if not who.can(Capability.READ):
        await ws.close(code=WS_POLICY)
        return
    await ws.accept()
    # Watch for the client leaving while no event comes, so its subscription ends at once.
    # anyio (not bare asyncio tasks) so that the server's own cancellation stays intact.
    left = False
    async with anyio.create_task_group() as group:

        async def pump() -> None:
            with contextlib.suppress(WebSocketDisconnect):
                async for event in state.runtime.subscribe():
                    if who.sees(str(event.get("camera"))):
                        await ws.send_json(event)
            group.cancel_scope.cancel()

        async def watch() -> None:
            nonlocal left
            while (await ws.receive())["type"] != "websocket.disconnect":
                pass  # messages from the client are ignored
            left = True
            group.cancel_scope.cancel()

        group.start_soon(pump)
        group.start_soon(watch)
    if not left:  # the runtime stopped: say goodbye
        with contextlib.suppress(RuntimeError):
            await ws.close()
