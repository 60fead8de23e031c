"""FastAPI dependencies as ``Annotated`` aliases: the state, the caller, role checks.

``authenticate`` accepts ``Authorization: Bearer <api token>`` or the ``vigil_session``
cookie; with the cookie, unsafe methods also need ``X-CSRF-Token`` (see ``vigil.api.auth``).
Routers of protected routes declare ``dependencies=[Depends(authenticate)]`` so that a route
added later cannot forget authentication; routes then ask for the role they need with
``Reader``, ``Operator``, ``Auditor`` or ``Admin``.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from ipaddress import ip_address
from typing import Annotated

from fastapi import Depends, Request
from starlette.requests import HTTPConnection

from vigil.api.auth import (
    CSRF_HEADER,
    SAFE_METHODS,
    SESSION_COOKIE,
    Capability,
    Principal,
    csrf_valid,
)
from vigil.api.errors import ForbiddenError
from vigil.api.settings import Network
from vigil.api.state import AppState
from vigil.errors import AuthError, StorageError
from vigil.store import TokenKind, TokenRepo, hash_token

log = logging.getLogger(__name__)

#: The routes a credential verified lately still opens while the database is down
#: (``PrincipalCache``): reads of what the running process knows by itself, which operators
#: need most during an outage. GET and HEAD only; never a write, a login or media.
OUTAGE_READS = frozenset({"/metrics", "/api/cameras"})

# ``last_used`` is for people reviewing tokens: a minute's precision is enough, and it keeps
# most requests free of any database write.
TOUCH_INTERVAL_S = 60.0


def get_state(conn: HTTPConnection) -> AppState:
    state: AppState = conn.app.state.vigil
    return state


StateDep = Annotated[AppState, Depends(get_state)]


def client_address(conn: HTTPConnection) -> str | None:
    """The client's address: the peer's, or what a trusted proxy says in ``X-Forwarded-For``.

    The header is believed only when the peer is one of ``trusted_proxies`` (none by
    default); anyone else could put any address there, escape the login throttle and forge
    the audit log's ``source``. The list is read from the right, skipping the trusted proxies:
    the first other hop is the address the outermost trusted proxy saw, and hops further left
    were written by the client. A hop that is not an address makes the header count as absent.
    """
    peer = conn.client.host if conn.client else None
    proxies = get_state(conn).settings.trusted_proxies
    if peer is None or not proxies or not _within(peer, proxies):
        return peer
    hops = [h.strip() for v in conn.headers.getlist("x-forwarded-for") for h in v.split(",")]
    hops = [h for h in hops if h]
    for hop in reversed(hops):
        try:
            address = ip_address(hop)
        except ValueError:
            return peer
        if not any(address in net for net in proxies):
            return str(address)
    return hops[0] if hops else peer


def _within(host: str, proxies: tuple[Network, ...]) -> bool:
    try:
        address = ip_address(host)
    except ValueError:
        return False
    return any(address in net for net in proxies)


def bearer(conn: HTTPConnection) -> str | None:
    header = conn.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def principal_for(
    state: AppState, token: str, kind: TokenKind, client: str | None, *, outage_ok: bool = False
) -> Principal:
    """The user behind a token of ``kind``; ``AuthError`` when it is not valid.

    ``outage_ok``: the request is a read of ``OUTAGE_READS``; when the database cannot be
    reached, a credential verified lately still opens it (``PrincipalCache``).
    """
    digest = hash_token(token)
    try:
        # A read-only lookup: every request passes here, and on SQLite a deferred transaction
        # that reads and then writes fails at once ("database is locked") while a camera is
        # writing.
        with state.db.session() as session:
            found = TokenRepo(session).lookup(token, touch=False)
            if found is None or found[0].kind != kind:
                state.principals.forget(digest)
                raise AuthError("not logged in or the session/token expired; log in again")
            row, user = found
            if row.scope is not None:
                # A scoped token (a camera's stream URL for Home Assistant) opens that URL only.
                raise AuthError(f"this token is limited to {row.scope!r} and opens only its "
                                "stream URL; use a full API token or log in")  # fmt: skip
            cams = None if user.cameras is None else tuple(user.cameras)
            who = Principal(user.id, user.name, user.role, cams, kind.value, client)
    except StorageError:
        cached = state.principals.recall(digest, kind.value) if outage_ok else None
        if cached is None:
            raise
        log.debug("database unreachable: %s let in by its credential verified lately", cached.name)
        return dataclasses.replace(cached, client=client)
    state.principals.remember(digest, kind.value, who, row.expires)
    now = time.time()
    due = row.last_used is None or now - row.last_used >= TOUCH_INTERVAL_S
    if due and now >= state.touch_retry_at:
        try:
            with state.db.session(immediate=True) as session:
                TokenRepo(session).touch(row.id, now=now)
        except StorageError as exc:
            # ``last_used`` is bookkeeping: a full disk (or a database that takes no writes)
            # must not turn every authenticated read into a 503. Try again in a minute.
            state.touch_retry_at = now + TOUCH_INTERVAL_S
            log.warning("token last_used not updated (%s); reads go on, retrying in %.0f s",
                        exc, TOUCH_INTERVAL_S)  # fmt: skip
    return who


def authenticate(request: Request) -> Principal:
    """The caller, by bearer token or session cookie (+ CSRF check on unsafe methods)."""
    state = get_state(request)
    client = client_address(request)
    route = getattr(request.scope.get("route"), "path", None)
    outage_ok = request.method in ("GET", "HEAD") and route in OUTAGE_READS
    token = bearer(request)
    if token is not None:
        return principal_for(state, token, TokenKind.API, client, outage_ok=outage_ok)
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        raise AuthError("authentication required: log in (POST /api/login) or send a token")
    who = principal_for(state, cookie, TokenKind.SESSION, client, outage_ok=outage_ok)
    unsafe = request.method not in SAFE_METHODS
    if unsafe and not csrf_valid(cookie, request.headers.get(CSRF_HEADER)):
        raise ForbiddenError(f"missing or wrong {CSRF_HEADER} header; send the vigil_csrf cookie")
    return who


PrincipalDep = Annotated[Principal, Depends(authenticate)]


def require(cap: Capability) -> Callable[[Principal], Principal]:
    def check(who: PrincipalDep) -> Principal:
        if not who.can(cap):
            raise ForbiddenError(f"role {who.role.value!r} may not do this (needs {cap.value!r})")
        return who

    return check


Reader = Annotated[Principal, Depends(require(Capability.READ))]
Operator = Annotated[Principal, Depends(require(Capability.OPERATE))]
Auditor = Annotated[Principal, Depends(require(Capability.AUDIT))]
Admin = Annotated[Principal, Depends(require(Capability.ADMIN))]


def check_camera(who: Principal, camera: str) -> str:
    """``camera`` when the caller's scope includes it, else ``ForbiddenError``."""
    if not who.sees(camera):
        raise ForbiddenError(f"camera {camera!r} is outside your camera scope")
    return camera
