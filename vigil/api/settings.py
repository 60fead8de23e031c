"""``ApiSettings``: how the HTTP API behaves (cookies, sessions, login limits, redaction)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from vigil.config.models import RedactConfig


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """Settings of one API instance; the defaults are the secure ones.

    ``secure_cookies``: mark cookies ``Secure`` (HTTPS only); switch off only for plain-HTTP
    localhost. ``session_ttl_s``: lifetime of a login. ``login_max_failures`` failed logins
    per client address and user name within ``login_window_s`` seconds lock that pair out until
    the window passes (429 with ``Retry-After``). ``redact``: how pixels are redacted on their
    way out. ``signing_key``: Ed25519 key for export manifests (default
    ``<data_dir>/keys/export_ed25519.pem``, created 0600 when missing). ``live_grant_ttl_s``:
    how long an unredacted live-view grant lasts. ``clip_rolls``: per camera ``(pre_roll,
    post_roll)`` seconds around an event's span for ``/api/events/{id}/clip`` (the camera's
    ``record`` config); cameras not listed get ``default_clip_roll``. ``clip_cache_bytes``: the
    most the event-clip cache keeps; the least recently served clips go first.
    ``job_workers``: threads rendering clips and exports in the background (0: none, the
    jobs wait in the database for a server that has some). ``max_queued_jobs``: the most jobs
    queued or running in all; ``max_user_jobs``: exports per user,
    ``max_user_clip_jobs``: clips one user waits for (429 beyond).
    ``clip_wait_s``: how long a request for a clip that is not ready waits before it answers
    202 with the job's progress. ``clip_settle_s``: how long after an event's clip span the
    background render waits for the post-roll to be recorded. ``face_full_every_s``: in
    clips and exports, faces are searched in the whole frame this often and in between only
    where people move (``vigil.privacy.regions``); 0 searches every frame whole.
    ``setup_token``: when set, first-run setup needs it (``vigil serve`` prints the link that
    carries it), so nobody else on the network can create the first admin.
    """

    secure_cookies: bool = True
    session_ttl_s: float = 12 * 3600.0
    login_max_failures: int = 5
    login_window_s: float = 60.0
    min_password_length: int = 8
    redact: RedactConfig = field(default_factory=RedactConfig)
    signing_key: Path | None = None
    max_export_s: float = 3600.0
    live_grant_ttl_s: float = 600.0
    clip_rolls: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    default_clip_roll: tuple[float, float] = (5.0, 5.0)
    clip_cache_bytes: int = 2 * 1024**3
    setup_token: str | None = None
    job_workers: int = 1
    max_queued_jobs: int = 200
    max_user_jobs: int = 2
    max_user_clip_jobs: int = 6
    clip_wait_s: float = 2.0
    clip_settle_s: float = 90.0
    face_full_every_s: float = 1.0

    def clip_roll(self, camera: str) -> tuple[float, float]:
        """``(pre_roll, post_roll)`` seconds of ``camera``'s event clips."""
        return self.clip_rolls.get(camera, self.default_clip_roll)
