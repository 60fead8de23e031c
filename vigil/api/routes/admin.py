"""Run-time rules (zones/lines), the audit log, users, the cluster's status. Every change is
audited."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Query

from vigil.api.auth import HashBusyError, hash_password
from vigil.api.deps import Admin, Auditor, Operator, Reader, StateDep
from vigil.api.errors import ApiError, hashing_busy, not_found
from vigil.api.params import DbId
from vigil.api.routes import error, protected
from vigil.api.routes.view import end_user_grants
from vigil.api.runtime import Lines, Zones
from vigil.api.schemas import (
    AuditOut,
    AuditVerifyOut,
    ClusterOut,
    RulesBody,
    SwitchBody,
    SwitchesOut,
    UserCreate,
    UserOut,
    UserPatch,
)
from vigil.api.state import AppState
from vigil.config.models import rule_names_problem
from vigil.errors import ConfigError, VigilError
from vigil.store import AuditRepo, Role, TokenRepo, UserRepo

router = protected(tags=["admin"])


def _rules(state: AppState, camera: str) -> tuple[Zones, Lines]:
    try:
        return state.runtime.rules(camera)
    except KeyError as exc:
        raise not_found(f"camera {camera!r}") from exc


def _dump(zones: Zones, lines: Lines) -> dict[str, Any]:
    return RulesBody(zones=zones, lines=lines).model_dump(mode="json")


@router.get("/api/config/cameras/{name}/rules")
def get_rules(name: str, who: Reader, state: StateDep) -> RulesBody:
    if not who.sees(name):
        raise not_found(f"camera {name!r}")
    zones, lines = _rules(state, name)
    return RulesBody(zones=zones, lines=lines)


@router.put("/api/config/cameras/{name}/rules")
def put_rules(name: str, body: RulesBody, who: Operator, state: StateDep) -> RulesBody:
    """Replace the camera's zones and lines at run time (validated by the config models);
    operators and admins."""
    if not who.sees(name):
        raise not_found(f"camera {name!r}")
    if (problem := rule_names_problem(name, body.zones, body.lines)) is not None:
        raise ConfigError(problem)  # 422, before the audit: nothing was changed
    old = _dump(*_rules(state, name))
    new = body.model_dump(mode="json")
    state.audit(who, "rules.update", name, details={"old": old, "new": new})
    try:
        state.runtime.update_rules(name, dict(body.zones), dict(body.lines))
    except KeyError as exc:
        raise not_found(f"camera {name!r}") from exc
    return body


def _switches(state: AppState, camera: str) -> SwitchesOut:
    try:
        return SwitchesOut.model_validate(state.runtime.switches(camera))
    except KeyError as exc:
        raise not_found(f"camera {camera!r}") from exc


@router.get("/api/cameras/{name}/switches")
def get_switches(name: str, who: Reader, state: StateDep) -> SwitchesOut:
    """The camera's ``detection`` and ``recording`` switches (what Home Assistant's MQTT
    switches show)."""
    if not who.sees(name):
        raise not_found(f"camera {name!r}")
    return _switches(state, name)


@router.put("/api/cameras/{name}/switches/{switch}")
def put_switch(
    name: str, switch: Literal["detection", "recording"], body: SwitchBody, who: Operator,
    state: StateDep,
) -> SwitchesOut:  # fmt: skip
    """Switch the camera's analysis (``detection``) or recording on or off, as Home
    Assistant's switches do; kept over restarts, published on MQTT; operators and admins."""
    if not who.sees(name):
        raise not_found(f"camera {name!r}")
    old = _switches(state, name)
    if getattr(old, switch) is None:
        raise not_found(f"the {switch} switch of camera {name!r} (it is not recorded here)")
    state.audit(who, "switch.set", name, details={"switch": switch, "on": body.on,
                                                   "was": getattr(old, switch)})  # fmt: skip
    try:
        state.runtime.set_switch(name, switch, body.on)
    except KeyError as exc:
        raise not_found(f"camera {name!r}") from exc
    except VigilError as exc:
        raise not_found(f"the {switch} switch of camera {name!r}: {exc}") from exc
    return _switches(state, name)


