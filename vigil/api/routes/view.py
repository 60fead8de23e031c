"""The live view: MJPEG stream, unredacted-live grants, overlay data (tracks, rules, counts).

``GET /api/cameras/{name}/live.mjpeg`` streams ``multipart/x-mixed-replace`` JPEG parts of the
camera's newest frame, redacted unless ``grant`` names a valid grant of the caller for that
camera. The stream is an async generator that polls the runtime's frame clock every
``POLL_S`` seconds and renders through ``LiveFrames`` (shared by every viewer) in a worker
thread. It ends when the client goes away, when the app stops (``AppState.stopping``), when
the camera leaves the runtime, or when its unredacted grant expires or is ended. Every
``ACCOUNT_CHECK_S`` it also looks up, in the database, the session or token it was opened
with and the viewer's account: a stream ends when that credential ends (logout, revoked,
expired), when its user is disabled or loses the camera, and an unredacted one as soon as the
account is no longer as it was when granted (role, state, password or scope changed, by the
API or by ``vigil user`` in another process); the user's grants end with it. A failed read
ends the stream too (fail closed; the client reconnects).

Client departure is Starlette's job: ``StreamingResponse`` listens for ``http.disconnect`` next
to the generator and cancels it (ASGI spec < 2.4, uvicorn's case), or the next send fails
(2.4+); either way the generator's ``finally`` runs (``AppState.live_streams`` counts the
open ones; the tests watch it return to zero). Polling ``request.is_disconnected()`` as well
would be a second reader of the same ``receive`` channel for no gain.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
from fastapi import Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from vigil.api.auth import ROLE_CAPS, SESSION_COOKIE, Capability, Principal
from vigil.api.deps import Reader, StateDep, bearer
from vigil.api.errors import ForbiddenError, not_found
from vigil.api.live import LiveGrant, LiveView, account_state, frame_time
from vigil.api.routes import protected
from vigil.api.routes.events import unredacted_grant
from vigil.api.schemas import LiveGrantOut, LiveGrantRequest, OverlayOut, TrackOut
from vigil.api.state import SYSTEM_ACTOR, AppState
from vigil.errors import StorageError
from vigil.store import TokenRepo, UserRepo, UserRow

log = logging.getLogger(__name__)

router = protected(tags=["live"])

BOUNDARY = "frame"
#: Seconds between two looks at the camera's frame clock (and at the client's presence).
POLL_S = 0.05
#: Seconds between two reads of a streaming viewer's account (revocation within a second).
ACCOUNT_CHECK_S = 0.5
MJPEG: dict[int | str, dict[str, Any]] = {
    200: {"content": {f"multipart/x-mixed-replace; boundary={BOUNDARY}": {}},
          "description": "JPEG parts, redacted unless a valid grant is given."},
}  # fmt: skip


def _camera(state: AppState, who: Principal, name: str) -> str:
    if frame_time(state.runtime, name) is None or not who.sees(name):
        raise not_found(f"camera {name!r}")
    return name


def _fingerprint(token: str) -> str:
    # The grant is a bearer secret: the audit log names it by a hash, never in full.
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def part(jpeg: bytes) -> bytes:
    """One multipart part: headers, the JPEG, CRLF."""
    head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
    return head.encode() + jpeg + b"\r\n"


def end_user_grants(state: AppState, user: str, *, actor: str, cause: str) -> list[LiveGrant]:
    """End every unredacted-live grant of ``user`` (their account changed), audited one by
    one as ``camera.live.unredacted.end`` with the ``cause``; their streams stop at the next
    poll."""
    ended = state.grants.end_user(user)
    for grant in ended:
        state.audit_log.append(actor, "camera.live.unredacted.end", grant.camera,
                               details={"grant": _fingerprint(grant.token), "user": user,
                                        "cause": cause})  # fmt: skip
    return ended


def _read_account(state: AppState, name: str, credential: str | None = None) -> UserRow | None:
    """User ``name`` as the database has it now; with ``credential`` (the session or API
    token a stream was opened with), None once that credential is no longer valid."""
    with state.db.session() as session:
        if credential is None:
            return UserRepo(session).get(name)
        found = TokenRepo(session).lookup(credential, touch=False)
        return found[1] if found is not None and found[1].name == name else None


def _may_watch(row: UserRow | None, camera: str) -> bool:
    return (row is not None and not row.disabled and Capability.READ in ROLE_CAPS[row.role]
            and (row.cameras is None or camera in row.cameras))  # fmt: skip


def granted(state: AppState, token: str, who: Principal, camera: str) -> LiveGrant | None:
    """The grant ``token`` when it is valid for ``who`` and ``camera`` and the account is
    still as it was when granted; otherwise None, and an account change ends the user's
    grants (the check a grant gets before a stream starts and every ``ACCOUNT_CHECK_S``)."""
    grant = state.grants.valid(token, who.name, camera)
    if grant is None:
        return None
    row = _read_account(state, who.name)
    if row is not None and account_state(row) == grant.account:
        return grant
    end_user_grants(state, who.name, actor=SYSTEM_ACTOR, cause="account changed")
    return None


def _still_allowed(
    state: AppState, who: Principal, camera: str, grant: str | None, credential: str | None
) -> bool:
    """Whether the stream may go on: its credential is still valid, its viewer may watch
    ``camera``, and its grant (if any) still holds. A database failure answers no (fail
    closed)."""
    try:
        # The grant first: an account change must end the user's grants, even when it also
        # ended the credential (disabling revokes sessions).
        if grant is not None and granted(state, grant, who, camera) is None:
            return False
        return _may_watch(_read_account(state, who.name, credential), camera)
    except StorageError as exc:
        log.warning("live stream of %s for %s ended: the account cannot be read (%s)",
                    camera, who.name, exc)  # fmt: skip
        return False


async def _parts(
    state: AppState, who: Principal, view: LiveView, *, fps: float, grant: str | None,
    credential: str | None,
) -> AsyncIterator[bytes]:  # fmt: skip
    """The stream's parts: a new frame at most ``fps`` times a second (see module doc)."""
    period = 1.0 / fps
    last: float | None = None
    next_at = 0.0
    checked_at = anyio.current_time()  # the request itself was just authorised
    state.live_streams += 1
    try:
        while not state.stopping.is_set():
            when = frame_time(state.runtime, view.camera)
            if when is None:
                return  # the camera left the runtime
            if grant is not None and state.grants.valid(grant, who.name, view.camera) is None:
                return  # expired or ended: the client reconnects redacted, or asks again
            now = anyio.current_time()
            if now - checked_at >= ACCOUNT_CHECK_S:
                allowed = await anyio.to_thread.run_sync(
                    _still_allowed, state, who, view.camera, grant, credential
                )
                if not allowed:
                    return  # disabled, demoted, new password or scope: see the module doc
                checked_at = now
            if when != last and now >= next_at:
                data = await anyio.to_thread.run_sync(state.live.jpeg, view, when)
                if data is not None:
                    last, next_at = when, now + period
                    yield part(data)
                    continue
            await anyio.sleep(POLL_S)
    finally:
        state.live_streams -= 1


