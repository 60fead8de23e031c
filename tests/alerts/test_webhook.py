"""Webhooks against a real HTTP server: signatures, retries, Retry-After, dead letters, replay."""

from __future__ import annotations

import json
import random
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from alert_servers import Receiver, free_port
from pydantic import ValidationError

from vigil.alerts import FanoutSink, WebhookSink, replay_dead_letters
from vigil.alerts.webhook import Outcome, parse_retry_after, retry_delay, sign, verify_signature
from vigil.config.alerts import WebhookConfig
from vigil.errors import VigilError
from vigil.events.sinks import event_to_dict
from vigil.types import Event, EventState

SECRET = "s3cret-s3cret-s3cret"


def event(n: int = 1, state: EventState = EventState.END) -> Event:
    return Event(
        id=f"cam-{n}",
        camera_id="cam",
        label="person",
        class_id=0,
        track_id=n,
        start=1.0,
        end=2.5,
        state=state,
        zones=["door"],
        counts={"door:enter": 1},
    )


def config(urls: list[str], tmp_path: Path, **over: Any) -> WebhookConfig:
    values: dict[str, Any] = {
        "urls": urls,
        "secret": SECRET,
        "backoff_initial_s": 0.01,
        "backoff_max_s": 0.05,
        "max_attempts": 3,
        "timeout_s": 2.0,
        "dead_letter_path": tmp_path / "dead.jsonl",
    }
    values.update(over)
    return WebhookConfig(**values)


