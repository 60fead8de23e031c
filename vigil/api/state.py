"""``AppState``: what every route shares (settings, database, runtime, media root, login
throttle, password-hashing gate).

Built by ``create_app`` and kept on ``app.state.vigil``; nothing here is created at import.
The face detector used for redaction is loaded once, on first use, and shared: the
``Redactor`` built per output image is cheap, the ONNX session is not.

Every route that sends pixels asks this state how, per camera: ``redact_config`` is the one
answer to "which redaction holds for camera X" (``ApiSettings.redact_for``), ``redactor``
builds the redacting Redactor from it, ``unredacted`` applies what audited unredacted output
still gets (the camera's static masks), and ``export_redactor`` picks the export path.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vigil.api.auth import HashGate, LoginThrottle, Principal, PrincipalCache
from vigil.api.jobs import JobLimits, JobRunner
from vigil.api.live import LiveFrames, LiveGrants
from vigil.api.livevideo import LiveVideo
from vigil.api.media import LocalMedia, MediaResolver
from vigil.api.overlay import OverlayBoxes, overlay_boxes
from vigil.api.runtime import CopyFeeds, PacketTaps, RuntimeView, TrackSnapshot
from vigil.api.settings import ApiSettings
from vigil.cluster.status import ClusterStatus
from vigil.config.models import RedactConfig
from vigil.privacy import FaceDetector, Redactor, UnredactedGrant
from vigil.privacy.masks import masked
from vigil.privacy.redactor import mode_needs_people
from vigil.record.copyfeed import CopyFeed, CopyReader
from vigil.record.export import FaceSearch
from vigil.record.tap import PacketTap
from vigil.store import AuditLog, AuditRow, Database, TokenRepo
from vigil.types import ImageArray

if TYPE_CHECKING:
    from vigil.detect.base import Detector

#: Builds a redacting Redactor from a camera's RedactConfig for ``(width, height)`` images
#: (tests inject one that shares a loaded face detector).
RedactorFactory = Callable[[RedactConfig, tuple[int, int]], Redactor]
#: Builds an export's Redactor for ``(width, height)`` frames (see ``vigil.record.export``).
ExportRedactor = Callable[[tuple[int, int]], Redactor]

#: Seconds between purges of expired tokens (per process).
TOKEN_PURGE_S = 600.0
#: The actor of audit records that Vigil itself writes (a grant ended by an account change
#: made outside this process, an export refused when its job runs).
SYSTEM_ACTOR = "vigil"


@dataclass
class AppState:
    settings: ApiSettings
    db: Database
    runtime: RuntimeView
    data_dir: Path
    throttle: LoginThrottle
    hashing: HashGate
    audit_log: AuditLog
    redactor_override: RedactorFactory | None = None
    #: Where rows' media files are read from (None: ``LocalMedia(data_dir)``, a single host);
    #: read it through ``media``.
    media_resolver: MediaResolver | None = None
    #: The cluster's status for ``GET /api/cluster`` (None: a single host, no cluster).
    cluster_status: Callable[[], ClusterStatus] | None = None
    #: Set when the app shuts down: live streams end at their next poll.
    stopping: threading.Event = field(default_factory=threading.Event)
    #: Live streams now open (they decrement when their client goes away).
    live_streams: int = 0
    #: Background clip and export jobs (None until ``create_app`` starts them).
    jobs: JobRunner[AppState] | None = field(default=None, repr=False)
    #: No token ``last_used`` write before this time (UNIX s): the last one failed.
    touch_retry_at: float = 0.0
    _grants: LiveGrants | None = field(default=None, repr=False)
    _principals: PrincipalCache | None = field(default=None, repr=False)
    _frames: LiveFrames | None = field(default=None, repr=False)
    _video: LiveVideo | None = field(default=None, repr=False)
    _feeds: dict[str, CopyFeed] = field(default_factory=dict, repr=False)
    _clip_locks: dict[str, threading.Lock] = field(default_factory=dict, repr=False)
    _faces: dict[tuple[float, tuple[float, ...], int], FaceDetector] = field(
        default_factory=dict, repr=False
    )
    _people: dict[float, Detector] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _tokens_purged: float = field(default=-math.inf, repr=False)
    _last_seen: dict[tuple[str, ...], float] = field(default_factory=dict, repr=False)

    @property
    def media(self) -> MediaResolver:
        """The resolver of every media route (``vigil.api.media.MediaResolver``)."""
        if self.media_resolver is None:
            self.media_resolver = LocalMedia(self.data_dir)
        return self.media_resolver

    @property
    def exports_dir(self) -> Path:
        return self.data_dir / "exports"

    @property
    def signing_key_path(self) -> Path:
        return self.settings.signing_key or self.data_dir / "keys" / "export_ed25519.pem"

    @property
    def unredacted_file(self) -> Path:
        """The local JSON-lines file that ``unredacted_access`` also writes (fail closed)."""
        return self.data_dir / "audit" / "unredacted.jsonl"

    @property
    def clips_dir(self) -> Path:
        """Event clips cut on request; a cache (safe to delete at any time)."""
        return self.data_dir / "clips"

    @property
    def grants(self) -> LiveGrants:
        """Unredacted live-view grants (in memory)."""
        with self._lock:
            if self._grants is None:
                self._grants = LiveGrants(self.settings.live_grant_ttl_s)
            return self._grants

    @property
    def principals(self) -> PrincipalCache:
        """Credentials verified lately, for read-only routes during a database outage."""
        with self._lock:
            if self._principals is None:
                self._principals = PrincipalCache(self.settings.outage_auth_ttl_s)
            return self._principals

    @property
    def live(self) -> LiveFrames:
        """Shared renders of the cameras' live frames (one redaction per frame)."""
        with self._lock:
            if self._frames is None:
                self._frames = LiveFrames(self.runtime, self.redactor, self.unredacted,
                                          boxes=self.overlay_boxes)  # fmt: skip
            return self._frames

    @property
    def video(self) -> LiveVideo:
        """Live H.264 encoders, one per watched camera view (``vigil.api.livevideo``)."""
        with self._lock:
            if self._video is None:
                self._video = LiveVideo(
                    self.runtime, redactor=self._live_redactor, unredacted=self.unredacted,
                    face_detector=self.face_detector,
                    needs_people=lambda camera: mode_needs_people(self.redact_config(camera).mode),
                    copy_source=self.copy_source, person_detector=self.live_person_detector,
                    fallback_person=self.fallback_person_detector,
                )  # fmt: skip
            return self._video

    def copy_source(self, camera: str) -> tuple[CopyReader | None, str | None]:
        """Whether ``camera``'s granted unredacted live view is a stream copy of its own H.264:
        its copy feed (``vigil.record.copyfeed``), or None and why it is re-encoded instead.
        The privacy rule first: static masks apply to unredacted output too and cannot be
        painted on copied packets, so a camera with masks is always re-encoded
        (``docs/privacy.md``). The feed is the camera actor's on a cluster node
        (``CopyFeeds``), or one made here around the tap of a recorder in this process."""
        config = self.redact_config(camera)
        if config.masks:
            return None, (
                f"the camera has {len(config.masks)} static privacy mask(s), which "
                "apply to unredacted output too: re-encoded with them painted"
            )
        feed: CopyReader | None = None
        if isinstance(self.runtime, CopyFeeds):
            feed = self.runtime.copy_feed(camera)
        if feed is None and isinstance(self.runtime, PacketTaps):
            tap = self.runtime.packet_tap(camera)
            feed = None if tap is None else self._local_feed(tap)
        elif feed is None:
            return None, "this runtime hands the API no packets: re-encoded"
        if feed is None:
            return None, (
                "the camera is not recorded (recording off), so it has no packets to "
                "copy: re-encoded"
            )
        problem = feed.problem()
        return (None, problem) if problem is not None else (feed, None)

    def _local_feed(self, tap: PacketTap) -> CopyFeed:
        """The one feed of a recorder's tap in this process, shared by its views."""
        with self._lock:
            feed = self._feeds.get(tap.camera)
            if feed is None or feed.tap is not tap:
                feed = self._feeds[tap.camera] = CopyFeed(tap)
            return feed

    def _live_redactor(self, camera: str, size: tuple[int, int], faces: Any) -> Redactor:
        # The camera's settings, with the live stream's carried faces as its face detector
        # and the tracks as its people (passed per frame): no detector runs per frame here.
        return Redactor(self.redact_config(camera), size, face_detector=faces)

    def live_person_detector(self, camera: str) -> Detector | None:
        """The person detector ``camera``'s live video runs on its frames: when its mode hides
        people and its tracks cannot hold them (``ApiSettings.tracks_people``; the motion
        detector). None otherwise. ``PrivacyError`` when it cannot be loaded (fail closed)."""
        if self.settings.tracks_people(camera):
            return None
        return self.fallback_person_detector(camera)

    def fallback_person_detector(self, camera: str) -> Detector | None:
        """The person detector of ``camera``'s redaction settings whatever its tracks hold
        (None when its mode hides no people): what live video runs while the camera's tracks
        come from no analysed frame (its detection switched off). ``PrivacyError`` when it
        cannot be loaded."""
        config = self.redact_config(camera)
        if not mode_needs_people(config.mode):
            return None
        if self.redactor_override is not None:
            found = self.redactor_override(config, (16, 16)).person_detector
            if found is not None:
                return found
        from vigil.privacy.redactor import build_person_detector

        with self._lock:
            # One per confidence, shared by the cameras' streams (ONNX Runtime sessions are
            # safe to run from several threads).
            detector = self._people.get(config.person_confidence)
            if detector is None:
                detector = self._people[config.person_confidence] = build_person_detector(config)
        return detector

    def face_detector(self, camera: str) -> FaceDetector | None:
        """The shared face detector of ``camera``'s redaction settings; None when its mode
        needs none."""
        config = self.redact_config(camera)
        if self.redactor_override is not None:
            return self.redactor_override(config, (16, 16)).face_detector
        return self._shared_faces(config)

    def _shared_faces(self, config: RedactConfig) -> FaceDetector | None:
        from vigil.privacy.redactor import build_face_detector, mode_needs_faces

        if not mode_needs_faces(config.mode):
            return None
        # One detector per set of face settings: cameras may tune threshold and scales.
        key = (config.face_threshold, tuple(config.face_scales), config.face_max_side)
        with self._lock:
            faces = self._faces.get(key)
            if faces is None:
                faces = self._faces[key] = build_face_detector(config)
        return faces

    def clip_lock(self, key: str) -> threading.Lock:
        """One lock per clip file, so that two requests do not cut the same clip at once."""
        with self._lock:
            return self._clip_locks.setdefault(key, threading.Lock())

    @property
    def job_limits(self) -> JobLimits:
        s = self.settings
        return JobLimits(
            s.max_queued_jobs, {"export": s.max_user_jobs, "clip": s.max_user_clip_jobs}
        )

    def wake_jobs(self) -> None:
        """A job was queued: let an idle worker look now."""
        if self.jobs is not None:
            self.jobs.wake()

    def face_search(self, box: list[float] | None = None) -> FaceSearch | None:
        """How clips and exports search faces (``ApiSettings.face_full_every_s``);
        ``box``: a normalised box where a person is known to be (an event's)."""
        every = self.settings.face_full_every_s
        if every <= 0:
            return None
        hints = ((box[0], box[1], box[2], box[3]),) if box is not None and len(box) == 4 else ()
        return FaceSearch(every, hints)

    def overlay_boxes(self, camera: str, snapshot: TrackSnapshot) -> OverlayBoxes:
        """The boxes of ``snapshot`` that ``camera``'s live overlay shows: none under its
        static masks, and the person detections its redaction hides too
        (``vigil.api.overlay``)."""
        return overlay_boxes(snapshot, self.redact_config(camera),
                             self.settings.tracks_people(camera))  # fmt: skip

    def redact_config(self, camera: str) -> RedactConfig:
        """The redaction in force for ``camera`` (its own settings over the global ones)."""
        return self.settings.redact_for(camera)

    def redactor(self, camera: str, size: tuple[int, int]) -> Redactor:
        """A fresh redacting Redactor for ``camera``'s ``(width, height)`` images, with the
        shared detectors."""
        config = self.redact_config(camera)
        if self.redactor_override is not None:
            return self.redactor_override(config, size)
        from vigil.privacy.redactor import build_redactor

        faces = self._shared_faces(config)
        return build_redactor(config, size, face_detector=faces)

    def unredacted(self, camera: str, image: ImageArray) -> ImageArray:
        """``image`` as audited unredacted output of ``camera`` shows it: a copy with the
        camera's static masks blacked out (they apply always, see ``docs/privacy.md``)."""
        return masked(image, self.redact_config(camera).masks)

    def export_redactor(self, camera: str, grant: UnredactedGrant | None) -> ExportRedactor | None:
        """The Redactor factory of an export or clip of ``camera``: redacting without
        ``grant``; with it, masks only (re-encoded) when the camera has static masks, else
        None, the stream copy, which keeps the recording's own bytes."""
        config = self.redact_config(camera)
        if grant is None:
            return lambda size: self.redactor(camera, size)
        if not config.masks:
            return None
        return lambda size: Redactor(config, size, grant=grant)

    def purge_expired_tokens(self, now: float | None = None) -> None:
        """Delete expired sessions and tokens, at most once every ``TOKEN_PURGE_S`` per process
        (called where tokens are minted, so the table cannot grow without bound)."""
        when = time.time() if now is None else now
        with self._lock:
            if when - self._tokens_purged < TOKEN_PURGE_S:
                return
            self._tokens_purged = when
        with self.db.session(immediate=True) as session:
            TokenRepo(session).purge_expired(now=when)

    def first_in(self, key: tuple[str, ...], window_s: float, now: float | None = None) -> bool:
        """Whether ``key`` was not seen in the last ``window_s`` seconds (it is now): for
        audit records kept to one per user and window where a page asks many times (the
        timeline's previews). In memory, per process; bounded by dropping stale keys."""
        when = time.monotonic() if now is None else now
        with self._lock:
            last = self._last_seen.get(key)
            if last is not None and when - last < window_s:
                return False
            if len(self._last_seen) > 10_000:
                self._last_seen = {k: t for k, t in self._last_seen.items()
                                   if when - t < window_s}  # fmt: skip
            self._last_seen[key] = when
            return True

    def audit(
        self, who: Principal, action: str, target: str, *, reason: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> AuditRow:  # fmt: skip
        """Append an audit record for ``who`` (committed before the caller goes on)."""
        return self.audit_log.append(who.name, action, target, source=who.client, reason=reason,
                                     details=details)  # fmt: skip
