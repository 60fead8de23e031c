"""Request and response bodies. Times are UNIX seconds (UTC) unless a field says otherwise."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from vigil.api.runtime import TrackBox
from vigil.cluster.status import ClusterStatus
from vigil.config.models import LineConfig, ZoneConfig
from vigil.events.schema import EventPayload
from vigil.record.previews import parse_offsets
from vigil.store import AuditRow, EventRow, JobRow, Role, SegmentRow, TokenRow, UserRow
from vigil.store.repo import SegmentEntry


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    """The one shape of every error response."""

    error: ErrorDetail


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    database: bool
    setup_required: bool
    storage: Literal["ok", "low", "full", "unknown"] = Field(
        description="Free space of the data directory: full (under 1 MiB), low (under "
        "server.min_free_bytes), unknown (cannot be asked)."
    )
    free_bytes: int | None = Field(description="Free bytes in the data directory.")
    recording: Literal["ok", "failed", "off"] = Field(
        description="failed while any camera's recorder cannot write; off: nothing records."
    )
    recording_failed: int = Field(description="How many cameras cannot record now.")
    segments_unindexed: int = Field(
        0,
        description="Finished segments on disk the database did not take (given up after "
        "repeated failures) and not indexed yet, all cameras together: unknown to retention "
        "until a sweep (at start and at each retention pass) indexes them; the log names "
        "them.",
    )
    quarantine_files: int = Field(
        0,
        description="Segment files in the data directory's quarantine/ (they do not play), all "
        "cameras together: never served; retention deletes each once its footage is older "
        "than its camera's record.max_age, and first of all when the disk is below the "
        "free-space reserve. The log names them.",
    )
    quarantine_bytes: int = Field(0, description="Their bytes.")


class Credentials(_Body):
    name: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class SetupRequest(Credentials):
    token: str | None = Field(
        None, max_length=256, description="The one-time token of the link `vigil serve` printed."
    )


class Me(BaseModel):
    name: str
    role: Role
    cameras: list[str] | None
    csrf_token: str | None = Field(None, description="Send as X-CSRF-Token on unsafe methods.")


class TokenRequest(_Body):
    name: str = Field(min_length=1, max_length=64)
    ttl_s: float | None = Field(
        None, gt=0, description="Lifetime in seconds; none = the server's token_ttl (90 days), "
        "which is also the most.")  # fmt: skip


class TokenOut(BaseModel):
    id: int = Field(description="Revoke with DELETE /api/tokens/{id}.")
    token: str = Field(description="Shown once; only its hash is stored.")
    name: str | None
    expires: float | None


class StreamTokenOut(TokenOut):
    """A stream token and the URLs it opens (paths: prefix them with the server's address)."""

    camera: str
    mjpeg_url: str = Field(description="Home Assistant mjpeg camera's `mjpeg_url`.")
    still_image_url: str = Field(description="Home Assistant mjpeg camera's `still_image_url`.")


class TokenInfo(BaseModel):
    """An API token as listed: never the token itself."""

    id: int
    user: str
    name: str | None
    created: float
    expires: float | None
    last_used: float | None
    scope: str | None = Field(None, description="`live:<camera>`: a stream token; null: full.")

    @classmethod
    def of(cls, row: TokenRow, user: str) -> TokenInfo:
        return cls(id=row.id, user=user, name=row.name, created=row.created,
                   expires=row.expires, last_used=row.last_used, scope=row.scope)  # fmt: skip


#: Events in REST have the one shape of every event Vigil sends (MQTT, webhooks, WebSocket).
EventOut = EventPayload


def event_out(row: EventRow, *, has_clip: bool) -> EventPayload:
    """A stored event in the shared shape; ``has_clip``: recordings cover its span."""
    return EventPayload(
        id=row.id, camera=row.camera, label=row.label, class_id=row.class_id,
        track_id=row.track_id, state=row.state, live=row.live, start=row.start, end=row.end,
        duration=None if row.end is None else row.end - row.start, zones=list(row.zones),
        zones_now=list(row.zones_now or []), lines=list(row.lines), counts=dict(row.counts),
        measures=dict(row.measures or {}),
        top_score=round(min(1.0, max(0.0, row.top_score)), 4), box=row.box,
        has_snapshot=row.snapshot_path is not None, has_clip=has_clip,
        evidence_lock=row.evidence_lock, reviewed=row.reviewed,
    )  # fmt: skip


class ReviewRequest(_Body):
    reviewed: bool = Field(True, description="false marks the events unreviewed again.")


class BulkReviewRequest(ReviewRequest):
    ids: list[str] = Field(min_length=1, max_length=1000, description="Event ids.")


class ReviewOut(BaseModel):
    reviewed: bool
    events: list[str] = Field(description="The events whose flag was set.")


class EventPageOut(BaseModel):
    items: list[EventOut]
    next_cursor: str | None = Field(None, description="Pass as ?cursor= for the next page.")


class LockRequest(_Body):
    locked: bool = True
    reason: str | None = Field(None, max_length=500)


class LockOut(BaseModel):
    event: str
    locked: bool
    segments: int = Field(description="Recorded segments of the event's span (un)locked.")


class CountPointOut(BaseModel):
    time: int
    label: str
    metric: str
    count: int


class SegmentOut(BaseModel):
    id: int
    camera: str
    start: float
    end: float
    size: int
    sha256: str
    evidence_lock: bool
    has_motion: bool
    has_events: bool
    #: When the segment's redacted preview thumbnails were taken, in ms from ``start``
    #: (``GET /api/recordings/{camera}/preview?at=`` with start + offset gives that one).
    preview_offsets: list[int] = Field(default_factory=list)

    @classmethod
    def of(cls, row: SegmentRow | SegmentEntry) -> SegmentOut:
        return cls(id=row.id, camera=row.camera, start=row.start, end=row.end, size=row.size,
                   sha256=row.sha256, evidence_lock=row.evidence_lock,
                   has_motion=row.has_motion, has_events=row.has_events,
                   preview_offsets=parse_offsets(row.previews))  # fmt: skip


class ExportRequest(_Body):
    camera: str = Field(min_length=1, max_length=64)
    start: float
    end: float
    unredacted: bool = False
    reason: str | None = Field(None, max_length=500)


class ExportOut(BaseModel):
    name: str
    url: str
    manifest_url: str
    start: float
    end: float
    redaction: str
    frames: int


class JobOut(BaseModel):
    """A background job (an event clip or an export) and how far it got.

    ``state``: ``queued``, ``running``, ``done`` or ``failed``; ``progress`` 0..1; ``url``:
    poll it for news. ``result`` once done: for an export the ``ExportOut`` fields (download
    at its ``url``), for a clip the clip's ``url``. ``error``/``error_code`` once failed.
    """

    id: str
    kind: str
    state: Literal["queued", "running", "done", "failed"]
    progress: float
    created: float
    started: float | None
    finished: float | None
    url: str
    result: dict[str, Any] | None
    error: str | None
    error_code: str | None

    @classmethod
    def of(cls, row: JobRow) -> JobOut:
        code = message = None
        if row.error is not None:
            head, _, message = row.error.partition(": ")
            code = head.partition(" ")[2] or "job_failed"
        state: Any = row.state
        return cls(id=row.id, kind=row.kind, state=state, progress=row.progress,
                   created=row.created, started=row.started, finished=row.finished,
                   url=f"/api/jobs/{row.id}", result=row.result, error=message,
                   error_code=code)  # fmt: skip


class CameraOut(BaseModel):
    name: str
    online: bool
    state: str
    decode_fps: float
    detect_fps: float
    last_frame_time: float | None
    skipped_frames: int
    inference_ms: float
    queue_depth: int
    recording: str | None = Field(
        None, description="Recorder state (recording, reconnecting, failed...); null: not "
        "recorded.")  # fmt: skip
    recording_error: str | None = Field(
        None, description='Why recording fails, e.g. "recording failed: disk full".'
    )
    node: str | None = Field(
        None, description="The cluster node the camera runs on now (`server.backend: ray`); "
        "null on a single host.")  # fmt: skip


class SwitchBody(_Body):
    on: bool = Field(description="true: switched on; false: off.")


class SwitchesOut(BaseModel):
    """A camera's switches, as Home Assistant's MQTT switches show them; kept over restarts.
    ``recording``: null when the camera is not recorded by this server."""

    detection: bool = Field(description="Analysis on: frames are analysed, events raised.")
    recording: bool | None = Field(None, description="Recording on (its mode in force).")


class RulesBody(_Body):
    zones: dict[str, ZoneConfig] = Field(default_factory=dict)
    lines: dict[str, LineConfig] = Field(default_factory=dict)


class AuditOut(BaseModel):
    seq: int
    time: float
    actor: str
    action: str
    target: str
    source: str | None
    reason: str | None
    details: dict[str, Any]
    hash: str

    @classmethod
    def of(cls, row: AuditRow) -> AuditOut:
        return cls(seq=row.seq, time=row.time, actor=row.actor, action=row.action,
                   target=row.target, source=row.source, reason=row.reason,
                   details=dict(row.details), hash=row.hash)  # fmt: skip


class AuditVerifyOut(BaseModel):
    ok: bool
    records: int
    first_bad_seq: int | None
    problem: str | None
    head_seq: int
    head_hash: str


class UserOut(BaseModel):
    name: str
    role: Role
    disabled: bool
    cameras: list[str] | None
    created: float

    @classmethod
    def of(cls, row: UserRow) -> UserOut:
        return cls(name=row.name, role=row.role, disabled=row.disabled,
                   cameras=None if row.cameras is None else list(row.cameras),
                   created=row.created)  # fmt: skip


class UserCreate(_Body):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")
    role: Role
    password: str = Field(min_length=1, max_length=1024)
    cameras: list[str] | None = None


class UserPatch(_Body):
    role: Role | None = None
    disabled: bool | None = None
    cameras: list[str] | None = None
    clear_cameras: bool = Field(False, description="True gives access to every camera.")
    password: str | None = Field(None, min_length=1, max_length=1024)


class LiveGrantRequest(_Body):
    reason: str = Field(min_length=3, max_length=500, description="Why; kept in the audit log.")


class LiveGrantOut(BaseModel):
    grant: str = Field(description="Pass as ?grant= to live.mjpeg; this user and camera only.")
    camera: str
    expires_at: float


class TrackOut(BaseModel):
    id: int
    label: str
    score: float
    box: tuple[float, float, float, float] = Field(description="x1, y1, x2, y2 in 0..1.")

    @classmethod
    def of(cls, box: TrackBox) -> TrackOut:
        return cls(id=box.id, label=box.label, score=box.score, box=box.box)


class OverlayOut(BaseModel):
    """What the live view draws: the tracks of the newest analysed frame (``time`` its UNIX
    time, None before the first), the rules in force and the live ``RuleEngine.counts()``.
    No box mostly under a static privacy mask is listed (``vigil.api.overlay``)."""

    time: float | None
    width: int
    height: int
    tracks: list[TrackOut]
    people: list[TrackOut] = Field(
        default_factory=list,
        description="Person detections of the same frame that redaction hides although no "
        "track holds them yet (a person just come in; people modes only), id -1.",
    )
    zones: dict[str, ZoneConfig]
    lines: dict[str, LineConfig]
    counts: dict[str, Any]


class ClusterOut(BaseModel):
    """``GET /api/cluster``: the cluster's status, or null on a single host (no cluster)."""

    cluster: ClusterStatus | None
