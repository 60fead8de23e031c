"""Stream URLs: a camera's *redacted* live view for players that cannot send a Bearer header.

Home Assistant's ``mjpeg`` camera (``mjpeg_url``, ``still_image_url``) and ``generic`` camera
can send HTTP Basic or Digest credentials only. Vigil gives them a URL that carries its own
credential instead: ``POST /api/cameras/{name}/stream-token`` (a password login, a caller
who sees the camera) mints an API token with the scope ``live:<camera>`` and answers::

    /api/stream/<camera>/live.mjpeg?token=<token>     MJPEG, redacted
    /api/stream/<camera>/still.jpg?token=<token>      one JPEG, redacted

Why a scoped token rather than Basic auth with a dedicated user: a user's password opens
the whole API for its role (events, recordings, every camera it sees) and logs in; a scoped
token opens two URLs of one camera and nothing else. ``principal_for`` refuses scoped tokens
on every other route (REST, WebSocket, metrics), and these routes refuse full tokens,
sessions and tokens of another camera. There is no way past redaction here: no ``grant``,
no ``unredacted``, no overlay; the frames are those every viewer gets (faces, people and the
camera's static masks hidden). A token in a URL ends up in logs and in Home Assistant's
configuration, which is why it is this narrow; it expires like every API token, is listed
with them, and ``DELETE /api/tokens/{id}`` revokes it (an open stream ends within a second).
Every stream and still is audited (``camera.live``/``camera.snapshot``, ``via: stream
token``), as other media reads are.
"""

from __future__ import annotations

import time
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from vigil.api.auth import Principal
from vigil.api.deps import TOUCH_INTERVAL_S, Reader, StateDep, client_address
from vigil.api.errors import ForbiddenError, not_found
from vigil.api.live import LiveView, frame_time
from vigil.api.routes import ERRORS, protected
from vigil.api.routes.view import BOUNDARY, MJPEG, _camera, _may_watch, _parts
from vigil.api.schemas import StreamTokenOut, TokenRequest
from vigil.api.state import AppState
from vigil.errors import AuthError, ConfigError
from vigil.store import TokenKind, TokenRepo

router = protected(tags=["stream"])
public = APIRouter(tags=["stream"], responses=ERRORS)

JPEG: dict[int | str, dict[str, Any]] = {200: {"content": {"image/jpeg": {}}}}


def live_scope(camera: str) -> str:
    """The scope of a stream token of ``camera``."""
    return f"live:{camera}"


@router.post("/api/cameras/{name}/stream-token", status_code=201)
def create_stream_token(name: str, body: TokenRequest, who: Reader,
                        state: StateDep) -> StreamTokenOut:  # fmt: skip
    """A token that opens only ``name``'s redacted stream and still URLs (for Home Assistant's
    ``mjpeg`` camera); shown once. Password logins only; expires like API tokens."""
    _camera(state, who, name)
    if who.via != "session":
        raise ForbiddenError("an API token cannot create tokens; log in with a password")
    most = state.settings.token_ttl_s
    if body.ttl_s is not None and body.ttl_s > most:
        raise ConfigError(f"ttl_s may be at most {most:.0f} s (server.token_ttl); ask for less")
    state.purge_expired_tokens()
    with state.db.session(immediate=True) as session:
        issued = TokenRepo(session).issue(who.user_id, TokenKind.API, ttl_s=body.ttl_s or most,
                                          name=body.name, scope=live_scope(name))  # fmt: skip
    state.audit(who, "token.create", who.name,
                details={"name": body.name, "id": issued.row.id, "expires": issued.row.expires,
                         "scope": issued.row.scope})  # fmt: skip
    base = f"/api/stream/{quote(name, safe='')}"
    token = quote(issued.token, safe="")
    return StreamTokenOut(
        id=issued.row.id, token=issued.token, name=issued.row.name, expires=issued.row.expires,
        camera=name, mjpeg_url=f"{base}/live.mjpeg?token={token}",
        still_image_url=f"{base}/still.jpg?token={token}",
    )  # fmt: skip


def stream_principal(state: AppState, token: str, camera: str, client: str | None) -> Principal:
    """The viewer behind a stream token of ``camera``; ``AuthError`` for anything else (a
    full token, a session, another camera's token, expired, revoked, a user who may no
    longer watch the camera)."""
    with state.db.session() as session:
        found = TokenRepo(session).lookup(token, touch=False)
        if (
            found is None
            or found[0].kind != TokenKind.API
            or found[0].scope != live_scope(camera)
            or not _may_watch(found[1], camera)
        ):
            raise AuthError(f"not a valid stream token of camera {camera!r}; mint one with "
                            f"POST /api/cameras/{camera}/stream-token")  # fmt: skip
        row, user = found
        cams = None if user.cameras is None else tuple(user.cameras)
        who = Principal(user.id, user.name, user.role, cams, "stream", client)
        token_id, last_used = row.id, row.last_used
    now = time.time()
    if last_used is None or now - last_used >= TOUCH_INTERVAL_S:
        with state.db.session(immediate=True) as session:
            TokenRepo(session).touch(token_id, now=now)
    return who


async def _authorise(state: AppState, request: Request, token: str | None, name: str) -> Principal:
    if not token:  # optional in the signature so that its absence is a 401, as elsewhere
        raise AuthError(f"add ?token=<stream token of {name!r}> to the URL")
    who = await run_in_threadpool(stream_principal, state, token, name, client_address(request))
    if frame_time(state.runtime, name) is None:
        raise not_found(f"camera {name!r}")
    return who


def _details(view: LiveView, **more: Any) -> dict[str, Any]:
    return {"redacted": True, "via": "stream token", "width": view.width, **more}


@public.get("/api/stream/{name}/live.mjpeg", responses=MJPEG, response_class=StreamingResponse)
async def stream_mjpeg(
    name: str, request: Request, state: StateDep, token: str | None = None, *,
    fps: Annotated[float, Query(gt=0, le=15)] = 5.0,
    width: Annotated[int, Query(ge=16, le=7680)] = 960,
) -> StreamingResponse:  # fmt: skip
    """``name``'s live view, redacted, as MJPEG, for a stream token of that camera."""
    who = await _authorise(state, request, token, name)
    view = LiveView(name, width, False, redacted=True)
    await run_in_threadpool(state.audit, who, "camera.live", name,
                            details=_details(view, fps=fps))  # fmt: skip
    return StreamingResponse(
        # The token is re-checked while streaming: revoking it ends the stream.
        _parts(state, who, view, fps=fps, grant=None, credential=str(token)),
        media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@public.get("/api/stream/{name}/still.jpg", responses=JPEG, response_class=Response)
async def stream_still(
    name: str, request: Request, state: StateDep, token: str | None = None, *,
    width: Annotated[int, Query(ge=16, le=7680)] = 960,
) -> Response:  # fmt: skip
    """``name``'s newest frame, redacted, as one JPEG, for a stream token of that camera."""
    who = await _authorise(state, request, token, name)
    view = LiveView(name, width, False, redacted=True)
    when = frame_time(state.runtime, name)
    data = None if when is None else await run_in_threadpool(state.live.jpeg, view, when)
    if data is None:
        raise not_found(f"a frame of camera {name!r}")
    await run_in_threadpool(state.audit, who, "camera.snapshot", name, details=_details(view))
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})
