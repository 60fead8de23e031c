"""The unauthenticated edge under attack: the login throttle (atomic, per account and per
address, shared through the database), forwarded addresses only from trusted proxies, the
bound on password hashing, cheap refusals, the request body limit, and what gets audited."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import PASSWORD, Api, build_api
from tests.store.conftest import BACKENDS, PgServer, new_pg_database
from vigil.api import routes
from vigil.api.auth import HashBusyError, HashGate, address_key
from vigil.api.settings import networks
from vigil.store import AuditRepo, AuditRow, Database, Role

MakeApi = Callable[..., Api]


@pytest.fixture(params=BACKENDS)
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated database (SQLite file or PostgreSQL) that several app instances may share."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'shared.db'}"
        db = Database(url)
        db.migrate()
        db.close()
        return url
    server: PgServer = request.getfixturevalue("pg_server")
    return new_pg_database(server)


@pytest.fixture
def make_api(shared_url: str, tmp_path: Path) -> Iterator[MakeApi]:
    """Builds app instances on ``shared_url``, each with its own engine (as another process or
    replica would have); everything is closed afterwards."""
    built: list[Api] = []

    def make(**settings: object) -> Api:
        db = Database(shared_url)
        api = build_api(db, tmp_path / f"data{len(built)}", _no_redactor, **settings)
        built.append(api)
        return api

    yield make
    for api in built:
        api.close()  # its clients and its job workers (they poll the shared database)
        api.db.close()


def _no_redactor(_size: tuple[int, int]) -> Any:
    raise AssertionError("no media in these tests")


def _login(client: TestClient, name: str, password: str, **headers: str) -> httpx.Response:
    return client.post("/api/login", json={"name": name, "password": password}, headers=headers)


def _at_once(count: int, work: Callable[[int], int]) -> Counter[int]:
    """Run ``work(i)`` in ``count`` threads released together; the statuses they returned."""
    barrier = threading.Barrier(count)
    statuses: list[int] = []
    lock = threading.Lock()

    def run(i: int) -> None:
        barrier.wait()
        status = work(i)
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert len(statuses) == count, "a login thread did not finish"
    return Counter(statuses)


def _audit(api: Api, action: str) -> list[AuditRow]:
    with api.db.session() as session:
        return AuditRepo(session).records(action=action)


# -- the throttle -------------------------------------------------------------------------------


def test_concurrent_wrong_guesses_check_at_most_the_limit(make_api: MakeApi) -> None:
    """30 guesses at once: only the limit (5) get their password checked, the rest 429. The
    old in-memory limiter checked before it recorded, so every one of them was checked."""
    api = make_api(hash_queue=40, hash_wait_s=300.0)
    api.add_user("ann", Role.VIEWER)

    def guess(i: int) -> int:
        with TestClient(api.app) as client:
            return _login(client, "ann", f"wrong guess {i}").status_code

    statuses = _at_once(30, guess)
    assert statuses == Counter({401: 5, 429: 25})
    # Locked out: the right password is refused as well.
    locked = _login(api.client(), "ann", PASSWORD)
    assert locked.status_code == 429
    assert int(locked.headers["Retry-After"]) >= 1
    assert len(_audit(api, "login.failure")) == 5


def test_throttle_is_shared_by_two_app_instances(make_api: MakeApi) -> None:
    first = make_api(login_max_failures_per_address=8)
    second = make_api(login_max_failures_per_address=8)
    first.add_user("ann", Role.VIEWER)
    for _ in range(5):
        assert _login(first.client(), "ann", "wrong wrong").status_code == 401
    assert _login(second.client(), "ann", PASSWORD).status_code == 429  # the account
    # The address limit: different names from one address, spread over both instances.
    for i in range(3):
        assert _login(first.client(), f"nobody{i}", "wrong wrong").status_code == 401
    assert _login(second.client(), "other", "wrong wrong").status_code == 429  # 5 + 3 = 8
    reply = _login(second.client(), "other", "wrong wrong")
    assert "too many failed logins" in reply.json()["error"]["message"]


def test_success_clears_the_account_but_failures_are_audited(make_api: MakeApi) -> None:
    api = make_api()
    api.add_user("ann", Role.VIEWER)
    client = api.client()
    for _ in range(4):
        assert _login(client, "ann", "wrong wrong").status_code == 401
    assert _login(client, "ghost", "wrong wrong").status_code == 401
    assert _login(client, "ann", PASSWORD).status_code == 200
    for _ in range(4):  # the success reset ann's count: four more are allowed
        assert _login(client, "ann", "wrong wrong").status_code == 401
    records = _audit(api, "login.failure")
    assert [(r.actor, r.target, r.details["why"]) for r in records[:5]] == [
        *[("anonymous", "ann", "wrong password")] * 4,
        ("anonymous", "ghost", "unknown user"),
    ]
    assert [r.details["locked_out"] for r in records[:4]] == [False, False, False, False]
    assert _login(client, "ann", "wrong wrong").status_code == 401  # the 5th locks ann out
    assert _audit(api, "login.failure")[-1].details["locked_out"] is True
    assert {r.source for r in records} == {"testclient"}


# -- forwarded addresses ----------------------------------------------------------------------


def test_forged_forwarded_for_is_ignored_by_default(make_api: MakeApi) -> None:
    api = make_api()
    api.add_user("ann", Role.VIEWER)
    client = api.client()
    for i in range(5):
        forged = {"X-Forwarded-For": f"198.51.100.{i}"}
        assert _login(client, "ann", "wrong wrong", **forged).status_code == 401
    fresh = {"X-Forwarded-For": "198.51.100.99"}
    assert _login(client, "ann", PASSWORD, **fresh).status_code == 429
    assert {r.source for r in _audit(api, "login.failure")} == {"testclient"}


def test_forwarded_for_is_believed_from_a_trusted_proxy(make_api: MakeApi) -> None:
    api = make_api(trusted_proxies=networks(["10.0.0.0/8", "::1"]),
                   login_max_failures_per_address=2)  # fmt: skip
    api.add_user("ann", Role.VIEWER)
    proxy = api.client(client=("10.1.2.3", 4000))
    # The client's own entry (left) is ignored; the proxy appended the address it saw.
    hops = {"X-Forwarded-For": "6.6.6.6, 203.0.113.7"}
    assert _login(proxy, "a", "wrong wrong", **hops).status_code == 401
    # Another trusted proxy in the chain is skipped.
    chain = {"X-Forwarded-For": "203.0.113.7, 10.9.9.9"}
    assert _login(proxy, "b", "wrong wrong", **chain).status_code == 401
    assert _login(proxy, "c", "wrong wrong", **hops).status_code == 429  # that address: 2
    other = {"X-Forwarded-For": "203.0.113.8"}
    assert _login(proxy, "c", "wrong wrong", **other).status_code == 401  # a different client
    garbage = {"X-Forwarded-For": "not-an-address"}
    assert _login(proxy, "d", "wrong wrong", **garbage).status_code == 401
    # Someone who is not a trusted proxy cannot choose their address.
    direct = api.client(client=("192.0.2.50", 4000))
    assert _login(direct, "e", "wrong wrong", **other).status_code == 401
    sources = [r.source for r in _audit(api, "login.failure")]
    assert sources == ["203.0.113.7", "203.0.113.7", "203.0.113.8", "10.1.2.3", "192.0.2.50"]
    # Authenticated requests take the same address into the audit log.
    admin = api.login("root", Role.ADMIN)
    admin.post("/api/tokens", json={"name": "t"}, headers={"X-Forwarded-For": "6.6.6.6"})
    assert _audit(api, "token.create")[0].source == "testclient"  # not a proxy: header ignored


def test_ipv6_clients_count_per_64() -> None:
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:ffff::9")
    assert address_key("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("192.0.2.7") == "192.0.2.7"
    assert address_key("testclient") == "testclient"


def test_ipv6_neighbours_share_the_address_limit(make_api: MakeApi) -> None:
    api = make_api(login_max_failures_per_address=2)
    for i, host in enumerate(("2001:db8::1", "2001:db8::2")):
        client = api.client(client=(host, 4000))
        assert _login(client, f"n{i}", "wrong wrong").status_code == 401
    third = api.client(client=("2001:db8::ffff", 4000))
    assert _login(third, "n3", "wrong wrong").status_code == 429
    elsewhere = api.client(client=("2001:db8:0:1::1", 4000))
    assert _login(elsewhere, "n4", "wrong wrong").status_code == 401


def test_trusted_proxies_must_be_addresses() -> None:
    from vigil.errors import ConfigError

    with pytest.raises(ConfigError, match="not an address or CIDR range"):
        networks(["10.0.0.0/33"])


# -- password hashing is bounded --------------------------------------------------------------


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def test_hash_gate_admits_slots_plus_queue_then_refuses() -> None:
    gate = HashGate(slots=1, queue=1, wait_s=60.0)
    inside, release = threading.Event(), threading.Event()
    outcomes: list[str] = []

    def hold() -> None:
        with gate.slot():
            inside.set()
            release.wait(60)

    def wait_in_queue() -> None:
        try:
            with gate.slot():
                outcomes.append("ran")
        except HashBusyError:
            outcomes.append("busy")

    holder = threading.Thread(target=hold)
    holder.start()
    assert inside.wait(60)
    queued = threading.Thread(target=wait_in_queue)
    queued.start()
    _wait_for(lambda: gate.admitted == 2, "the second caller never queued")
    with pytest.raises(HashBusyError, match="too many"), gate.slot():  # full: refused at once
        pass
    release.set()
    holder.join(60)
    queued.join(60)
    assert outcomes == ["ran"]
    assert gate.peak == 1
    impatient = HashGate(slots=1, queue=1, wait_s=0.05)
    with impatient.slot(), pytest.raises(HashBusyError, match="in time"), impatient.slot():
        pass


def test_password_checks_beyond_the_bound_answer_503(
    make_api: MakeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = make_api(hash_slots=1, hash_queue=0)
    api.add_user("ann", Role.VIEWER)
    started, release = threading.Event(), threading.Event()
    real = routes.auth.verify_password

    def slow(password_hash: str | None, password: str) -> bool:
        started.set()
        release.wait(120)
        return real(password_hash, password)

    monkeypatch.setattr(routes.auth, "verify_password", slow)
    results: list[int] = []
    first = threading.Thread(
        target=lambda: results.append(_login(TestClient(api.app), "ann", PASSWORD).status_code)
    )
    first.start()
    try:
        assert started.wait(120)
        busy = _login(api.client(), "bob", "wrong wrong")
        assert busy.status_code == 503
        assert busy.headers["Retry-After"] == "1"
        assert busy.json()["error"]["code"] == "busy"
    finally:
        release.set()
        first.join(120)
    assert results == [200]
    assert _audit(api, "login.failure") == []  # the refused one was never checked


def test_concurrent_logins_never_hash_more_than_the_slots(
    make_api: MakeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = make_api(hash_slots=2, hash_queue=40, hash_wait_s=300.0,
                   login_max_failures_per_address=100)  # fmt: skip
    real = routes.auth.verify_password
    lock = threading.Lock()
    running = [0, 0]  # now, most

    def counted(password_hash: str | None, password: str) -> bool:
        with lock:
            running[0] += 1
            running[1] = max(running)
        try:
            return real(password_hash, password)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(routes.auth, "verify_password", counted)

    def guess(i: int) -> int:
        with TestClient(api.app) as client:
            return _login(client, f"random-{i}", "wrong wrong").status_code

    assert _at_once(12, guess) == Counter({401: 12})
    assert 1 <= running[1] <= 2


def test_setup_refuses_at_once_without_hashing(
    make_api: MakeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = make_api()
    calls: list[str] = []
    real = routes.auth.hash_password

    def spy(password: str, *, min_length: int = 8) -> str:
        calls.append(password)
        return real(password, min_length=min_length)

    monkeypatch.setattr(routes.auth, "hash_password", spy)
    client = api.client()
    assert client.post("/api/setup", json={"name": "root", "password": PASSWORD}
                       ).status_code == 201  # fmt: skip
    assert len(calls) == 1
    again = client.post("/api/setup", json={"name": "x", "password": "another long one"})
    assert again.status_code == 409
    weak = client.post("/api/setup", json={"name": "x", "password": "short"})
    assert weak.status_code == 409  # refused before the password is even looked at
    assert len(calls) == 1


# -- request bodies ---------------------------------------------------------------------------


def test_oversized_bodies_are_refused_with_413(make_api: MakeApi) -> None:
    api = make_api()
    client = api.client()
    big = {"name": "ann", "password": "x" * (2 * 1024 * 1024)}
    reply = client.post("/api/login", json=big)
    assert reply.status_code == 413
    assert reply.json()["error"]["code"] == "too_large"
    assert "server.max_body_bytes" in reply.json()["error"]["message"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"name": "ann", "password": "'
        for _ in range(40):
            yield b"y" * 65536
        yield b'"}'

    streamed = client.post("/api/login", content=chunks(),
                           headers={"Content-Type": "application/json"})  # fmt: skip
    assert streamed.status_code == 413
    assert streamed.json()["error"]["code"] == "too_large"


def test_body_limit_is_configurable(make_api: MakeApi) -> None:
    api = make_api(max_body_bytes=100)
    api.add_user("ann", Role.VIEWER)
    client = api.client()
    assert _login(client, "ann", PASSWORD).status_code == 200  # a small body passes
    assert _login(client, "ann", "p" * 200).status_code == 413


def test_server_config_reaches_the_api_settings() -> None:
    from ipaddress import ip_network

    from vigil.commands.serve import api_settings
    from vigil.config.models import VigilConfig

    config = VigilConfig.model_validate({"server": {
        "trusted_proxies": ["10.0.0.1", "fd00::/8"], "max_body_bytes": 4096, "token_ttl": 3600,
        "login_max_failures": 3, "login_max_failures_per_address": 9, "login_window": 30,
        "password_hash_concurrency": 3}})  # fmt: skip
    settings = api_settings(config)
    assert settings.trusted_proxies == (ip_network("10.0.0.1/32"), ip_network("fd00::/8"))
    assert (settings.max_body_bytes, settings.token_ttl_s, settings.hash_slots) == (4096, 3600, 3)
    assert (settings.login_max_failures, settings.login_max_failures_per_address,
            settings.login_window_s) == (3, 9, 30)  # fmt: skip
    defaults = api_settings(VigilConfig())
    assert defaults.trusted_proxies == ()
    assert defaults.token_ttl_s == 90 * 86400
    with pytest.raises(ValueError, match="not an address or CIDR range"):
        VigilConfig.model_validate({"server": {"trusted_proxies": ["proxy.local"]}})
