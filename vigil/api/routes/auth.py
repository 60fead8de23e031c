"""Health, first-run setup, login/logout, the caller, API tokens (mint, list, revoke)."""

from __future__ import annotations

import hmac
import shutil
import time
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, Request, Response

from vigil.api.auth import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    Capability,
    HashBusyError,
    LoginThrottledError,
    csrf_token_for,
    hash_password,
    verify_password,
)
from vigil.api.deps import PrincipalDep, StateDep, client_address
from vigil.api.errors import ApiError, ForbiddenError, hashing_busy, not_found
from vigil.api.params import DbId
from vigil.api.routes import ERRORS, error, protected
from vigil.api.schemas import (
    Credentials,
    Health,
    Me,
    SetupRequest,
    TokenInfo,
    TokenOut,
    TokenRequest,
    UserOut,
)
from vigil.errors import ConfigError, StorageError
from vigil.store import Role, TokenKind, TokenRepo, UserRepo, hash_token

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
    quarantined = state.media.quarantine().values()  # every node's, on a cluster
    return Health(status="ok" if good else "degraded", database=users is not None,
                  setup_required=users == 0, storage=storage, free_bytes=free,
                  recording=recording, recording_failed=len(failing),
                  segments_unindexed=sum(s.segments_unindexed for s in statuses),
                  quarantine_files=sum(n for n, _ in quarantined),
                  quarantine_bytes=sum(b for _, b in quarantined))  # fmt: skip


def _free_bytes(folder: Path) -> int | None:
    """Free bytes where ``folder`` lives (its nearest existing parent); None when unknown."""
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            try:
                return shutil.disk_usage(candidate).free
            except OSError:
                return None
    return None


@public.post("/api/setup", status_code=201, responses={409: error("Setup is done: users exist")})
def setup(body: SetupRequest, request: Request, state: StateDep) -> UserOut:
    """Create the first admin; 409 once any user exists (there is no default password).

    With a setup token (``vigil serve`` prints a link carrying it), only its holder may."""
    expected = state.settings.setup_token
    if expected is not None and not hmac.compare_digest((body.token or "").encode(),
                                                        expected.encode()):  # fmt: skip
        raise ApiError(403, "forbidden", "first-run setup needs the one-time link that "
                       "`vigil serve` printed when it started; open that link")  # fmt: skip
    # The cheap refusal first: once set up, anyone may call this, and must not cost a hash.
    with state.db.session() as session:
        if UserRepo(session).count() > 0:
            raise _setup_done()
    try:
        with state.hashing.slot():
            password_hash = hash_password(
                body.password, min_length=state.settings.min_password_length
            )
    except HashBusyError as exc:
        raise hashing_busy() from exc
    with state.db.session(immediate=True) as session:
        users = UserRepo(session)
        users.lock()  # two setup requests at once: only one may create the first admin
        if users.count() > 0:
            raise _setup_done()
        row = users.add(body.name, Role.ADMIN, password_hash)
    state.audit_log.append(body.name, "user.setup", body.name, source=client_address(request),
                           details={"role": "admin"})  # fmt: skip
    return UserOut.of(row)


def _setup_done() -> ApiError:
    return ApiError(409, "conflict", "setup is done: users exist; log in as an admin")


@public.post(
    "/api/login",
    responses={429: error("Too many failed logins", Retry_After="seconds until the next try")},
)
def login(body: Credentials, request: Request, response: Response, state: StateDep) -> Me:
    """Check the password, start a session: HttpOnly session cookie + CSRF cookie.

    Order matters: the throttle counts the attempt first (429 while the account or address is
    locked out, even for the right password), then the hash gate bounds the Argon2 work
    (503 when full), and only then is the password checked, an unknown name included.
    """
    address = client_address(request)
    try:
        attempt = state.throttle.begin(body.name, address)
    except LoginThrottledError as exc:
        raise ApiError(429, "rate_limited", str(exc),
                       headers={"Retry-After": str(exc.retry_after)}) from exc  # fmt: skip
    # Argon2 runs outside any transaction, and the token is written in a transaction that
    # takes SQLite's write lock first, so camera writes neither wait on a hash nor fail a login.
    with state.db.session() as session:
        user = UserRepo(session).get(body.name)
    try:
        with state.hashing.slot():
            good = verify_password(None if user is None else user.password_hash, body.password)
    except HashBusyError as exc:
        state.throttle.unchecked(attempt)
        raise hashing_busy() from exc
    if user is None or not good or user.disabled:
        why = "unknown user" if user is None else "disabled" if good else "wrong password"
        state.audit_log.append("anonymous", "login.failure", body.name, source=address,
                               details={"why": why, "locked_out": attempt.last})  # fmt: skip
        raise ApiError(401, "unauthorized", "wrong user name or password")
    with state.db.session(immediate=True) as session:
        issued = TokenRepo(session).issue(user.id, TokenKind.SESSION,
                                          ttl_s=state.settings.session_ttl_s)  # fmt: skip
    me = Me(name=user.name, role=user.role, cameras=user.cameras,
            csrf_token=csrf_token_for(issued.token))  # fmt: skip
    state.throttle.succeeded(attempt)
    state.purge_expired_tokens()
    secure, ttl = state.settings.secure_cookies, int(state.settings.session_ttl_s)
    response.set_cookie(SESSION_COOKIE, issued.token, max_age=ttl, httponly=True, secure=secure,
                        samesite="strict", path="/")  # fmt: skip
    response.set_cookie(CSRF_COOKIE, me.csrf_token or "", max_age=ttl, httponly=False,
                        secure=secure, samesite="strict", path="/")  # fmt: skip
    return me


