"""Exports as jobs: ``POST /api/exports`` checks and audits the request and queues an
``export`` job; a worker renders it (``run_export_job``) while the client follows its progress
at ``GET /api/jobs/{id}`` and downloads ``/api/exports/{name}`` when it is done.

An unredacted export is granted at the request (operator or admin, with a reason, audited);
the worker opens its own grant with the same actor and reason when it runs, so that the local
unredacted-access log also shows when the pixels were actually read (after a restart too).

The job may run long after the request (a queue, a restart), so the worker re-checks the
grant first, as a live grant is re-checked (``vigil.api.live``): the account must still
exist, be enabled, have a role that may see unredacted media, see the camera, and be as it
was when the export was asked for (``account_state``: a changed role, password, state or scope
ends the grant even when the new one would also allow it). Otherwise the job fails with 403
``grant_revoked`` naming why, audited as ``unredacted.denied``, and no pixel is read.
"""

from __future__ import annotations

import secrets
from typing import Any

from vigil.api.auth import ROLE_CAPS, Capability, Principal
from vigil.api.errors import ApiError
from vigil.api.jobs import PRIORITY_EXPORT, Progress, submit
from vigil.api.live import account_state
from vigil.api.media import check_segment, segment_source
from vigil.api.schemas import ExportOut, ExportRequest
from vigil.api.state import SYSTEM_ACTOR, AppState
from vigil.errors import ConfigError, SourceError
from vigil.privacy import UnredactedGrant, unredacted_access
from vigil.record.export import export_range
from vigil.record.layout import check_camera_id
from vigil.record.signing import load_or_create_key
from vigil.store import JobRow, SegmentRepo, UserRepo, UserRow


def queue_export(state: AppState, who: Principal, body: ExportRequest, camera: str,
                 reason: str | None) -> JobRow:  # fmt: skip
    """Check ``body`` (range, recordings, their files under ``recordings/``), queue its job
    and audit ``export.create``.

    ``reason``: the reason of the caller's unredacted grant (None: redacted export).
    """
    if not body.end > body.start or body.end - body.start > state.settings.max_export_s:
        raise ConfigError(f"an export needs 0 < end - start <= {state.settings.max_export_s} s")
    with state.db.session() as session:
        rows = SegmentRepo(session).list(camera, body.start, body.end)
    if not rows:
        raise SourceError(f"no recordings of {camera!r} in that time range")
    for row in rows:  # a row naming a file outside recordings/ is refused now (404), not later
        check_segment(state.media, row)
    name = f"{camera}-{int(body.start)}-{int(body.end)}-{secrets.token_hex(4)}.mp4"
    params: dict[str, Any] = {"camera": camera, "start": body.start, "end": body.end,
                              "name": name, "unredacted": body.unredacted, "reason": reason,
                              "actor": who.name}  # fmt: skip
    if body.unredacted:
        # What the grant rests on, for the worker to compare (a digest: job params are never
        # shown by the API, and the digest reveals nothing of the password hash).
        with state.db.session() as session:
            user = UserRepo(session).get(who.name)
        if user is None:  # deleted since this request was authenticated
            raise ApiError(403, "grant_revoked", f"user {who.name!r} no longer exists")
        params["account"] = account_state(user)
    job = submit(state.db, state.job_limits, "export", params, owner=who.name,
                 priority=PRIORITY_EXPORT)  # fmt: skip
    state.audit(who, "export.create", name, reason=reason,
                details={"camera": camera, "start": body.start, "end": body.end,
                         "redacted": not body.unredacted, "job": job.id})  # fmt: skip
    state.wake_jobs()
    return job


def run_export_job(state: AppState, job: JobRow, progress: Progress) -> dict[str, Any]:
    """The ``export`` job: the MP4 and its signed manifest under ``<data_dir>/exports``."""
    p = job.params
    camera = check_camera_id(str(p["camera"]))
    start, end, name = float(p["start"]), float(p["end"]), str(p["name"])
    with state.db.session() as session:
        rows = SegmentRepo(session).list(camera, start, end)
    if not rows:
        raise SourceError(f"no recordings of {camera!r} in that time range any more "
                          "(retention deleted them while the export waited)")  # fmt: skip
    grant = None
    if p.get("unredacted"):
        grant = _reopen_grant(state, job, camera, f"export {camera} {start}..{end}")
    # Media confinement and per-camera redaction as everywhere else: DB-named paths stay
    # under recordings/, and a granted export still gets the camera's static masks.
    paths = [segment_source(state.media, r) for r in rows]
    result = export_range(
        paths, start, end, state.exports_dir / name,
        key=load_or_create_key(state.signing_key_path),
        redactor_factory=state.export_redactor(camera, grant), grant=grant, camera=camera,
        starts=[r.start for r in rows], on_fraction=progress,
        face_search=None if grant is not None else state.face_search(),
    )  # fmt: skip
    out = ExportOut(
        name=name,
        url=f"/api/exports/{name}",
        manifest_url=f"/api/exports/{name}/manifest",
        start=result.start,
        end=result.end,
        redaction=result.redaction,
        frames=result.packets,
    )
    return out.model_dump()


def _reopen_grant(state: AppState, job: JobRow, camera: str, what: str) -> UnredactedGrant:
    """The worker's own grant for an unredacted export job, once ``grant_refusal`` finds
    nothing against it; otherwise the refusal is audited and the job fails (403)."""
    p = job.params
    actor = str(p.get("actor"))
    with state.db.session() as session:
        row = UserRepo(session).get(actor)
        why = grant_refusal(row, camera, p.get("account"))
    if why is not None:
        # Vigil refuses, not the user (who may not even be there): the actor is the system,
        # the user is named in the details, as for a live grant ended by an account change.
        state.audit_log.append(SYSTEM_ACTOR, "unredacted.denied", what,
                               reason=str(p.get("reason") or "") or None,
                               details={"why": why, "user": actor, "job": job.id,
                                        "export": p.get("name")})  # fmt: skip
        raise ApiError(403, "grant_revoked", f"the unredacted export was refused when its job "
                       f"ran: {why}; ask an admin, then request the export again")  # fmt: skip
    return unredacted_access(str(p.get("reason") or ""), actor, state.unredacted_file, what)


def grant_refusal(row: UserRow | None, camera: str, account: object) -> str | None:
    """Why the account ``row`` may no longer have the unredacted export of ``camera`` that it
    asked for when it was ``account`` (its ``account_state`` then), or None when it may.

    A job queued before ``account`` was recorded has none: the role, state and scope are still
    checked, as they always can be.
    """
    if row is None:
        return "the user no longer exists"
    if row.disabled:
        return f"user {row.name!r} is disabled"
    if Capability.OPERATE not in ROLE_CAPS[row.role]:
        return f"user {row.name!r} is now {row.role.value!r}, which sees redacted media only"
    if row.cameras is not None and camera not in row.cameras:
        return f"camera {camera!r} is no longer in the camera scope of {row.name!r}"
    if account is not None and account != account_state(row):
        return (
            f"the account of {row.name!r} changed since the export was asked for "
            "(role, password, state or camera scope)"
        )
    return None
