"""Webhooks: each event as a signed JSON POST, delivered in the background, retried, dead-lettered.

Request (one per event and URL)::

    POST <url>
    Content-Type: application/json
    X-Vigil-Event: <event id>
    X-Vigil-Timestamp: <UNIX seconds of this attempt, an integer>
    X-Vigil-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + raw body)>

    <the event as `vigil.events.sinks.event_to_dict` writes it, compact JSON, UTF-8>

The signature covers the timestamp *and* the body, so a captured request cannot be replayed
later with a fresh timestamp: receivers recompute the HMAC over ``timestamp + "." + body`` and
refuse requests whose timestamp is further than a few minutes from their clock
(`verify_signature` does both, in constant time). Each attempt is signed anew, so a retry an
hour later still verifies.

Delivery: `WebhookSink.publish` only enqueues (it never blocks on the network); one worker
thread sends. Connection errors, timeouts, 5xx and 429 are retried with exponential backoff and
jitter, or after the server's ``Retry-After`` (seconds or an HTTP date, capped); other answers
(4xx, and 3xx, whose redirects are not followed) are final, since sending the same request again
cannot change them. A delivery that failed for good goes to the **dead-letter log**, a JSON Lines
file with one object per delivery::

    {"url": ..., "event_id": ..., "attempts": 6, "last_error": "HTTP 503", "failed_at": ISO-8601,
     "payload": {the event}}

`replay_dead_letters` sends them again (after the receiver is fixed). Pixels never appear in a
webhook: the payload is the event record only.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import http.client
import itertools
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from vigil.config.alerts import WebhookConfig
from vigil.errors import StorageError, VigilError
from vigil.events.sinks import event_to_dict
from vigil.ingest.backoff import Backoff
from vigil.types import Event

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Vigil-Signature"
TIMESTAMP_HEADER = "X-Vigil-Timestamp"
EVENT_HEADER = "X-Vigil-Event"

#: How much of a response body is read (for the error message); the rest is discarded.
_MAX_RESPONSE_READ = 4096


# --------------------------------------------------------------------------- signatures


def _key(secret: str | bytes) -> bytes:
    return secret.encode("utf-8") if isinstance(secret, str) else secret


def sign(secret: str | bytes, timestamp: int, body: bytes) -> str:
    """The ``X-Vigil-Signature`` value: ``sha256=`` + hex HMAC-SHA256 of ``"<ts>." + body``."""
    mac = hmac.new(_key(secret), f"{int(timestamp)}.".encode("ascii") + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(
    secret: str | bytes,
    timestamp: str | int,
    body: bytes,
    header: str,
    tolerance_s: float = 300.0,
    *,
    now: float | None = None,
) -> bool:
    """Whether a received webhook is authentic and fresh (for receivers of Vigil's webhooks).

    ``timestamp`` is the ``X-Vigil-Timestamp`` header, ``body`` the raw request body (bytes as
    received, before any JSON parsing), ``header`` the ``X-Vigil-Signature`` header. False when
    the timestamp is not an integer, is more than ``tolerance_s`` seconds from ``now`` (default:
    this machine's clock) in either direction, or the signature does not match. The comparison
    is constant-time so the signature cannot be guessed byte by byte from response times.
    """
    try:
        stamp = int(str(timestamp).strip())
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - stamp) > tolerance_s:
        return False
    expected = sign(secret, stamp, body)
    return hmac.compare_digest(expected.encode("ascii"), header.strip().encode("utf-8"))


# --------------------------------------------------------------------------- one attempt


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one HTTP attempt gave: success, or an error and whether retrying can help."""

    ok: bool
    retry: bool = False
    error: str = ""
    retry_after: float | None = None


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or an HTTP date); None if
    absent or unreadable. Dates in the past give 0."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def post_once(
    url: str, body: bytes, event_id: str, secret: str | bytes, timeout_s: float
) -> Outcome:
    """POST ``body`` to ``url`` once, signed; classify the answer (never raises on I/O errors).

    No redirect is followed: a redirected POST would become a GET without the body in most
    clients, and a webhook URL should name its final endpoint.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    https = parts.scheme == "https"
    conn_cls = http.client.HTTPSConnection if https else http.client.HTTPConnection
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    stamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "vigil-webhook/1",
        EVENT_HEADER: event_id,
        TIMESTAMP_HEADER: str(stamp),
        SIGNATURE_HEADER: sign(secret, stamp, body),
    }
    conn = conn_cls(host, parts.port, timeout=timeout_s)
    try:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        status = response.status
        retry_after = response.getheader("Retry-After")
        response.read(_MAX_RESPONSE_READ)
    except (OSError, http.client.HTTPException) as exc:
        # Refused, reset, timed out, DNS, TLS: the receiver may be back later.
        return Outcome(ok=False, retry=True, error=f"{type(exc).__name__}: {exc}")
    finally:
        conn.close()
    if 200 <= status < 300:
        return Outcome(ok=True)
    if status == 429 or status >= 500:
        return Outcome(
            ok=False,
            retry=True,
            error=f"HTTP {status}",
            retry_after=parse_retry_after(retry_after),
        )
    return Outcome(ok=False, retry=False, error=f"HTTP {status} (not retried)")


def retry_delay(config: WebhookConfig, attempt: int, rng: random.Random) -> float:
    """Seconds before retry ``attempt`` (1 = first retry): ``initial * factor**(attempt-1)``,
    spread by ±``jitter`` so many deliveries failing together do not retry in one burst, and
    capped at ``backoff_max_s``."""
    backoff = Backoff(config.backoff_initial_s, config.backoff_factor, config.backoff_max_s,
                      config.jitter, rng=rng)  # fmt: skip
    return backoff.delay(max(attempt - 1, 0))


def _wait_for(config: WebhookConfig, outcome: Outcome, attempts: int, rng: random.Random) -> float:
    if outcome.retry_after is not None:
        return min(outcome.retry_after, config.retry_after_max_s)
    return retry_delay(config, attempts, rng)


# --------------------------------------------------------------------------- dead letters


@dataclass(slots=True)
class Delivery:
    """One event body to one URL, with its attempt count and last error."""

    url: str
    event_id: str
    body: bytes
    attempts: int = 0
    last_error: str = ""
    #: Its place among the deliveries a sink was handed (``WebhookSink.settled``).
    ordinal: int = 0


class DeadLetterLog:
    """Appends failed deliveries to a JSON Lines file (thread-safe; one line per delivery).

    With no path, failures are only logged: the operator chose not to keep them.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self.count = 0

    def write(self, delivery: Delivery) -> None:
        with self._lock:
            self.count += 1
        log.error(
            "webhook delivery of event %s to %s failed for good after %d attempt(s): %s",
            delivery.event_id,
            delivery.url,
            delivery.attempts,
            delivery.last_error,
        )
        if self.path is None:
            return
        try:
            payload: Any = json.loads(delivery.body)
        except ValueError:
            payload = delivery.body.decode("utf-8", "replace")
        record = {
            "url": delivery.url,
            "event_id": delivery.event_id,
            "attempts": delivery.attempts,
            "last_error": delivery.last_error,
            "failed_at": datetime.now(tz=UTC).isoformat(timespec="milliseconds"),
            "payload": payload,
        }
        line = json.dumps(record, separators=(",", ":")) + "\n"
        with self._lock:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a", encoding="utf-8") as file:
                    file.write(line)
            except OSError as exc:
                raise StorageError(
                    f"cannot write webhook dead-letter log {self.path}: "
                    f"{exc.strerror or exc}; check free space and permissions"
                ) from exc