@router.get("/api/cameras/{name}/live.mjpeg", responses=MJPEG, response_class=StreamingResponse)
async def live_mjpeg(
    name: str, request: Request, who: Reader, state: StateDep, *,
    fps: Annotated[float, Query(gt=0, le=15)] = 5.0,
    width: Annotated[int, Query(ge=16, le=7680)] = 960,
    overlay: bool = False, grant: str | None = None,
) -> StreamingResponse:  # fmt: skip
    """The camera's live frames as MJPEG, at most ``fps`` per second and ``width`` pixels
    wide, redacted unless ``grant`` (from ``POST .../live/unredacted``) is valid for the
    caller and camera; ``overlay=1`` draws tracks, zones and lines. One audit record per
    stream. Waits while the camera has no frame yet."""
    _camera(state, who, name)
    found = None
    if grant is not None:
        found = await run_in_threadpool(granted, state, grant, who, name)
        if found is None or not who.can(Capability.OPERATE):
            raise ForbiddenError("the unredacted-live grant is not valid (expired, ended, or "
                                 "for another user or camera); ask for a new one")  # fmt: skip
    view = LiveView(name, width, overlay, redacted=found is None)
    details: dict[str, Any] = {"redacted": view.redacted, "overlay": overlay, "fps": fps,
                               "width": width}  # fmt: skip
    if found is not None:
        details["grant"] = _fingerprint(found.token)
    await run_in_threadpool(
        state.audit,
        who,
        "camera.live",
        name,
        reason=None if found is None else found.reason,
        details=details,
    )
    return StreamingResponse(
        # The credential the request was authenticated with (as ``authenticate`` found it):
        # the stream re-checks it, so a logout or revoked token ends the stream too.
        _parts(
            state,
            who,
            view,
            fps=fps,
            grant=grant,
            credential=bearer(request) or request.cookies.get(SESSION_COOKIE),
        ),
        media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.post("/api/cameras/{name}/live/unredacted", status_code=201)
def grant_unredacted_live(
    name: str, body: LiveGrantRequest, who: Reader, state: StateDep
) -> LiveGrantOut:
    """A grant to watch ``name`` unredacted for ``live_grant_ttl_s`` (10 min): operators and
    admins, with a reason, audited. Valid for the caller and this camera only."""
    _camera(state, who, name)
    unredacted_grant(state, who, f"live {name}", body.reason)
    row = _read_account(state, who.name)
    if row is None:  # deleted since this request was authenticated
        raise ForbiddenError(f"user {who.name!r} no longer exists")
    grant = state.grants.issue(who.name, name, body.reason, account_state(row))
    state.audit(
        who,
        "camera.live.unredacted",
        name,
        reason=body.reason,
        details={"grant": _fingerprint(grant.token), "expires_at": grant.expires_at},
    )
    return LiveGrantOut(grant=grant.token, camera=name, expires_at=grant.expires_at)


@router.delete("/api/cameras/{name}/live/unredacted/{grant}", status_code=204,
               response_class=Response)  # fmt: skip
def end_unredacted_live(name: str, grant: str, who: Reader, state: StateDep) -> Response:
    """End the caller's grant now (its streams stop at their next poll)."""
    ended = state.grants.end(grant, who.name, name)
    if ended is None or not who.sees(name):
        raise not_found("unredacted-live grant")
    state.audit(
        who, "camera.live.unredacted.end", name, details={"grant": _fingerprint(ended.token)}
    )
    return Response(status_code=204)


@router.get("/api/cameras/{name}/overlay")
def camera_overlay(name: str, who: Reader, state: StateDep) -> OverlayOut:
    """Tracks of the newest analysed frame (boxes 0..1) and the person boxes redaction hides
    without a track, none under a static mask (``vigil.api.overlay``), rules in force and
    live counts."""
    _camera(state, who, name)
    try:
        zones, lines = state.runtime.rules(name)
        counts = state.runtime.counts(name)
    except KeyError as exc:
        raise not_found(f"camera {name!r}") from exc
    snap = state.runtime.latest_tracks(name)
    shown = state.overlay_boxes(name, snap)
    return OverlayOut(time=snap.time, width=snap.width, height=snap.height,
                      tracks=[TrackOut.of(t) for t in shown.tracks],
                      people=[TrackOut.of(t) for t in shown.people],
                      zones=zones, lines=lines, counts=counts)  # fmt: skip
