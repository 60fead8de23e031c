"""Authentication and authorisation: Argon2id passwords, login rate limit, roles, CSRF.

Roles are not a ladder. ``Capability`` names what a request needs and ``ROLE_CAPS`` says which
role has it: viewers see events and *redacted* media; operators also lock evidence, play
recorded segments, ask for unredacted media (with a reason) and export; auditors read the
audit log only; admins may do everything, including users and rules.

Sessions live behind the HTTP-only ``vigil_session`` cookie; the CSRF token in the
JS-readable ``vigil_csrf`` cookie is derived from the session token (a signed double submit),
so a token forged by another site cannot match. Bearer tokens are not sent by browsers on
their own and need no CSRF token.
"""

from __future__ import annotations

import enum
import hmac
import math
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from vigil.errors import ConfigError
from vigil.store import Role, hash_token

SESSION_COOKIE = "vigil_session"
CSRF_COOKIE = "vigil_csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

_hasher = PasswordHasher()  # Argon2id with argon2-cffi's current recommended parameters

#: A hash to verify against when the user does not exist, so timing does not reveal names.
_DUMMY_HASH = _hasher.hash("vigil-no-such-user")


def hash_password(password: str, *, min_length: int = 8) -> str:
    """The Argon2id hash of ``password``; ``ConfigError`` when it is too short."""
    if len(password) < min_length:
        raise ConfigError(f"a password needs at least {min_length} characters")
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when ``password`` matches; always costs one Argon2 verification."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def csrf_token_for(session_token: str) -> str:
    """The CSRF token bound to a session token (see the module docstring)."""
    return hash_token("csrf:" + session_token)


def csrf_valid(session_token: str, header: str | None) -> bool:
    return header is not None and hmac.compare_digest(csrf_token_for(session_token), header)


class Capability(enum.StrEnum):
    READ = "read"  # events, counts, cameras, recordings list, redacted media
    OPERATE = "operate"  # evidence lock, segment playback, unredacted media, exports
    AUDIT = "audit"  # the audit log
    ADMIN = "admin"  # users, rules, settings


ROLE_CAPS: dict[Role, frozenset[Capability]] = {
    Role.VIEWER: frozenset({Capability.READ}),
    Role.OPERATOR: frozenset({Capability.READ, Capability.OPERATE}),
    Role.AUDITOR: frozenset({Capability.AUDIT}),
    Role.ADMIN: frozenset(Capability),
}


@dataclass(frozen=True, slots=True)
class Principal:
    """Who makes a request: user, role, camera scope (None = all), how they authenticated."""

    user_id: int
    name: str
    role: Role
    cameras: tuple[str, ...] | None
    via: str  # "session" or "token"
    client: str | None

    def can(self, cap: Capability) -> bool:
        return cap in ROLE_CAPS[self.role]

    def sees(self, camera: str) -> bool:
        return self.cameras is None or camera in self.cameras

    def visible(self, cameras: Sequence[str]) -> list[str]:
        return [c for c in cameras if self.sees(c)]


class LoginLimiter:
    """Failed logins per (client address, user name) in a sliding window; thread-safe.

    ``retry_after(key)`` is 0 while the key may try again, else the seconds until the oldest
    failure leaves the window. Keys are pruned when their window is empty, so memory is bounded
    by the failures of the last window.
    """

    def __init__(self, max_failures: int, window_s: float) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def _prune(self, key: tuple[str, str], now: float) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def retry_after(self, key: tuple[str, str], now: float | None = None) -> int:
        when = time.monotonic() if now is None else now
        with self._lock:
            times = self._prune(key, when)
            if times is None or len(times) < self.max_failures:
                return 0
            return max(1, math.ceil(times[0] + self.window_s - when))

    def failed(self, key: tuple[str, str], now: float | None = None) -> None:
        when = time.monotonic() if now is None else now
        with self._lock:
            self._prune(key, when)
            self._failures.setdefault(key, deque()).append(when)

    def succeeded(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._failures.pop(key, None)