def _body_of(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode("utf-8")


# --------------------------------------------------------------------------- the sink


@dataclass(slots=True)
class WebhookStats:
    """Counters since the sink started."""

    delivered: int = 0
    retries: int = 0
    dead_letters: int = 0
    dropped: int = 0
    queued: int = 0


@dataclass(order=True, slots=True)
class _Scheduled:
    due: float
    seq: int
    delivery: Delivery = field(compare=False)


class WebhookSink:
    """An `EventSink` that POSTs events to every configured URL from a background thread.

    ``publish`` enqueues one delivery per URL for events whose state is in ``config.states`` and
    returns at once. The queue holds at most ``config.queue_size`` deliveries (waiting or
    between retries); beyond that the oldest is dropped, counted in ``stats.dropped`` and
    written to the dead-letter log, so it can still be replayed. Retries are scheduled by due
    time, so one slow receiver in backoff does not hold back deliveries to the others.

    ``close`` stops accepting events, keeps delivering for up to ``config.close_timeout_s``,
    then dead-letters what is left, so a shutdown never silently loses a delivery.
    """

    def __init__(
        self,
        config: WebhookConfig,
        *,
        rng: random.Random | None = None,
        post: Callable[[str, bytes, str, str | bytes, float], Outcome] = post_once,
    ) -> None:
        self.config = config
        self._secret = config.secret.get_secret_value()
        self._states = frozenset(config.states)
        self._rng = rng or random.Random()
        self._post = post
        self._dead = DeadLetterLog(config.dead_letter_path)
        self._heap: list[_Scheduled] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._closing = False
        self._deadline = float("inf")
        self._stats = WebhookStats()
        #: Deliveries handed so far, and the ordinals of those not yet settled (delivered or
        #: dead-lettered): ``handed``/``settled``, ``vigil.alerts.fanout.Settling``.
        self._handed = 0
        self._open: set[int] = set()
        self._thread = threading.Thread(target=self._run, name="vigil-webhook", daemon=True)
        self._thread.start()

    @property
    def stats(self) -> WebhookStats:
        """A copy of the counters (``queued`` is the current queue length)."""
        with self._cond:
            s = self._stats
            dead, queued = self._dead.count, len(self._heap)
            return WebhookStats(s.delivered, s.retries, dead, s.dropped, queued)

    def publish(self, event: Event) -> None:
        """Queue the event for every URL (if its state is configured); never waits on I/O."""
        if event.state not in self._states:
            return
        body = _body_of(event_to_dict(event))
        self.enqueue(Delivery(url, event.id, body) for url in self.config.urls)

    def enqueue(self, deliveries: Iterable[Delivery]) -> None:
        """Queue prepared deliveries (``publish`` and replays use this)."""
        dropped: list[Delivery] = []
        with self._cond:
            if self._closing:
                raise VigilError("webhook sink is closed; publish events before close()")
            now = time.monotonic()
            for delivery in deliveries:
                self._handed += 1
                delivery.ordinal = self._handed
                self._open.add(delivery.ordinal)
                heapq.heappush(self._heap, _Scheduled(now, next(self._seq), delivery))
                if len(self._heap) > self.config.queue_size:
                    dropped.append(self._drop_oldest())
            self._cond.notify()
        for delivery in dropped:
            delivery.last_error = "dropped: webhook queue full (receivers too slow or down)"
            self._dead_letter(delivery)

    def handed(self) -> int:
        """Deliveries handed to this sink so far (one per URL and event)."""
        with self._cond:
            return self._handed

    def settled(self) -> int:
        """How many of the first deliveries handed are settled: delivered, or written to the
        dead-letter log (from where they can be replayed). One waiting or being retried stops
        the count."""
        with self._cond:
            return min(self._open) - 1 if self._open else self._handed

    def _settle(self, delivery: Delivery) -> None:
        with self._cond:
            self._open.discard(delivery.ordinal)

    def _dead_letter(self, delivery: Delivery) -> None:
        try:
            self._dead.write(delivery)
        finally:
            self._settle(delivery)

    def _drop_oldest(self) -> Delivery:
        # The oldest by arrival (smallest seq), not the soonest due: it has waited longest.
        index = min(range(len(self._heap)), key=lambda i: self._heap[i].seq)
        oldest = self._heap[index]
        self._heap[index] = self._heap[-1]
        self._heap.pop()
        heapq.heapify(self._heap)
        self._stats.dropped += 1
        return oldest.delivery

    def _next_due(self) -> _Scheduled | None:
        """Block until a delivery is due (returned, popped) or the sink is done (None)."""
        with self._cond:
            while True:
                now = time.monotonic()
                if self._closing and (now >= self._deadline or not self._heap):
                    return None
                if self._heap and self._heap[0].due <= now:
                    return heapq.heappop(self._heap)
                wake = self._heap[0].due if self._heap else float("inf")
                wait = min(wake, self._deadline) - now
                self._cond.wait(None if wait == float("inf") else max(wait, 0.0))

    def _run(self) -> None:
        while (item := self._next_due()) is not None:
            self._attempt(item.delivery)

    def _attempt(self, delivery: Delivery) -> None:
        outcome = self._post(
            delivery.url, delivery.body, delivery.event_id, self._secret, self.config.timeout_s
        )
        delivery.attempts += 1
        if outcome.ok:
            with self._cond:
                self._stats.delivered += 1
                self._open.discard(delivery.ordinal)
            return
        delivery.last_error = outcome.error
        if not outcome.retry or delivery.attempts >= self.config.max_attempts:
            self._dead_letter(delivery)
            return
        delay = _wait_for(self.config, outcome, delivery.attempts, self._rng)
        log.warning(
            "webhook to %s failed (%s), attempt %d of %d; retrying in %.1f s",
            delivery.url,
            outcome.error,
            delivery.attempts,
            self.config.max_attempts,
            delay,
        )
        with self._cond:
            self._stats.retries += 1
            due = time.monotonic() + delay
            heapq.heappush(self._heap, _Scheduled(due, next(self._seq), delivery))
            self._cond.notify()

    def close(self) -> None:
        """Deliver for up to ``close_timeout_s``, then dead-letter the rest; idempotent."""
        with self._cond:
            if not self._closing:
                self._closing = True
                self._deadline = time.monotonic() + self.config.close_timeout_s
            self._cond.notify_all()
        # An attempt in flight may take up to the request timeout beyond the deadline.
        self._thread.join(self.config.close_timeout_s + self.config.timeout_s + 1.0)
        with self._cond:
            left = [item.delivery for item in sorted(self._heap)]
            self._heap.clear()
        for delivery in left:
            delivery.last_error = f"{delivery.last_error}; not delivered before shutdown".lstrip(
                "; "
            )
            self._dead_letter(delivery)

    def __enter__(self) -> WebhookSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- replay


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """How a replay went: deliveries sent, and those written back as dead letters again."""

    sent: int
    failed: int


def replay_dead_letters(
    path: str | Path,
    config: WebhookConfig,
    *,
    rng: random.Random | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> ReplayResult:
    """Send every delivery of the dead-letter file ``path`` again, in order, synchronously.

    Each goes to its recorded URL with the retry policy of ``config`` (and its secret: rotate
    the secret and the receivers' key together). The file is first renamed to
    ``<path>.replaying`` so a sink still running can keep appending new dead letters to
    ``path``; deliveries that fail again (and unreadable lines, kept verbatim) are appended to
    ``path``; the renamed file is removed at the end. A replay interrupted half-way leaves the
    ``.replaying`` file, which the next replay sends first.
    """
    source = Path(path)
    pending = source.with_name(source.name + ".replaying")
    if source.exists():
        if pending.exists():
            # An interrupted replay left work: keep it, and queue the newer letters behind it.
            with pending.open("a", encoding="utf-8") as out:
                out.write(source.read_text(encoding="utf-8"))
            source.unlink()
        else:
            source.rename(pending)
    if not pending.exists():
        return ReplayResult(0, 0)
    random_source = rng or random.Random()
    dead = DeadLetterLog(source)
    secret = config.secret.get_secret_value()
    sent = failed = 0
    for line in pending.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        delivery = _delivery_from_line(line)
        if delivery is None:
            failed += 1
            with source.open("a", encoding="utf-8") as out:
                out.write(line + "\n")
            continue
        if _deliver_now(delivery, config, secret, random_source, sleep):
            sent += 1
        else:
            failed += 1
            dead.write(delivery)
    pending.unlink()
    return ReplayResult(sent, failed)


def _delivery_from_line(line: str) -> Delivery | None:
    try:
        record = json.loads(line)
        return Delivery(str(record["url"]), str(record["event_id"]), _body_of(record["payload"]))
    except (ValueError, KeyError, TypeError):
        log.error("unreadable webhook dead letter kept as it is: %.200s", line)
        return None


def _deliver_now(
    delivery: Delivery,
    config: WebhookConfig,
    secret: str,
    rng: random.Random,
    sleep: Callable[[float], None],
) -> bool:
    """Attempt up to ``max_attempts`` times, sleeping between; True once delivered."""
    while True:
        outcome = post_once(
            delivery.url, delivery.body, delivery.event_id, secret, config.timeout_s
        )
        delivery.attempts += 1
        if outcome.ok:
            return True
        delivery.last_error = outcome.error
        if not outcome.retry or delivery.attempts >= config.max_attempts:
            return False
        sleep(_wait_for(config, outcome, delivery.attempts, rng))
