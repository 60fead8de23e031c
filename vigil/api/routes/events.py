"""Events (list, get, evidence lock, snapshot, clip) and count time series."""

from __future__ import annotations

import csv
import io
import time
from functools import partial
from typing import Annotated, Any, Literal

from fastapi import Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, Response

from vigil.api.auth import Capability, Principal
from vigil.api.clips import Clip, clip_cut, event_clip, pinned_clip, queue_clip, ready_clip
from vigil.api.deps import Operator, Reader, StateDep, check_camera
from vigil.api.errors import ApiError, ForbiddenError, not_found
from vigil.api.jobs import PRIORITY_CLIP_WAITED, failure_of, wait_for
from vigil.api.media import check_range, outgoing_image, read_image, snapshot_source
from vigil.api.params import ClipCut, Cursor, EventId
from vigil.api.routes import error, protected
from vigil.api.schemas import (
    BulkReviewRequest,
    CountPointOut,
    EventOut,
    EventPageOut,
    JobOut,
    LockOut,
    LockRequest,
    ReviewOut,
    ReviewRequest,
    event_out,
)
from vigil.api.state import AppState
from vigil.errors import ConfigError, PrivacyError, StorageError
from vigil.privacy import UnredactedGrant, unredacted_access
from vigil.store import (
    CountRepo,
    EventCursor,
    EventFilter,
    EventRepo,
    EventRow,
    SegmentRepo,
)

router = protected(tags=["events"])

JPEG: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/jpeg": {}}, "description": "A JPEG, redacted by default."},
    503: error(
        "The cluster node holding the snapshot is down (the message names it)",
        Retry_After="seconds until the next try",
    ),
}


def _event(state: AppState, who: Principal, event_id: str) -> EventRow:
    with state.db.session() as session:
        row = EventRepo(session).get(event_id)
    if row is None or not who.sees(row.camera):
        raise not_found(f"event {event_id!r}")
    return row


def unredacted_grant(
    state: AppState, who: Principal, what: str, reason: str | None
) -> UnredactedGrant:
    """Check that ``who`` may see unredacted pixels and record why; returns the grant.

    Operators and admins only, with a reason; ``unredacted_access`` writes its local audit
    line first (fail closed), the caller then writes the hash-chained record. A refusal (the
    role, or no reason) is audited too, as ``unredacted.denied``: attempts matter to auditors.
    """
    if not who.can(Capability.OPERATE):
        state.audit(who, "unredacted.denied", what, reason=reason,
                    details={"why": f"role {who.role.value}"})  # fmt: skip
        raise ForbiddenError(f"role {who.role.value!r} sees redacted media only")
    try:
        return unredacted_access(reason or "", who.name, state.unredacted_file, what)
    except PrivacyError as exc:
        state.audit(who, "unredacted.denied", what, reason=reason, details={"why": str(exc)})
        raise


def _cursor(text: str) -> EventCursor:
    try:
        return EventCursor.decode(text)
    except StorageError as exc:  # the client's input, not the database: 422, not 503
        raise ConfigError(str(exc)) from exc


