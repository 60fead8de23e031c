"""Exports as jobs: ``POST /api/exports`` checks and audits the request and queues an
``export`` job; a worker renders it (``run_export_job``) while the client follows its progress
at ``GET /api/jobs/{id}`` and downloads ``/api/exports/{name}`` when it is done.

An unredacted export is granted at the request (operator or admin, with a reason, audited);
the worker opens its own grant with the same actor and reason when it runs, so that the local
unredacted-access log also shows when the pixels were actually read (after a restart too).
"""

from __future__ import annotations

import secrets
from typing import Any

from vigil.api.auth import Principal
from vigil.api.jobs import PRIORITY_EXPORT, Progress, submit
from vigil.api.media import check_segment, segment_source
from vigil.api.schemas import ExportOut, ExportRequest
from vigil.api.state import AppState
from vigil.errors import ConfigError, SourceError
from vigil.privacy import unredacted_access
from vigil.record.export import export_range
from vigil.record.layout import check_camera_id
from vigil.record.signing import load_or_create_key
from vigil.store import JobRow, SegmentRepo


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
    params = {"camera": camera, "start": body.start, "end": body.end, "name": name,
              "unredacted": body.unredacted, "reason": reason, "actor": who.name}  # fmt: skip
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
        grant = unredacted_access(str(p.get("reason") or ""), str(p.get("actor")),
                                  state.unredacted_file, f"export {camera} {start}..{end}")
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
    out = ExportOut(name=name, url=f"/api/exports/{name}",
                    manifest_url=f"/api/exports/{name}/manifest", start=result.start,
                    end=result.end, redaction=result.redaction, frames=result.packets)
    return out.model_dump()
