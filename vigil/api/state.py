"""``AppState``: what every route shares (settings, database, runtime, media root, limiter).

Built by ``create_app`` and kept on ``app.state.vigil``; nothing here is created at import.
The face detector used for redaction is loaded once, on first use, and shared: the
``Redactor`` built per output image is cheap, the ONNX session is not.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vigil.api.auth import LoginLimiter, Principal
from vigil.api.jobs import JobLimits, JobRunner
from vigil.api.live import LiveFrames, LiveGrants
from vigil.api.runtime import RuntimeView
from vigil.api.settings import ApiSettings
from vigil.config.models import RedactConfig
from vigil.privacy import FaceDetector, Redactor
from vigil.record.export import FaceSearch
from vigil.store import AuditLog, AuditRow, Database

RedactorFactory = Callable[[tuple[int, int]], Redactor]


@dataclass
class AppState:
    settings: ApiSettings
    db: Database
    runtime: RuntimeView
    data_dir: Path
    limiter: LoginLimiter
    audit_log: AuditLog
    redactor_override: RedactorFactory | None = None
    #: Set when the app shuts down: live streams end at their next poll.
    stopping: threading.Event = field(default_factory=threading.Event)
    #: Live streams now open (they decrement when their client goes away).
    live_streams: int = 0
    #: Background clip and export jobs (None until ``create_app`` starts them).
    jobs: JobRunner | None = field(default=None, repr=False)
    _grants: LiveGrants | None = field(default=None, repr=False)
    _frames: LiveFrames | None = field(default=None, repr=False)
    _clip_locks: dict[str, threading.Lock] = field(default_factory=dict, repr=False)
    _faces: FaceDetector | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

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
    def live(self) -> LiveFrames:
        """Shared renders of the cameras' live frames (one redaction per frame)."""
        with self._lock:
            if self._frames is None:
                self._frames = LiveFrames(self.runtime, self.redactor)
            return self._frames

    def clip_lock(self, key: str) -> threading.Lock:
        """One lock per clip file, so that two requests do not cut the same clip at once."""
        with self._lock:
            return self._clip_locks.setdefault(key, threading.Lock())

    @property
    def job_limits(self) -> JobLimits:
        s = self.settings
        return JobLimits(s.max_queued_jobs, {"export": s.max_user_jobs,
                                             "clip": s.max_user_clip_jobs})

    def wake_jobs(self) -> None:
        """A job was queued: let an idle worker look now."""
        if self.jobs is not None:
            self.jobs.wake()

    def redact_config(self, camera: str | None = None) -> RedactConfig:
        """The redaction settings that apply to ``camera``'s media (the one place that asks)."""
        return self.settings.redact

    def redaction_mode(self, camera: str | None = None) -> str:
        return self.redact_config(camera).mode

    def face_search(self, box: list[float] | None = None) -> FaceSearch | None:
        """How clips and exports search faces (``ApiSettings.face_full_every_s``);
        ``box``: a normalised box where a person is known to be (an event's)."""
        every = self.settings.face_full_every_s
        if every <= 0:
            return None
        hints = ((box[0], box[1], box[2], box[3]),) if box is not None and len(box) == 4 else ()
        return FaceSearch(every, hints)

    def redactor(self, size: tuple[int, int]) -> Redactor:
        """A fresh Redactor for ``(width, height)`` images, with the shared detectors."""
        if self.redactor_override is not None:
            return self.redactor_override(size)
        from vigil.privacy.redactor import build_face_detector, build_redactor, mode_needs_faces

        config = self.redact_config()
        if mode_needs_faces(config.mode):
            with self._lock:
                if self._faces is None:
                    self._faces = build_face_detector(config)
        return build_redactor(config, size, face_detector=self._faces)

    def audit(
        self, who: Principal, action: str, target: str, *, reason: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> AuditRow:  # fmt: skip
        """Append an audit record for ``who`` (committed before the caller goes on)."""
        return self.audit_log.append(who.name, action, target, source=who.client, reason=reason,
                                     details=details)  # fmt: skip
