"""Health, first-run setup, login/logout, the caller, API tokens."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, Request, Response

from vigil.api.auth import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    csrf_token_for,
    hash_password,
    verify_password,
)
from vigil.api.deps import PrincipalDep, StateDep, client_address
from vigil.api.errors import ApiError
from vigil.api.routes import ERRORS, protected
from vigil.api.schemas import Credentials, Health, Me, TokenOut, TokenRequest, UserOut
from vigil.errors import StorageError
from vigil.store import Role, TokenKind, TokenRepo, UserRepo

public = APIRouter(responses=ERRORS, tags=["auth"])
router = protected(tags=["auth"])


#: Less free space than this in the data directory is a full disk: no segment fits.
FULL_BYTES = 1024 * 1024


@public.get("/api/health")
def health(state: StateDep) -> Health:
    """Liveness, storage and recording state, and whether the first admin still has to be
    created. No login needed; no camera name is given out. ``status`` is ``degraded`` when
    the database cannot be read, the disk is full or unknown, or a camera cannot record."""
    try:
        with state.db.session() as session:
            users: int | None = UserRepo(session).count()
    except StorageError:
        users = None
    statuses = [s for s in state.runtime.cameras() if s.recording is not None]
    failing = [s for s in statuses if s.recording == "failed"]
    free = _free_bytes(state.data_dir)
    storage: Literal["ok", "low", "full", "unknown"] = "ok"
    if free is None:
        storage = "unknown"
    elif free < FULL_BYTES:
        storage = "full"
    elif state.settings.min_free_bytes is not None and free < state.settings.min_free_bytes:
        storage = "low"
    recording: Literal["ok", "failed", "off"] = (
        "failed" if failing else "ok" if statuses else "off"
    )  # fmt: skip
    good = users is not None and storage in ("ok", "low") and not failing
    return Health(status="ok" if good else "degraded", database=users is not None,
                  setup_required=users == 0, storage=storage, free_bytes=free,
                  recording=recording, recording_failed=len(failing))  # fmt: skip


def _free_bytes(folder: Path) -> int | None:
    """Free bytes where ``folder`` lives (its nearest existing parent); None when unknown."""
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            try:
                return shutil.disk_usage(candidate).free
            except OSError:
                return None
    return None


@public.post("/api/setup", status_code=201)
def setup(body: Credentials, request: Request, state: StateDep) -> UserOut:
    """Create the first admin; 409 once any user exists (there is no default password)."""
    password_hash = hash_password(body.password, min_length=state.settings.min_password_length)
    with state.db.session(immediate=True) as session:
        users = UserRepo(session)
        users.lock()  # two setup requests at once: only one may create the first admin
        if users.count() > 0:
            raise ApiError(409, "conflict", "setup is done: users exist; log in as an admin")
        row = users.add(body.name, Role.ADMIN, password_hash)
    state.audit_log.append(body.name, "user.setup", body.name, source=client_address(request),
                           details={"role": "admin"})  # fmt: skip
    return UserOut.of(row)


@public.post("/api/login")
def login(body: Credentials, request: Request, response: Response, state: StateDep) -> Me:
    """Check the password, start a session: HttpOnly session cookie + CSRF cookie."""
    key = (client_address(request) or "?", body.name)
    wait = state.limiter.retry_after(key)
    if wait:
        raise ApiError(429, "rate_limited", f"too many failed logins; retry in {wait} s",
                       headers={"Retry-After": str(wait)})  # fmt: skip
    # Argon2 runs outside any transaction, and the token is written in a transaction that
    # takes SQLite's write lock first, so camera writes neither wait on a hash nor fail a login.
    with state.db.session() as session:
        user = UserRepo(session).get(body.name)
    good = verify_password(None if user is None else user.password_hash, body.password)
    if user is None or not good or user.disabled:
        state.limiter.failed(key)
        raise ApiError(401, "unauthorized", "wrong user name or password")
    with state.db.session(immediate=True) as session:
        issued = TokenRepo(session).issue(user.id, TokenKind.SESSION,
                                          ttl_s=state.settings.session_ttl_s)  # fmt: skip
    me = Me(name=user.name, role=user.role, cameras=user.cameras,
            csrf_token=csrf_token_for(issued.token))  # fmt: skip
    state.limiter.succeeded(key)
    secure, ttl = state.settings.secure_cookies, int(state.settings.session_ttl_s)
    response.set_cookie(SESSION_COOKIE, issued.token, max_age=ttl, httponly=True, secure=secure,
                        samesite="strict", path="/")  # fmt: skip
    response.set_cookie(CSRF_COOKIE, me.csrf_token or "", max_age=ttl, httponly=False,
                        secure=secure, samesite="strict", path="/")  # fmt: skip
    return me


@router.post("/api/logout", status_code=204)
def logout(request: Request, response: Response, state: StateDep) -> None:
    """End the cookie's session (a bearer token is revoked with DELETE semantics elsewhere)."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        with state.db.session(immediate=True) as session:
            TokenRepo(session).revoke(cookie)
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")


@router.get("/api/me")
def me(who: PrincipalDep, request: Request) -> Me:
    cookie = request.cookies.get(SESSION_COOKIE)
    return Me(name=who.name, role=who.role,
              cameras=None if who.cameras is None else list(who.cameras),
              csrf_token=csrf_token_for(cookie) if who.via == "session" and cookie else None)


@router.post("/api/tokens", status_code=201)
def create_token(body: TokenRequest, who: PrincipalDep, state: StateDep) -> TokenOut:
    """An API token for machines, with the caller's role and scope; shown once."""
    with state.db.session(immediate=True) as session:
        issued = TokenRepo(session).issue(who.user_id, TokenKind.API, ttl_s=body.ttl_s,
                                          name=body.name)  # fmt: skip
    state.audit(who, "token.create", who.name, details={"name": body.name})
    return TokenOut(token=issued.token, name=issued.row.name, expires=issued.row.expires)
