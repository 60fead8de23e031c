"""Recordings (list, play with HTTP Range), exports (queue as a job, download), camera
snapshots.

Recorded segments are the camera's unredacted stream copy (re-encoded with its static masks
when it has any), so playing one needs the operator capability; viewers get redacted playback
by creating an export (``POST /api/exports``, redacted by default), which they may do.
Every read of media writes an audit record first.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any

from fastapi import Query, Request
from fastapi.responses import FileResponse, Response

from vigil.api.auth import Capability, Principal
from vigil.api.clips import segment_file
from vigil.api.deps import Operator, Reader, StateDep, check_camera
from vigil.api.errors import ApiError, ForbiddenError, not_found
from vigil.api.exports import queue_export
from vigil.api.media import check_range, outgoing_image, preview_source, safe_media_path
from vigil.api.params import DbId
from vigil.api.routes import error, protected
from vigil.api.routes.events import JPEG, unredacted_grant
from vigil.api.schemas import CameraOut, ExportRequest, JobOut, SegmentOut
from vigil.api.state import AppState
from vigil.record.export import manifest_path
from vigil.record.layout import check_camera_id
from vigil.record.previews import MAX_PREVIEW_GAP_S, nearest_preview
from vigil.store import SegmentRepo

router = protected(tags=["media"])

_EXPORT_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,200}\.mp4$")
MP4: dict[int | str, dict[str, Any]] = {
    200: {"content": {"video/mp4": {}}},
    206: {"description": "Partial content"},
    416: error("Range not satisfiable", Content_Range="bytes */<file size>"),
    503: error(
        "The cluster node holding the recording is down (the message names it)",
        Retry_After="seconds until the next try",
    ),
}


def _media_file(request: Request, path: Path) -> FileResponse:
    check_range(request.headers.get("range"), path.stat().st_size)
    return FileResponse(path, media_type="video/mp4", headers={"Cache-Control": "no-store"})


@router.get("/api/recordings")
def list_recordings(
    *, who: Reader, state: StateDep, camera: str | None = None, start: float | None = None,
    end: float | None = None, limit: Annotated[int, Query(ge=1, le=1000)] = 1000,
) -> list[SegmentOut]:  # fmt: skip
    """Segments overlapping ``[start, end)``, oldest first, of the cameras the caller sees."""
    if camera is not None:
        check_camera(who, camera)
    cams: list[str | None] = (
        [camera] if camera is not None or who.cameras is None else list(who.cameras)
    )
    rows = []
    with state.db.session() as session:
        repo = SegmentRepo(session)
        for cam in cams:
            rows.extend(repo.timeline(cam, start, end, limit=limit))
    rows.sort(key=lambda r: (r.start, r.id))
    return [SegmentOut.of(r) for r in rows[:limit]]


@router.get("/api/recordings/{segment_id}/media", responses=MP4, response_class=FileResponse)
def segment_media(segment_id: DbId, request: Request, who: Operator, state: StateDep) -> Response:
    """The segment's MP4 (unredacted stream copy: operators and admins), with Range support;
    for a camera with static masks, a masked re-encode (cached)."""
    with state.db.session() as session:
        row = SegmentRepo(session).get(segment_id)
    if row is None or not who.sees(row.camera):
        raise not_found(f"segment {segment_id}")
    masked = bool(state.redact_config(row.camera).masks)
    state.audit(who, "segment.read", row.path,
                details={"segment": row.id, "range": request.headers.get("range"),
                         "masked": masked})  # fmt: skip
    return _media_file(request, segment_file(state, row, who.name))


#: How long a browser may keep a preview (it is redacted, and its file never changes; a
#: newer segment near the same time may answer better later, hence not for ever).
PREVIEW_MAX_AGE_S = 600
#: One ``recording.preview`` audit record per user and camera in this many seconds: hovering
#: the timeline asks for many previews, and one record per request would flood the chain.
PREVIEW_AUDIT_S = 600.0
PREVIEW_JPEG: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"image/jpeg": {}},
        "description": "The redacted preview nearest to `at`",
        "headers": {
            "X-Preview-Time": {
                "description": "UNIX seconds of the preview",
                "schema": {"type": "number"},
            }
        },
    },
    404: error(
        "No preview within 10 s of `at` (nothing recorded then, or older segments without previews)"
    ),
    503: error(
        "The cluster node holding the recording is down (the message names it)",
        Retry_After="seconds until the next try",
    ),
}


@router.get("/api/recordings/{camera}/preview", responses=PREVIEW_JPEG,
            response_class=FileResponse)  # fmt: skip
def recording_preview(
    camera: str, who: Reader, state: StateDep,
    at: Annotated[float, Query(ge=0, le=1e11, description="UNIX seconds")],
) -> Response:  # fmt: skip
    """The redacted preview thumbnail of ``camera``'s recordings nearest to ``at`` (at most
    10 s away), made at record time with the camera's redaction settings; for the timeline's
    hover. Browsers may keep it ``PREVIEW_MAX_AGE_S`` (``private``); audited once per user
    and camera every 10 minutes."""
    check_camera(who, camera)
    with state.db.session() as session:
        rows = SegmentRepo(session).list(camera, at - MAX_PREVIEW_GAP_S, at + MAX_PREVIEW_GAP_S)
    found = nearest_preview(rows, at)
    if found is None:
        raise not_found(f"preview of {camera!r} near {at:.0f}")
    path = preview_source(state.media, found.node, found.path)
    if state.first_in(("recording.preview", who.name, camera), PREVIEW_AUDIT_S):
        state.audit(who, "recording.preview", camera, details={"at": round(at, 3)})
    return FileResponse(path, media_type="image/jpeg", headers={
        "Cache-Control": f"private, max-age={PREVIEW_MAX_AGE_S}",
        "X-Preview-Time": f"{found.time:.3f}"})  # fmt: skip


def _export_path(state: AppState, name: str) -> Path:
    if not _EXPORT_NAME.match(name) or ".." in name:
        raise not_found(f"export {name!r}")
    return safe_media_path(state.exports_dir, name)


@router.post(
    "/api/exports",
    status_code=202,
    responses={
        429: error(
            "Too many exports queued or running for this user",
            Retry_After="seconds until the next try",
        )
    },
)
def create_export(body: ExportRequest, who: Reader, state: StateDep) -> JobOut:
    """Queue an MP4 of ``[start, end)`` of one camera with a signed manifest; redacted
    unless ``unredacted`` (operators/admins, with a reason, audited). Answers the job at
    once: follow ``url`` (``GET /api/jobs/{id}``) until ``state`` is ``done``, then download
    ``result.url``. At most ``max_user_jobs`` exports per user are queued or running."""
    camera = check_camera_id(check_camera(who, body.camera))
    what = f"export {camera} {body.start}..{body.end}"
    grant = unredacted_grant(state, who, what, body.reason) if body.unredacted else None
    job = queue_export(state, who, body, camera, None if grant is None else grant.reason)
    return JobOut.of(job)


def _export_manifest(state: AppState, who: Principal, name: str) -> tuple[Path, dict[str, Any]]:
    path = _export_path(state, name)
    try:
        manifest = json.loads(manifest_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise not_found(f"manifest of export {name!r}") from exc
    if not who.sees(str(manifest.get("camera"))):
        raise not_found(f"export {name!r}")
    if redaction_of(manifest) == "none" and not who.can(Capability.OPERATE):
        raise ForbiddenError("this export is unredacted; viewers get redacted media only")
    return path, manifest


def redaction_of(manifest: dict[str, Any]) -> str:
    """The manifest's redaction mode; ``none`` (the strictest case) when it cannot be read."""
    redaction = manifest.get("redaction")
    mode = redaction.get("mode") if isinstance(redaction, dict) else None
    return mode if isinstance(mode, str) and mode else "none"


