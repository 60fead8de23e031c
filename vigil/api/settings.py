"""``ApiSettings``: how the HTTP API behaves (cookies, sessions, login limits, redaction)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path

from vigil.config.models import RedactConfig
from vigil.errors import ConfigError

Network = IPv4Network | IPv6Network


def networks(cidrs: Iterable[str | Network]) -> tuple[Network, ...]:
    """``trusted_proxies`` from CIDR strings (a bare address is a /32 or /128)."""
    out = []
    for cidr in cidrs:
        try:
            out.append(ip_network(cidr, strict=False))
        except ValueError as exc:
            raise ConfigError(f"trusted proxy {cidr!r} is not an address or CIDR range, "
                              "e.g. 10.0.0.0/8 or ::1") from exc  # fmt: skip
    return tuple(out)


def default_hash_slots() -> int:
    """Concurrent Argon2 hashes by default: one per core, at most 4 (64 MiB each)."""
    return max(1, min(4, os.cpu_count() or 1))


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """Settings of one API instance; the defaults are the secure ones.

    ``secure_cookies``: mark cookies ``Secure`` (HTTPS only); switch off only for plain-HTTP
    localhost. ``session_ttl_s``: lifetime of a login. ``login_max_failures`` failed logins
    on one account name, or ``login_max_failures_per_address`` from one client address, within
    ``login_window_s`` seconds lock that account or address out until the window passes (429
    with ``Retry-After``), across every process on the database. ``trusted_proxies``: the
    reverse proxies whose ``X-Forwarded-For`` names the client (none by default: the peer
    address is the client). ``max_body_bytes``: the largest request body (413 beyond).
    ``hash_slots`` Argon2 hashes run at once and ``hash_queue`` more wait up to
    ``hash_wait_s`` seconds; beyond that a login answers 503 with ``Retry-After``.
    ``token_ttl_s``: the default and longest lifetime of an API token. ``redact``: how pixels
    are redacted on their way out; ``camera_redact``: the redaction in force per camera
    (``VigilConfig.redact_for``: the global one with the camera's own settings over it),
    ``redact`` for cameras not listed; read it through ``redact_for``. ``camera_tracks_people``:
    per camera whether its tracks hold its people (read through ``tracks_people``). ``signing_key``:
    Ed25519 key for export manifests (default
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
    ``min_free_bytes``: below this much free space in the data directory ``/api/health``
    reports storage ``low`` (``server.min_free_bytes``). ``outage_auth_ttl_s``: while the
    database is down, a credential it verified at most this long ago still opens the
    read-only routes of ``OUTAGE_READS`` (``PrincipalCache``; 0: never).
    """

    secure_cookies: bool = True
    session_ttl_s: float = 12 * 3600.0
    login_max_failures: int = 5
    login_max_failures_per_address: int = 20
    login_window_s: float = 60.0
    trusted_proxies: tuple[Network, ...] = ()
    max_body_bytes: int = 1024 * 1024
    hash_slots: int = field(default_factory=default_hash_slots)
    hash_queue: int = 8
    hash_wait_s: float = 2.0
    token_ttl_s: float = 90 * 86400.0
    min_password_length: int = 8
    redact: RedactConfig = field(default_factory=RedactConfig)
    camera_redact: Mapping[str, RedactConfig] = field(default_factory=dict)
    camera_tracks_people: Mapping[str, bool] = field(default_factory=dict)
    signing_key: Path | None = None
    max_export_s: float = 3600.0
    live_grant_ttl_s: float = 600.0
    clip_rolls: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    default_clip_roll: tuple[float, float] = (5.0, 5.0)
    clip_cache_bytes: int = 2 * 1024**3
    min_free_bytes: int | None = None
    setup_token: str | None = None
    job_workers: int = 1
    max_queued_jobs: int = 200
    max_user_jobs: int = 2
    max_user_clip_jobs: int = 6
    clip_wait_s: float = 2.0
    clip_settle_s: float = 90.0
    face_full_every_s: float = 1.0
    outage_auth_ttl_s: float = 600.0

    def redact_for(self, camera: str) -> RedactConfig:
        """How pixels of ``camera`` are redacted: its own settings, else the global ones."""
        return self.camera_redact.get(camera, self.redact)

    def tracks_people(self, camera: str) -> bool:
        """Whether ``camera``'s tracks hold its people (``vigil.privacy.tracks_people``);
        False for a camera not listed, so that people modes detect people on the frame."""
        return self.camera_tracks_people.get(camera, False)

    def clip_roll(self, camera: str) -> tuple[float, float]:
        """``(pre_roll, post_roll)`` seconds of ``camera``'s event clips."""
        return self.clip_rolls.get(camera, self.default_clip_roll)