@router.get("/api/events")
def list_events(
    *, who: Reader, state: StateDep,
    camera: str | None = None, label: str | None = None, zone: str | None = None,
    line: str | None = None, start: float | None = None, end: float | None = None,
    reviewed: bool | None = None,
    cursor: Cursor = None, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> EventPageOut:  # fmt: skip
    """Events newest first, overlapping ``[start, end)``; ``reviewed=false`` for the ones
    nobody has reviewed yet; pass ``next_cursor`` back as ``cursor`` for the next page
    (keyset pagination)."""
    if camera is not None:
        check_camera(who, camera)
    where = EventFilter(camera=camera, cameras=who.cameras, label=label, zone=zone, line=line,
                        since=start, until=end, reviewed=reviewed)  # fmt: skip
    after = None if cursor is None else _cursor(cursor)
    with state.db.session() as session:
        page = EventRepo(session).list(where, limit=limit, after=after)
        # has_clip of the whole page in one query, not a round trip per row.
        clips = SegmentRepo(session).recorded_many([_span(r) for r in page.items])
        items = [event_out(r, has_clip=c) for r, c in zip(page.items, clips, strict=True)]
    return EventPageOut(
        items=items, next_cursor=page.next_cursor.encode() if page.next_cursor else None
    )


def _span(row: EventRow) -> tuple[str, float, float]:
    """The camera and time span whose recordings make the event's clip."""
    until = row.end if row.end is not None else time.time()
    return row.camera, row.start, max(until, row.start + 1e-3)


def _recorded(segments: SegmentRepo, row: EventRow) -> bool:
    """Whether recordings cover any of the event's span (its clip can be played)."""
    return segments.recorded(*_span(row))


@router.get("/api/events/{event_id}")
def get_event(event_id: EventId, who: Reader, state: StateDep) -> EventOut:
    row = _event(state, who, event_id)
    with state.db.session() as session:
        return event_out(row, has_clip=_recorded(SegmentRepo(session), row))


@router.post("/api/events/{event_id}/review")
def review_event(
    event_id: EventId, who: Operator, state: StateDep, body: ReviewRequest | None = None
) -> ReviewOut:
    """Mark the event reviewed (``{"reviewed": false}``: unreviewed again)."""
    body = body or ReviewRequest()
    row = _event(state, who, event_id)
    return _review(state, who, [row.id], body.reviewed)


@router.post("/api/events/review")
def review_events(body: BulkReviewRequest, who: Operator, state: StateDep) -> ReviewOut:
    """Mark many events reviewed at once (those outside the caller's cameras are left)."""
    return _review(state, who, body.ids, body.reviewed)


def _review(state: AppState, who: Principal, ids: list[str], reviewed: bool) -> ReviewOut:
    with state.db.session(immediate=True) as session:
        done = EventRepo(session).set_reviewed(ids, reviewed, who.cameras)
    if done:
        state.audit(who, "event.review" if reviewed else "event.unreview", ",".join(done)[:200],
                    details={"events": done})  # fmt: skip
    return ReviewOut(reviewed=reviewed, events=done)


@router.post("/api/events/{event_id}/lock")
def lock_event(
    event_id: EventId, who: Operator, state: StateDep, body: LockRequest | None = None
) -> LockOut:
    """Evidence lock: retention never deletes the event or the segments of its span."""
    body = body or LockRequest()
    row = _event(state, who, event_id)
    until = row.end if row.end is not None else time.time()
    with state.db.session(immediate=True) as session:
        EventRepo(session).set_evidence_lock(row.id, body.locked)
        segments = SegmentRepo(session).set_lock(row.camera, row.start, until, body.locked)
    state.audit(who, "event.lock" if body.locked else "event.unlock", row.id,
                reason=body.reason, details={"segments": segments})  # fmt: skip
    return LockOut(event=row.id, locked=body.locked, segments=segments)


@router.get("/api/events/{event_id}/snapshot", responses=JPEG, response_class=Response)
def event_snapshot(
    event_id: EventId, who: Reader, state: StateDep, unredacted: bool = False,
    reason: str | None = None,
) -> Response:  # fmt: skip
    """The event's best frame as JPEG, redacted; ``unredacted=true&reason=...`` for
    operators and admins (audited with the reason)."""
    row = _event(state, who, event_id)
    if row.snapshot_path is None:
        raise not_found(f"snapshot of event {event_id!r}")
    path = snapshot_source(state.media, row)
    grant = unredacted_grant(state, who, f"snapshot {row.id}", reason) if unredacted else None
    why = None if grant is None else grant.reason
    image = read_image(path)
    state.audit(who, "snapshot.read", row.id, reason=why,
                details={"redacted": not unredacted, "path": row.snapshot_path})  # fmt: skip
    return Response(
        outgoing_image(state, row.camera, image, unredacted=unredacted),
        media_type="image/jpeg",
        headers={"Cache-Control": "no-store"},
    )


@router.get(
    "/api/counts",
    response_model=list[CountPointOut],
    responses={200: {"content": {"text/csv": {}}}},
)
def counts(
    *, request: Request, who: Reader, state: StateDep, camera: str,
    rule: str | None = None, label: str | None = None, metric: str | None = None,
    start: float | None = None, end: float | None = None,
    period: Literal["minute", "hour", "day", "week"] = "hour",
    format: Literal["json", "csv"] | None = None,
) -> list[CountPointOut] | Response:  # fmt: skip
    """Counts per ``period`` (UTC; ``week``: ISO weeks from Monday), class and metric; CSV
    with ``Accept: text/csv`` or ``?format=csv``."""
    check_camera(who, camera)
    with state.db.session() as session:
        points = CountRepo(session).series(camera, rule=rule, label=label, metric=metric,
                                           since=start, until=end, period=period)  # fmt: skip
    out = [CountPointOut(time=p.time, label=p.label, metric=p.metric, count=p.count)
           for p in points]  # fmt: skip
    wants_csv = format == "csv" or (
        format is None and "text/csv" in request.headers.get("accept", "")
    )
    if not wants_csv:
        return out
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["time", "label", "metric", "count"])
    writer.writerows([p.time, p.label, p.metric, p.count] for p in out)
    return Response(text.getvalue(), media_type="text/csv")