@router.get("/api/audit")
def audit_records(
    *, who: Auditor, state: StateDep, actor: str | None = None, action: str | None = None,
    start: float | None = None, end: float | None = None, after_seq: DbId = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditOut]:  # fmt: skip
    """Audit records in chain order; page with ``after_seq`` = the last ``seq`` seen."""
    with state.db.session() as session:
        rows = AuditRepo(session).records(actor=actor, action=action, since=start, until=end,
                                          after_seq=after_seq, limit=limit)  # fmt: skip
    return [AuditOut.of(r) for r in rows]


@router.get("/api/audit/verify")
def audit_verify(who: Auditor, state: StateDep) -> AuditVerifyOut:
    """Walk the hash chain (as ``vigil audit verify`` does)."""
    report = state.audit_log.verify()
    head = state.audit_log.head()
    return AuditVerifyOut(ok=report.ok, records=report.records,
                          first_bad_seq=report.first_bad_seq, problem=report.problem,
                          head_seq=head.seq, head_hash=head.hash)  # fmt: skip


@router.get("/api/cluster", responses={503: error("The Ray cluster cannot be asked")})
def cluster_status(who: Admin, state: StateDep) -> ClusterOut:
    """Nodes (camera slots, CPUs, GPUs), where each camera runs, each node's detector load
    and the failovers (``vigil cluster status``); admins only, as it names every camera and
    machine. ``{"cluster": null}`` on a single host (no Ray backend)."""
    if state.cluster_status is None:
        return ClusterOut(cluster=None)
    return ClusterOut(cluster=state.cluster_status())


@router.get("/api/users")
def list_users(who: Admin, state: StateDep) -> list[UserOut]:
    with state.db.session() as session:
        return [UserOut.of(r) for r in UserRepo(session).list()]


def _hash(state: AppState, password: str) -> str:
    """Argon2id within the shared bound on concurrent hashes (503 when it is full)."""
    try:
        with state.hashing.slot():
            return hash_password(password, min_length=state.settings.min_password_length)
    except HashBusyError as exc:
        raise hashing_busy() from exc


@router.post("/api/users", status_code=201,
             responses={409: error("A user of that name exists")})  # fmt: skip
def create_user(body: UserCreate, who: Admin, state: StateDep) -> UserOut:
    password_hash = _hash(state, body.password)
    with state.db.session(immediate=True) as session:
        users = UserRepo(session)
        if users.get(body.name) is not None:
            raise ApiError(409, "conflict", f"user {body.name!r} already exists; pick another name")
        row = users.add(body.name, body.role, password_hash, cameras=body.cameras)
    state.audit(who, "user.create", body.name,
                details={"role": body.role.value, "cameras": body.cameras})  # fmt: skip
    return UserOut.of(row)


@router.patch(
    "/api/users/{name}",
    responses={409: error("The last enabled admin cannot be demoted or disabled")},
)
def update_user(name: str, body: UserPatch, who: Admin, state: StateDep) -> UserOut:
    """Change role, scope, password or disable; a disabled user or a new password ends the
    user's sessions and tokens, and any change ends their unredacted-live grants at once."""
    changes = body.model_dump(exclude_unset=True, exclude={"password"}, mode="json")
    if body.password is not None:
        changes["password"] = "changed"
    new_hash = None if body.password is None else _hash(state, body.password)
    with state.db.session(immediate=True) as session:
        users = UserRepo(session)
        users.lock()
        row = users.get(name)
        if row is None:
            raise not_found(f"user {name!r}")
        demoted = body.role is not None and body.role != Role.ADMIN
        if (demoted or body.disabled) and users.is_last_admin(name):
            raise ApiError(409, "conflict", f"{name!r} is the last enabled admin; make another "
                           "user admin first, or nobody could manage users")  # fmt: skip
        if body.role is not None:
            users.set_role(name, body.role)
        if body.clear_cameras or body.cameras is not None:
            users.set_cameras(name, None if body.clear_cameras else body.cameras)
        if body.disabled is not None:
            users.set_disabled(name, body.disabled)
        if new_hash is not None:
            users.set_password_hash(name, new_hash)
        if body.disabled or new_hash is not None:
            TokenRepo(session).revoke_user(row.id)
        # Any change: what an outage would let in (``PrincipalCache``) is the user as was.
        state.principals.forget_user(row.id)
    state.audit(who, "user.update", name, details=changes)
    if changes:
        end_user_grants(state, name, actor=who.name, cause="user.update")
    return UserOut.of(row)