def dead_letters(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "dead.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_signed_post_of_the_event(receiver: Receiver, tmp_path: Path) -> None:
    with WebhookSink(config([receiver.url], tmp_path)) as sink:
        sink.publish(event(1, EventState.START))  # not sent: END only by default
        sink.publish(event(2))
    (req,) = receiver.requests
    assert json.loads(req.body) == event_to_dict(event(2))
    assert req.headers["X-Vigil-Event"] == "cam-2"
    assert req.headers["Content-Type"] == "application/json"
    stamp = req.headers["X-Vigil-Timestamp"]
    assert abs(int(stamp) - time.time()) < 30
    assert verify_signature(SECRET, stamp, req.body, req.headers["X-Vigil-Signature"])
    assert not verify_signature(
        "another-secret-1234", stamp, req.body, req.headers["X-Vigil-Signature"]
    )
    assert sink.stats.delivered == 1
    assert dead_letters(tmp_path) == []


def test_states_configurable_and_every_url(receiver: Receiver, tmp_path: Path) -> None:
    urls = [receiver.url, receiver.url.replace("127.0.0.1", "localhost")]
    cfg = config(urls, tmp_path, states=["start", "end"])
    with WebhookSink(cfg) as sink:
        sink.publish(event(1, EventState.START))
        sink.publish(event(1, EventState.UPDATE))
        sink.publish(event(1, EventState.END))
    assert sorted(p["state"] for p in receiver.payloads()) == ["end", "end", "start", "start"]


def test_retry_on_500_then_success(receiver: Receiver, tmp_path: Path) -> None:
    receiver.script.extend([(500, {}), (502, {})])
    with WebhookSink(config([receiver.url], tmp_path)) as sink:
        sink.publish(event())
    assert len(receiver.requests) == 3
    assert {r.body for r in receiver.requests} == {receiver.requests[0].body}
    assert (sink.stats.delivered, sink.stats.retries, sink.stats.dead_letters) == (1, 2, 0)


def test_429_retry_after_is_honoured(receiver: Receiver, tmp_path: Path) -> None:
    receiver.script.append((429, {"Retry-After": "1"}))
    with WebhookSink(config([receiver.url], tmp_path)) as sink:
        sink.publish(event())
    first, second = receiver.requests
    # The backoff alone would retry after ~0.01 s; the server asked for 1 s.
    assert second.time - first.time >= 0.9
    assert sink.stats.delivered == 1


def test_retry_after_is_capped(receiver: Receiver, tmp_path: Path) -> None:
    receiver.script.append((503, {"Retry-After": "3600"}))
    with WebhookSink(config([receiver.url], tmp_path, retry_after_max_s=0.1)) as sink:
        sink.publish(event())
    assert len(receiver.requests) == 2


@pytest.mark.parametrize("status", [400, 401, 404, 410, 301])
def test_other_4xx_and_redirects_not_retried(
    receiver: Receiver, tmp_path: Path, status: int
) -> None:
    receiver.script.append((status, {"Location": "http://elsewhere/"}))
    with WebhookSink(config([receiver.url], tmp_path)) as sink:
        sink.publish(event())
    assert len(receiver.requests) == 1
    (letter,) = dead_letters(tmp_path)
    assert letter["attempts"] == 1
    assert letter["last_error"] == f"HTTP {status} (not retried)"


def test_dead_letter_after_max_attempts_then_replay(receiver: Receiver, tmp_path: Path) -> None:
    receiver.script.extend([(503, {})] * 3)
    cfg = config([receiver.url], tmp_path)
    with WebhookSink(cfg) as sink:
        sink.publish(event(7))
    assert len(receiver.requests) == 3
    (letter,) = dead_letters(tmp_path)
    assert letter["url"] == receiver.url
    assert letter["event_id"] == "cam-7"
    assert letter["attempts"] == 3
    assert letter["last_error"] == "HTTP 503"
    assert letter["payload"] == event_to_dict(event(7))

    result = replay_dead_letters(tmp_path / "dead.jsonl", cfg)  # the receiver is healthy now
    assert (result.sent, result.failed) == (1, 0)
    replayed = receiver.requests[-1]
    assert json.loads(replayed.body) == event_to_dict(event(7))
    assert verify_signature(
        SECRET,
        replayed.headers["X-Vigil-Timestamp"],
        replayed.body,
        replayed.headers["X-Vigil-Signature"],
    )
    assert dead_letters(tmp_path) == []
    assert not (tmp_path / "dead.jsonl.replaying").exists()


def test_receiver_down_retries_then_dead_letter(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
    with WebhookSink(config([url], tmp_path)) as sink:
        sink.publish(event())
    (letter,) = dead_letters(tmp_path)
    assert letter["attempts"] == 3
    assert "ConnectionRefused" in letter["last_error"]
    assert sink.stats.retries == 2

    failed_again = replay_dead_letters(tmp_path / "dead.jsonl", config([url], tmp_path))
    assert (failed_again.sent, failed_again.failed) == (0, 1)
    (letter,) = dead_letters(tmp_path)  # back in the log for the next replay
    assert letter["event_id"] == "cam-1"


def test_replay_keeps_unreadable_lines(receiver: Receiver, tmp_path: Path) -> None:
    path = tmp_path / "dead.jsonl"
    good = {
        "url": receiver.url,
        "event_id": "e",
        "attempts": 1,
        "last_error": "x",
        "payload": {"id": "e"},
    }
    path.write_text("not json\n" + json.dumps(good) + "\n")
    result = replay_dead_letters(path, config([receiver.url], tmp_path))
    assert (result.sent, result.failed) == (1, 1)
    assert path.read_text() == "not json\n"


def test_publish_never_waits_and_queue_is_bounded(tmp_path: Path) -> None:
    release = threading.Event()
    calls: list[str] = []

    def slow_post(
        url: str, body: bytes, event_id: str, secret: str | bytes, timeout: float
    ) -> Outcome:
        calls.append(event_id)
        release.wait(5)
        return Outcome(ok=True)

    sink = WebhookSink(config(["http://example.invalid/"], tmp_path, queue_size=2), post=slow_post)
    sink.publish(event(1))
    while not calls:  # the worker is now stuck on event 1
        time.sleep(0.01)
    started = time.monotonic()
    for n in range(2, 7):
        sink.publish(event(n))
    assert time.monotonic() - started < 0.5
    assert (sink.stats.queued, sink.stats.dropped) == (2, 3)
    assert [d["event_id"] for d in dead_letters(tmp_path)] == ["cam-2", "cam-3", "cam-4"]
    release.set()
    sink.close()
    assert calls == ["cam-1", "cam-5", "cam-6"]
    with pytest.raises(VigilError, match="closed"):
        sink.publish(event(9))


def test_settled_counts_what_was_delivered_or_dead_lettered(tmp_path: Path) -> None:
    """``handed``/``settled``: a delivery waiting, in flight or between retries is not
    settled (a cluster head does not acknowledge its camera's outbox item); delivered, or
    dead-lettered (replayable), it is."""
    release = threading.Event()
    calls: list[str] = []

    def post(url: str, body: bytes, event_id: str, secret: str | bytes, timeout: float) -> Outcome:
        calls.append(event_id)
        if event_id == "cam-1":
            release.wait(10)
            return Outcome(ok=True)
        return Outcome(ok=False, retry=False, error="410 gone")

    sink = WebhookSink(config(["http://example.invalid/"], tmp_path), post=post)
    try:
        sink.publish(event(1))
        sink.publish(event(2))
        while not calls:  # the worker is on event 1
            time.sleep(0.01)
        assert (sink.handed(), sink.settled()) == (2, 0)
        release.set()
        deadline = time.monotonic() + 10
        while sink.settled() < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sink.settled() == 2, "one delivered, one dead-lettered"
        assert [d["event_id"] for d in dead_letters(tmp_path)] == ["cam-2"]
    finally:
        release.set()
        sink.close()


def test_close_dead_letters_what_is_left(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/hook"
    cfg = config([url], tmp_path, backoff_initial_s=60, backoff_max_s=60, close_timeout_s=0.2)
    sink = WebhookSink(cfg)
    sink.publish(event())
    started = time.monotonic()
    sink.close()
    assert time.monotonic() - started < 3
    (letter,) = dead_letters(tmp_path)
    assert letter["attempts"] == 1
    assert "not delivered before shutdown" in letter["last_error"]


NOW = 1_700_000_000.0
BODY = b'{"id":"cam-1"}'
GOOD = sign(SECRET, int(NOW), BODY)


@pytest.mark.parametrize(
    ("secret", "stamp", "body", "header", "expected"),
    [
        (SECRET, str(int(NOW)), BODY, GOOD, True),
        (SECRET, str(int(NOW) - 299), BODY, sign(SECRET, int(NOW) - 299, BODY), True),
        (SECRET, str(int(NOW) - 301), BODY, sign(SECRET, int(NOW) - 301, BODY), False),  # replay
        (SECRET, str(int(NOW) + 301), BODY, sign(SECRET, int(NOW) + 301, BODY), False),
        (SECRET, str(int(NOW) + 1), BODY, GOOD, False),  # timestamp swapped under the signature
        (SECRET, str(int(NOW)), BODY + b" ", GOOD, False),  # body changed
        ("wrong-secret-wrong", str(int(NOW)), BODY, GOOD, False),
        (SECRET, str(int(NOW)), BODY, GOOD.removeprefix("sha256="), False),
        (SECRET, "yesterday", BODY, GOOD, False),
        (SECRET.encode(), int(NOW), BODY, GOOD, True),
    ],
)
def test_verify_signature(
    secret: str | bytes, stamp: str | int, body: bytes, header: str, expected: bool
) -> None:
    assert verify_signature(secret, stamp, body, header, 300, now=NOW) is expected


def test_signature_is_hmac_of_timestamp_dot_body() -> None:
    import hashlib
    import hmac

    expected = hmac.new(SECRET.encode(), b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, 1_700_000_000, BODY) == f"sha256={expected}"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("7", 7.0),
        ("soon", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # in the past
        ("Tue, 14 Nov 2023 22:13:40 GMT", 20.0),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected


def test_retry_delays_grow_to_the_cap(tmp_path: Path) -> None:
    cfg = config(
        ["http://h/x"], tmp_path, backoff_initial_s=1, backoff_factor=3, backoff_max_s=20, jitter=0
    )
    rng = random.Random(1)
    assert [retry_delay(cfg, n, rng) for n in range(1, 6)] == [1, 3, 9, 20, 20]
    assert retry_delay(cfg, 10_000, rng) == 20  # no overflow for huge attempt counts


def test_retry_delays_are_spread_within_the_jitter(tmp_path: Path) -> None:
    cfg = config(["http://h/x"], tmp_path, backoff_initial_s=1, backoff_max_s=300, jitter=0.2)
    rng = random.Random(7)
    for attempt in range(1, 10):
        delays = {retry_delay(cfg, attempt, rng) for _ in range(20)}
        base = 2.0 ** (attempt - 1)
        assert all(0.8 * base <= d <= 1.2 * base for d in delays)
        assert len(delays) > 10, "each delivery draws its own spread"


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"secret": "short"}, "shorter than 16"),
        ({"urls": ["ftp://host/x"]}, "not an http"),
        ({"urls": []}, "at least 1"),
        ({"backoff_initial_s": 5, "backoff_max_s": 1}, "backoff_max_s"),
        ({"retries": 3}, "Extra inputs"),
    ],
)
def test_config_errors(over: dict[str, Any], message: str) -> None:
    values: dict[str, Any] = {"urls": ["http://h/x"], "secret": SECRET, **over}
    with pytest.raises(ValidationError, match=message):
        WebhookConfig(**values)


def test_secret_not_in_repr() -> None:
    assert SECRET not in repr(WebhookConfig(urls=["http://h/x"], secret=SECRET))


class Recording:
    def __init__(self) -> None:
        self.events: list[str] = []
        self.closed = False

    def publish(self, event: Event) -> None:
        self.events.append(event.id)

    def close(self) -> None:
        self.closed = True


class Broken:
    def publish(self, event: Event) -> None:
        raise ConnectionError("down")

    def close(self) -> None:
        raise OSError("cannot close")


def test_fanout_isolates_failures(caplog: pytest.LogCaptureFixture) -> None:
    before, after = Recording(), Recording()
    fan = FanoutSink([before, Broken(), after])
    fan.publish(event(1))
    fan.publish(event(2))
    fan.close()
    assert before.events == after.events == ["cam-1", "cam-2"]
    assert before.closed
    assert after.closed
    assert fan.failures == [0, 3, 0]
    assert "event sink 1 (Broken) failed on event cam-1" in caplog.text