CLIP: dict[int | str, dict[str, Any]] = {
    200: {"content": {"video/mp4": {}}, "description": "MP4, redacted by default."},
    202: {
        "model": JobOut,
        "description": "The clip is being prepared: the job's state and "
        "progress (``Retry-After`` says when to ask again; or follow ``url``).",
    },
    206: {"description": "Partial content"},
    410: error("The cut named by ``cut`` is no longer served: open the clip again"),
    416: error("Range not satisfiable", Content_Range="bytes */<file size>"),
    429: error(
        "Too many clips being prepared for this user", Retry_After="seconds until the next try"
    ),
}


@router.get("/api/events/{event_id}/clip", responses=CLIP, response_class=FileResponse)
async def event_clip_media(
    event_id: EventId, request: Request, who: Reader, state: StateDep, *, unredacted: bool = False,
    reason: str | None = None, cut: ClipCut = None,
) -> Response:  # fmt: skip
    """The event as MP4 with the camera's pre/post-roll, redacted; ``unredacted=true&reason=``
    for operators and admins (audited); Range supported. The redacted clip is rendered in the
    background when the event ends; while it is not ready yet this asks for it at the top of
    the queue, waits up to ``clip_wait_s`` and then answers **202** with the job (poll again,
    or follow the job's ``url``). A clip cut while the post-roll was still being recorded is
    served (``X-Vigil-Clip-Cache: stale``) while the complete one renders in the background
    (``vigil.api.clips.ready_clip``). 404 ``no_recording`` when no segment covers the event.

    A redacted clip's answer names its cut (``X-Vigil-Clip-Cut``); a player's range requests
    pass it as ``cut`` and so keep reading that file when a newer cut replaces it (410
    ``clip_replaced`` once it is gone, or when the redaction settings changed since)."""
    row = await run_in_threadpool(_event, state, who, event_id)
    grant = None
    if unredacted and cut is not None:
        raise ApiError(422, "validation_error", "'cut' names a redacted clip's cut: ask for "
                       "an unredacted clip without it")  # fmt: skip
    if unredacted:
        grant = await run_in_threadpool(unredacted_grant, state, who, f"clip {row.id}", reason)
    for _ in range(_CLIP_PICKS):
        picked: tuple[Clip, bool] | JSONResponse
        if cut is not None:
            picked = await run_in_threadpool(pinned_clip, state, row, cut), False
        elif grant is not None:  # a stream copy (or masks only): quick, cut in the request
            picked = await run_in_threadpool(event_clip, state, row, grant), False
        else:
            picked = await _redacted_clip(state, row, who)
        if isinstance(picked, JSONResponse):
            return picked
        clip, waited = picked
        try:
            info = await run_in_threadpool(clip.path.stat)
            break
        except FileNotFoundError:  # superseded (or retention took its footage) since: again
            continue
    else:
        raise ApiError(503, "clip_busy", f"the clip of event {row.id!r} was replaced while "
                       "it was being sent; ask again", headers={"Retry-After": "1"})  # fmt: skip
    await run_in_threadpool(
        state.audit, who, "event.clip", row.id, reason=None if grant is None else grant.reason,
        details={"redacted": grant is None, "cached": clip.cached and not waited,
                 "stale": clip.stale, "cut": cut,
                 "start": clip.start, "end": clip.end, "range": request.headers.get("range")},
    )  # fmt: skip
    check_range(request.headers.get("range"), info.st_size)
    # ``stale``: the clip cut while its post-roll was recorded, its complete one queued.
    cache = "stale" if clip.stale else "hit" if clip.cached and not waited else "miss"
    headers = {"Cache-Control": "no-store", "X-Vigil-Clip-Cache": cache}
    if grant is None:
        headers["X-Vigil-Clip-Cut"] = clip_cut(clip)
    return FileResponse(clip.path, media_type="video/mp4", stat_result=info, headers=headers)


#: Times the clip route picks a clip again when the one it picked was deleted before it could
#: be sent (a complete clip replacing its earlier cut).
_CLIP_PICKS = 3


async def _redacted_clip(
    state: AppState, row: EventRow, who: Principal
) -> tuple[Clip, bool] | JSONResponse:
    """The redacted clip to send and whether the request waited for it to be rendered, or
    the 202 with its job when it is still not ready after ``clip_wait_s``."""
    found = await run_in_threadpool(ready_clip, state, row)
    if found is not None:
        return found, False
    job = await run_in_threadpool(partial(
        queue_clip, state, row.id, row.camera, owner=who.name,
        priority=PRIORITY_CLIP_WAITED))  # fmt: skip
    done = await run_in_threadpool(wait_for, state.db, job.id, state.settings.clip_wait_s)
    if done is not None and done.state == "failed":
        raise failure_of(done)
    if done is not None and done.state == "done":
        found = await run_in_threadpool(ready_clip, state, row)
    if found is None:
        body = JobOut.of(done or job).model_dump()
        return JSONResponse(
            body, status_code=202, headers={"Retry-After": "1", "Cache-Control": "no-store"}
        )
    return found, True
