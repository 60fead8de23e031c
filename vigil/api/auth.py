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
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import ip_address, ip_network

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from vigil.errors import ConfigError
from vigil.store import Database, LoginAttemptRepo, Role, ThrottleKey, hash_token

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


class LoginThrottledError(Exception):
    """Too many failed logins for the account or the client address (answer 429)."""

    def __init__(self, retry_after: int, scope: str) -> None:
        super().__init__(f"too many failed logins; retry in {retry_after} s")
        self.retry_after = retry_after
        self.scope = scope


@dataclass(frozen=True, slots=True)
class LoginAttempt:
    """An attempt the throttle let through: its rows, until the outcome is known."""

    account: ThrottleKey
    ids: tuple[int, ...]
    #: Whether this attempt, if it fails, reaches the limit of its account or address.
    last: bool


class LoginThrottle:
    """Failed logins per account name and per client address, in the database.

    ``begin`` counts the attempt *before* the password is checked, in one transaction that
    holds a lock on the attempt's keys (``LoginAttemptRepo.lock``): of any number of
    concurrent guesses, at most the limit get checked and the rest are refused (429), in this
    process or any other on the same database. While an account or an address is locked out
    even the right password is refused. A success forgets the attempt and the account's
    failures; an attempt that was never checked (the hash gate was full) is forgotten too.
    Rows older than the window are purged at most once a window per process. IPv6 clients
    count per /64 (``address_key``).
    """

    def __init__(
        self, db: Database, *, account_max: int, address_max: int, window_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:  # fmt: skip
        self.db = db
        self.account_max = account_max
        self.address_max = address_max
        self.window_s = window_s
        self.clock = clock
        self._purged = -math.inf
        self._lock = threading.Lock()

    def begin(self, account: str, address: str | None) -> LoginAttempt:
        """Count an attempt on ``account`` from ``address``; ``LoginThrottledError`` when over."""
        now = self.clock()
        keys = [(ThrottleKey("account", account), self.account_max)]
        if address:
            keys.append((ThrottleKey("address", address_key(address)), self.address_max))
        with self.db.session(immediate=True) as session:
            repo = LoginAttemptRepo(session)
            repo.lock(k for k, _ in keys)
            waits: list[tuple[int, str]] = []
            last = False
            for key, most in keys:
                count, oldest = repo.window(key, now - self.window_s)
                if count >= most:
                    first = now if oldest is None else oldest
                    waits.append((max(1, math.ceil(first + self.window_s - now)), key.scope))
                last = last or count + 1 >= most
            if waits:
                wait, scope = max(waits)
                raise LoginThrottledError(wait, scope)
            ids = tuple(repo.record(key, now) for key, _ in keys)
        self._maybe_purge(now)
        return LoginAttempt(keys[0][0], ids, last)

    def succeeded(self, attempt: LoginAttempt) -> None:
        with self.db.session(immediate=True) as session:
            repo = LoginAttemptRepo(session)
            repo.forget(attempt.ids)
            repo.clear(attempt.account)

    def unchecked(self, attempt: LoginAttempt) -> None:
        """The password was not checked (server busy): the attempt does not count."""
        with self.db.session(immediate=True) as session:
            LoginAttemptRepo(session).forget(attempt.ids)

    def _maybe_purge(self, now: float) -> None:
        with self._lock:
            if now - self._purged < self.window_s:
                return
            self._purged = now
        with self.db.session(immediate=True) as session:
            LoginAttemptRepo(session).purge(now - self.window_s)


def address_key(address: str) -> str:
    """What the per-address limit counts: the address, or for IPv6 its /64, since one
    subscriber usually holds a whole /64 and could otherwise rotate through it."""
    try:
        parsed = ip_address(address)
    except ValueError:
        return address
    if parsed.version == 6:
        return str(ip_network(f"{parsed}/64", strict=False))
    return str(parsed)


class HashBusyError(Exception):
    """Every password-hashing slot is taken and the queue is full (answer 503)."""


class HashGate:
    """Bounds Argon2 work: at most ``slots`` hashes at once, ``queue`` more waiting.

    Each Argon2id hash holds 64 MiB for about a tenth of a second per core; unbounded, 40
    concurrent logins took 2.5 GiB and every worker thread, so even ``/api/health`` waited.
    A request beyond ``slots + queue``, or one that waited ``wait_s`` for a slot, gets
    ``HashBusyError`` at once instead of a thread. Thread-safe.
    """

    def __init__(self, slots: int, queue: int, wait_s: float) -> None:
        if slots < 1 or queue < 0:
            raise ConfigError(f"hash gate needs slots >= 1 and queue >= 0, got {slots}, {queue}")
        self.slots, self.queue, self.wait_s = slots, queue, wait_s
        self._semaphore = threading.BoundedSemaphore(slots)
        self._admitted = 0
        self._lock = threading.Lock()
        #: The most hashes that ran at once (for tests and metrics).
        self.peak = 0
        self._running = 0

    @property
    def admitted(self) -> int:
        """Callers now hashing or waiting for a slot."""
        with self._lock:
            return self._admitted

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold a hashing slot for the block; ``HashBusyError`` when none comes soon."""
        with self._lock:
            if self._admitted >= self.slots + self.queue:
                raise HashBusyError("too many password checks at once")
            self._admitted += 1
        try:
            if not self._semaphore.acquire(timeout=self.wait_s):
                raise HashBusyError("no password-check slot became free in time")
            try:
                with self._lock:
                    self._running += 1
                    self.peak = max(self.peak, self._running)
                yield
            finally:
                with self._lock:
                    self._running -= 1
                self._semaphore.release()
        finally:
            with self._lock:
                self._admitted -= 1


@dataclass(frozen=True, slots=True)
class _Verified:
    who: Principal
    user_id: int
    at: float  # monotonic time of the database lookup that found the credential valid
    expires: float | None  # the credential's own expiry (UNIX s)


class PrincipalCache:
    """Credentials the database found valid lately → who they were, for a database outage.

    While the database cannot be reached, every credential check would fail, and with it
    ``/metrics`` and ``/api/cameras``, exactly when operators need them. So ``principal_for``
    remembers each credential it verified (by its SHA-256, never the credential itself) and,
    for the few read-only routes of ``OUTAGE_READS`` only, answers from here when the lookup
    fails with a storage error: at most ``ttl_s`` seconds after that credential was last
    verified, never past its own expiry, never for a write, a login or any other route.

    Bounded (``max_entries``, least recently verified out first) and thread-safe. What this
    process revokes (logout, a revoked token, any change of a user) is forgotten at once; a
    revocation made elsewhere (``vigil user``, another replica) is seen at the next lookup
    that reaches the database, so only one made shortly before an outage can be missed, for
    at most ``ttl_s`` (see ``docs/architecture.md``, "Authentication during a database
    outage"). ``ttl_s`` 0 turns it off.
    """

    def __init__(self, ttl_s: float, max_entries: int = 1024,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:  # fmt: skip
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.clock, self.wall = clock, wall
        self._entries: OrderedDict[tuple[str, str], _Verified] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, digest: str, kind: str, who: Principal, expires: float | None) -> None:
        """The database just found the credential with SHA-256 ``digest`` valid for ``who``."""
        if self.ttl_s <= 0:
            return
        key = (digest, kind)
        with self._lock:
            self._entries[key] = _Verified(who, who.user_id, self.clock(), expires)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def recall(self, digest: str, kind: str) -> Principal | None:
        """Who the credential was, when it was verified at most ``ttl_s`` ago and has not
        expired; else None (and a stale entry is dropped)."""
        key = (digest, kind)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            fresh = self.clock() - entry.at <= self.ttl_s
            if not fresh or (entry.expires is not None and entry.expires <= self.wall()):
                del self._entries[key]
                return None
            return entry.who

    def forget(self, digest: str) -> None:
        """The credential was revoked or found invalid."""
        with self._lock:
            for key in [k for k in self._entries if k[0] == digest]:
                del self._entries[key]

    def forget_user(self, user_id: int) -> None:
        """The user changed (role, scope, state, password): forget all their credentials."""
        with self._lock:
            for key in [k for k, v in self._entries.items() if v.user_id == user_id]:
                del self._entries[key]

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
