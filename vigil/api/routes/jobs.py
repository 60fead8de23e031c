"""Background jobs (event clips, exports): the caller's list and one job's progress."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from vigil.api.auth import Capability, Principal
from vigil.api.deps import Reader, StateDep
from vigil.api.errors import not_found
from vigil.api.params import JobId
from vigil.api.routes import protected
from vigil.api.schemas import JobOut
from vigil.store import JobRepo, JobRow

router = protected(tags=["jobs"])


def visible(who: Principal, row: JobRow) -> bool:
    """A job is seen by its owner and admins; a clip job by whoever sees the camera (the
    clip is the same redacted file for all of them). Always within the camera scope."""
    if not who.sees(str(row.params.get("camera"))):
        return False
    return row.kind == "clip" or row.owner == who.name or who.can(Capability.ADMIN)


@router.get("/api/jobs")
def list_jobs(
    who: Reader, state: StateDep, kind: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[JobOut]:  # fmt: skip
    """The caller's jobs, newest first (``kind``: ``export`` or ``clip``)."""
    with state.db.session() as session:
        rows = JobRepo(session).list(owner=who.name, kind=kind, limit=limit)
    return [JobOut.of(r) for r in rows if visible(who, r)]


@router.get("/api/jobs/{job_id}")
def get_job(job_id: JobId, who: Reader, state: StateDep) -> JobOut:
    """One job: its state and progress, and its result once done."""
    with state.db.session() as session:
        row = JobRepo(session).get(job_id)
    if row is None or not visible(who, row):
        raise not_found(f"job {job_id!r}")
    return JobOut.of(row)