@router.get("/api/exports/{name}", responses=MP4, response_class=FileResponse)
def get_export(name: str, request: Request, who: Reader, state: StateDep) -> Response:
    """Download an export (Range supported)."""
    path, manifest = _export_manifest(state, who, name)
    state.audit(
        who,
        "export.read",
        name,
        details={"redaction": redaction_of(manifest), "range": request.headers.get("range")},
    )
    return _media_file(request, path)


@router.get("/api/exports/{name}/manifest")
def get_export_manifest(name: str, who: Reader, state: StateDep) -> dict[str, Any]:
    """The export's signed manifest (check it offline with ``vigil verify``)."""
    return _export_manifest(state, who, name)[1]


@router.get("/api/cameras")
def list_cameras(who: Reader, state: StateDep) -> list[CameraOut]:
    """Status of the cameras in the caller's scope, as the runtime reports it."""
    return [CameraOut(name=s.name, online=s.online, state=s.state, decode_fps=s.decode_fps,
                      detect_fps=s.detect_fps, last_frame_time=s.last_frame_time,
                      skipped_frames=s.skipped_frames, inference_ms=s.inference_ms,
                      queue_depth=s.queue_depth, recording=s.recording,
                      recording_error=s.recording_error, node=s.node)
            for s in state.runtime.cameras() if who.sees(s.name)]  # fmt: skip


@router.get("/api/cameras/{name}/snapshot", responses=JPEG, response_class=Response)
def camera_snapshot(
    name: str, who: Reader, state: StateDep, unredacted: bool = False,
    reason: str | None = None,
) -> Response:  # fmt: skip
    """The camera's latest frame as JPEG, redacted (live view); audited."""
    known = {s.name for s in state.runtime.cameras()}
    if name not in known or not who.sees(name):
        raise not_found(f"camera {name!r}")
    grant = unredacted_grant(state, who, f"live {name}", reason) if unredacted else None
    why = None if grant is None else grant.reason
    frame = state.runtime.latest_frame(name)
    if frame is None:
        raise ApiError(404, "no_frame", f"camera {name!r} has no frame yet; is it online?")
    state.audit(who, "camera.snapshot", name, reason=why, details={"redacted": not unredacted})
    return Response(
        outgoing_image(state, name, frame, unredacted=unredacted),
        media_type="image/jpeg",
        headers={"Cache-Control": "no-store"},
    )