@router.post("/api/logout", status_code=204)
def logout(request: Request, response: Response, state: StateDep) -> None:
    """End the cookie's session. API tokens made from it live on until they expire or are
    revoked (``DELETE /api/tokens/{id}``): they are credentials of their own."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        state.principals.forget(hash_token(cookie))  # first: even if the database is down
        with state.db.session(immediate=True) as session:
            TokenRepo(session).revoke(cookie)
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")


@router.get("/api/me")
def me(who: PrincipalDep, request: Request) -> Me:
    cookie = request.cookies.get(SESSION_COOKIE)
    return Me(
        name=who.name,
        role=who.role,
        cameras=None if who.cameras is None else list(who.cameras),
        csrf_token=csrf_token_for(cookie) if who.via == "session" and cookie else None,
    )


@router.post("/api/tokens", status_code=201)
def create_token(body: TokenRequest, who: PrincipalDep, state: StateDep) -> TokenOut:
    """An API token for machines, with the caller's role and scope; shown once.

    Only a password login may mint one (a token cannot make more of itself), and every token
    expires: after ``ttl_s`` seconds, by default and at most ``token_ttl_s`` (90 days).
    """
    if who.via != "session":
        raise ForbiddenError("an API token cannot create tokens; log in with a password")
    most = state.settings.token_ttl_s
    if body.ttl_s is not None and body.ttl_s > most:
        raise ConfigError(f"ttl_s may be at most {most:.0f} s (server.token_ttl); ask for less")
    state.purge_expired_tokens()
    with state.db.session(immediate=True) as session:
        issued = TokenRepo(session).issue(who.user_id, TokenKind.API, ttl_s=body.ttl_s or most,
                                          name=body.name)  # fmt: skip
    state.audit(
        who,
        "token.create",
        who.name,
        details={"name": body.name, "id": issued.row.id, "expires": issued.row.expires},
    )
    return TokenOut(
        id=issued.row.id, token=issued.token, name=issued.row.name, expires=issued.row.expires
    )


@router.get("/api/tokens")
def list_tokens(who: PrincipalDep, state: StateDep, all_users: bool = False) -> list[TokenInfo]:
    """The caller's API tokens (never the tokens themselves); ``all_users=true``: everyone's
    (admins only)."""
    if all_users and not who.can(Capability.ADMIN):
        raise ForbiddenError(f"role {who.role.value!r} may list only its own tokens")
    with state.db.session() as session:
        rows = TokenRepo(session).api_tokens(None if all_users else who.user_id)
    now = time.time()
    return [
        TokenInfo.of(row, user) for row, user in rows if row.expires is None or row.expires > now
    ]


@router.delete("/api/tokens/{token_id}", status_code=204)
def revoke_token(token_id: DbId, who: PrincipalDep, state: StateDep) -> None:
    """Revoke an API token: one's own, or anyone's for admins; 404 for any other id."""
    with state.db.session(immediate=True) as session:
        tokens = TokenRepo(session)
        row = tokens.get(token_id)
        mine = row is not None and row.user_id == who.user_id
        if row is None or row.kind != TokenKind.API or not (mine or who.can(Capability.ADMIN)):
            raise not_found(f"token {token_id}")
        owner = UserRepo(session).get_by_id(row.user_id)
        tokens.revoke_id(token_id)
        state.principals.forget(row.token_hash)
    state.audit(
        who,
        "token.revoke",
        owner.name if owner else str(row.user_id),
        details={"id": token_id, "name": row.name},
    )
