"""Repositories on both backends: events, segments, counts, users, tokens, cameras."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest

from vigil.errors import StorageError
from vigil.store import (
    CameraRepo,
    CountKey,
    CountRepo,
    Database,
    EventCursor,
    EventFilter,
    EventRepo,
    LoginAttemptRepo,
    Role,
    SegmentRepo,
    ThrottleKey,
    TokenKind,
    TokenRepo,
    UserRepo,
    hash_token,
    minute_bucket,
)
from vigil.store.repo import ANY_NODE, SegmentEntry
from vigil.types import Event, EventState

T0 = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC
SHA = "ab" * 32


def _event(i: int, **changes: object) -> Event:
    base = Event(
        id=f"ev{i:03d}", camera_id="front" if i % 2 == 0 else "back", label="person",
        class_id=0, track_id=i, start=T0 + 10 * i, end=None, state=EventState.START, live=True,
        zones=["door"] if i % 3 == 0 else [], lines=["gate"] if i % 5 == 0 else [],
    )  # fmt: skip
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


# -- events -----------------------------------------------------------------------------------


def test_event_lifecycle_updates_one_row(db: Database) -> None:
    ev = _event(1)
    with db.session() as s:
        EventRepo(s).upsert(ev, snapshot_path="snapshots/front/ev001.jpg", snapshot_sha256=SHA)
    with db.session() as s:
        assert EventRepo(s).set_evidence_lock("ev001", True)
        assert not EventRepo(s).set_evidence_lock("nope", True)
    update = dataclasses.replace(ev, state=EventState.UPDATE, top_score=0.9, counts={"gate": 2})
    end = dataclasses.replace(update, state=EventState.END, end=T0 + 42.5)
    with db.session() as s:
        EventRepo(s).upsert(update)
        EventRepo(s).upsert(end)
    with db.session() as s:
        repo = EventRepo(s)
        assert repo.count() == 1
        row = repo.get("ev001")
        assert row is not None
        assert (row.state, row.end, row.top_score, row.counts) == (
            "end",
            T0 + 42.5,
            0.9,
            {"gate": 2},
        )
        # What the pipeline does not own survives its upserts.
        assert row.evidence_lock is True
        assert (row.snapshot_path, row.snapshot_sha256) == ("snapshots/front/ev001.jpg", SHA)
        assert repo.get("missing") is None


def test_event_snapshot_hash_is_checked(db: Database) -> None:
    with pytest.raises(StorageError, match="SHA-256"), db.session() as s:
        EventRepo(s).upsert(_event(1), snapshot_path="x.jpg", snapshot_sha256="not-a-hash")


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        (EventFilter(), list(range(30))),
        (EventFilter(camera="front"), list(range(0, 30, 2))),
        (EventFilter(cameras=["back"]), list(range(1, 30, 2))),
        (EventFilter(cameras=[]), []),
        (EventFilter(label="car"), [7]),
        (EventFilter(zone="door"), list(range(0, 30, 3))),
        (EventFilter(line="gate"), [0, 5, 10, 15, 20, 25]),
        (EventFilter(zone="door", line="gate"), [0, 15]),
        (EventFilter(zone="doo"), []),  # exact names, not substrings
        # Overlap with [T0+100, T0+150): events 10..14 start inside; events end 5 s after start,
        # so event 9 (ends T0+95) does not overlap, and 15 starts at the end (excluded).
        (EventFilter(since=T0 + 100, until=T0 + 150), [10, 11, 12, 13, 14]),
        (EventFilter(since=T0 + 96, until=T0 + 101), [10]),
        (EventFilter(since=T0 + 94, until=T0 + 101), [9, 10]),
        (EventFilter(locked=True), [4]),
        (EventFilter(camera="front", zone="door", since=T0 + 50), [6, 12, 18, 24]),
    ],
)
def test_event_filters(db: Database, where: EventFilter, expected: list[int]) -> None:
    with db.session() as s:
        repo = EventRepo(s)
        for i in range(30):
            label = "car" if i == 7 else "person"
            repo.upsert(_event(i, label=label, end=T0 + 10 * i + 5, state=EventState.END))
        repo.set_evidence_lock("ev004", True)
    with db.session() as s:
        page = EventRepo(s).list(where, limit=1000)
        assert [r.id for r in page.items] == [f"ev{i:03d}" for i in sorted(expected, reverse=True)]
        assert page.next_cursor is None
        assert EventRepo(s).count(where) == len(expected)


def test_open_events_overlap_everything_after_their_start(db: Database) -> None:
    with db.session() as s:
        EventRepo(s).upsert(_event(1))  # open: end is None
    with db.session() as s:
        assert EventRepo(s).count(EventFilter(since=T0 + 10_000)) == 1
        assert EventRepo(s).count(EventFilter(until=T0)) == 0


def test_keyset_pagination_walks_every_event_once(db: Database) -> None:
    with db.session() as s:
        repo = EventRepo(s)
        for i in range(23):
            # Pairs share a start time, so the id tie-break is exercised.
            repo.upsert(_event(i, start=T0 + (i // 2)))
    seen: list[str] = []
    cursor: EventCursor | None = None
    pages = 0
    while True:
        with db.session() as s:
            page = EventRepo(s).list(limit=5, after=cursor)
        seen += [r.id for r in page.items]
        pages += 1
        if page.next_cursor is None:
            break
        cursor = EventCursor.decode(page.next_cursor.encode())  # through the API's string
    assert pages == 5
    assert len(seen) == len(set(seen)) == 23
    with db.session() as s:
        assert seen == [r.id for r in EventRepo(s).list(limit=100).items]


@pytest.mark.parametrize("text", ["", "!!!", "bm90LWEtY3Vyc29y", "bmFufGV2MQ"])
def test_bad_cursor_is_a_storage_error(text: str) -> None:
    with pytest.raises(StorageError, match="cursor"):
        EventCursor.decode(text)


# -- segments ---------------------------------------------------------------------------------


def _segments(db: Database) -> list[int]:
    ids = []
    with db.session() as s:
        repo = SegmentRepo(s)
        for cam in ("front", "back"):
            for k in range(6):
                row = repo.add(camera=cam, path=f"{cam}/2023-11-14/22/{k:02d}.00.mp4",
                               start=T0 + 10 * k, end=T0 + 10 * (k + 1), size=1000 + k,
                               sha256=SHA, has_motion=k % 2 == 0)  # fmt: skip
                ids.append(row.id)
    return ids


def test_segment_listing_and_sizes(db: Database) -> None:
    _segments(db)
    with db.session() as s:
        repo = SegmentRepo(s)
        assert repo.total_size() == 2 * sum(1000 + k for k in range(6))
        assert repo.total_size("front") == sum(1000 + k for k in range(6))
        assert repo.total_size("nobody") == 0
        assert repo.size_by_camera() == {"front": 6015, "back": 6015}
        # Overlap with [T0+15, T0+30): segments 1 (10..20) and 2 (20..30).
        rows = repo.list("front", T0 + 15, T0 + 30)
        assert [r.path for r in rows] == [
            "front/2023-11-14/22/01.00.mp4",
            "front/2023-11-14/22/02.00.mp4",
        ]
        assert [r.start for r in repo.list(limit=3)] == [T0, T0, T0 + 10]  # oldest first


@pytest.mark.parametrize(("camera", "since", "until", "limit"), [
    ("front", T0 + 15, T0 + 30, None), (None, None, None, 3), ("back", T0 + 5, None, 2),
    ("nobody", None, None, None)])  # fmt: skip
def test_segment_timeline_reads_what_list_reads(
    db: Database, camera: str | None, since: float | None, until: float | None,
    limit: int | None,
) -> None:  # fmt: skip
    _segments(db)
    with db.session() as s:
        SegmentRepo(s).set_lock("front", T0 + 15, T0 + 30, True)
        SegmentRepo(s).add(camera="front", path="n1/x.mp4", start=T0 + 20, end=T0 + 25,
                           size=1, sha256=SHA, node="n1")  # fmt: skip
    with db.session() as s:
        repo = SegmentRepo(s)
        for node in (ANY_NODE, None, "n1"):
            rows = repo.list(camera, since, until, limit=limit, node=node)
            entries = repo.timeline(camera, since, until, limit=limit, node=node)
            assert entries == [tuple(getattr(r, c) for c in SegmentEntry._fields)
                               for r in rows]  # fmt: skip
            assert all(type(e) is SegmentEntry for e in entries)


def test_segment_delete_never_removes_locked_ones(db: Database) -> None:
    ids = _segments(db)
    with db.session() as s:
        assert SegmentRepo(s).set_lock("front", T0 + 15, T0 + 30, True) == 2
    with db.session() as s:
        deleted = SegmentRepo(s).delete(ids[:6])
        assert [r.path.split("/")[-1] for r in deleted] == [
            "00.00.mp4",
            "03.00.mp4",
            "04.00.mp4",
            "05.00.mp4",
        ]
    with db.session() as s:
        left = SegmentRepo(s).list("front")
        assert [(r.start, r.evidence_lock) for r in left] == [(T0 + 10, True), (T0 + 20, True)]
        assert SegmentRepo(s).set_lock("front", T0, T0 + 100, False) == 2
        assert len(SegmentRepo(s).delete(r.id for r in left)) == 2
        assert SegmentRepo(s).delete([]) == []


def test_segment_mark_events(db: Database) -> None:
    _segments(db)
    with db.session() as s:
        assert SegmentRepo(s).mark_events("back", T0 + 5, T0 + 12) == 2
    with db.session() as s:
        assert [r.has_events for r in SegmentRepo(s).list("back")] == [True, True] + [False] * 4


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"path": "/abs/path.mp4"}, "relative"),
        ({"path": "front/../../etc/passwd"}, "relative"),
        ({"sha256": "xyz"}, "SHA-256"),
        ({"end": T0 - 1}, "before start"),
    ],
)
def test_segment_add_rejects_bad_input(db: Database, changes: dict[str, object],
                                       match: str) -> None:  # fmt: skip
    args: dict[str, object] = {"camera": "front", "path": "front/a.mp4", "start": T0,
                               "end": T0 + 10, "size": 1, "sha256": SHA}  # fmt: skip
    args.update(changes)
    with pytest.raises(StorageError, match=match), db.session() as s:
        SegmentRepo(s).add(**args)  # type: ignore[arg-type]


def test_duplicate_segment_keeps_the_rest_of_the_transaction(db: Database) -> None:
    with db.session() as s:
        repo = SegmentRepo(s)
        repo.add(camera="front", path="front/a.mp4", start=T0, end=T0 + 10, size=1, sha256=SHA)
        with pytest.raises(StorageError, match="already recorded"):
            repo.add(camera="front", path="front/a.mp4", start=T0, end=T0 + 10, size=1,
                     sha256=SHA)  # fmt: skip
        repo.add(camera="front", path="front/b.mp4", start=T0 + 10, end=T0 + 20, size=2,
                 sha256=SHA)  # fmt: skip
    with db.session() as s:
        assert SegmentRepo(s).total_size() == 3


def test_segment_sizes_beyond_32_bits(db: Database) -> None:
    with db.session() as s:
        SegmentRepo(s).add(camera="c", path="c/big.mp4", start=T0, end=T0 + 1,
                           size=5 * 2**31, sha256=SHA)  # fmt: skip
    with db.session() as s:
        assert SegmentRepo(s).total_size() == 5 * 2**31


# -- counts -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "bucket"),
    [(T0, 1_699_999_980), (1_699_999_980.0, 1_699_999_980), (1_700_000_039.999, 1_699_999_980),
     (1_700_000_040.0, 1_700_000_040)],
)  # fmt: skip
def test_minute_bucket(when: float, bucket: int) -> None:
    assert minute_bucket(when) == bucket


def test_counts_increment_and_series(db: Database) -> None:
    day = 1_700_006_400  # 2023-11-15 00:00:00 UTC
    a_to_b = CountKey("front", "gate", "line", "person", "a_to_b")
    b_to_a = dataclasses.replace(a_to_b, metric="b_to_a")
    car = dataclasses.replace(a_to_b, label="car")
    with db.session() as s:
        repo = CountRepo(s)
        for offset in (0, 1, 59, 60, 3599, 3600, 86_400):
            repo.increment(a_to_b, day + offset)
        repo.increment(b_to_a, day + 10, n=5)
        repo.increment(car, day + 7200, n=2)
        repo.increment(dataclasses.replace(a_to_b, camera="back"), day)
    with db.session() as s:
        repo = CountRepo(s)
        minutes = repo.series("front", label="person", metric="a_to_b", period="minute")
        assert [(p.time - day, p.count) for p in minutes] == [
            (0, 3),
            (60, 1),
            (3540, 1),
            (3600, 1),
            (86_400, 1),
        ]
        hours = repo.series("front", period="hour", until=day + 86_400)
        assert [(p.time - day, p.label, p.metric, p.count) for p in hours] == [
            (0, "person", "a_to_b", 5), (0, "person", "b_to_a", 5),
            (3600, "person", "a_to_b", 1), (7200, "car", "a_to_b", 2),
        ]  # fmt: skip
        days = repo.series("front", label="person", period="day", since=day)
        assert [(p.time - day, p.metric, p.count) for p in days] == [
            (0, "a_to_b", 6),
            (0, "b_to_a", 5),
            (86_400, "a_to_b", 1),
        ]
        assert repo.series("front", rule="other") == []


# -- users, tokens, cameras -------------------------------------------------------------------


def test_users(db: Database) -> None:
    with db.session() as s:
        repo = UserRepo(s)
        assert repo.count(Role.ADMIN) == 0
        repo.add("alice", Role.ADMIN, "$argon2id$hash-a", now=1.0)
        repo.add("bob", Role.VIEWER, "$argon2id$hash-b", cameras=["front"], now=2.0)
    with db.session() as s:
        repo = UserRepo(s)
        with pytest.raises(StorageError, match="already exists"):
            repo.add("alice", Role.VIEWER, "x")
        assert [u.name for u in repo.list()] == ["alice", "bob"]  # the session still works
        repo.set_role("bob", Role.OPERATOR)
        repo.set_cameras("bob", None)
        repo.set_disabled("alice")
        repo.set_password_hash("bob", "$argon2id$new")
        with pytest.raises(StorageError, match="no user named 'carol'"):
            repo.set_role("carol", Role.ADMIN)
    with db.session() as s:
        repo = UserRepo(s)
        bob, alice = repo.get("bob"), repo.get("alice")
        assert bob is not None
        assert alice is not None
        assert (bob.role, bob.cameras, bob.password_hash) == (Role.OPERATOR, None, "$argon2id$new")
        assert alice.disabled is True
        assert repo.get_by_id(bob.id) is not None
        assert repo.count() == 2
        assert repo.count(Role.ADMIN) == 1


def test_tokens_store_only_a_hash(db: Database) -> None:
    with db.session() as s:
        user = UserRepo(s).add("alice", Role.ADMIN, "h")
        issued = TokenRepo(s).issue(user.id, TokenKind.SESSION, ttl_s=3600, now=T0)
        api = TokenRepo(s).issue(user.id, TokenKind.API, name="nvr", now=T0)
    with db.session() as s:
        rows = TokenRepo(s).list(user.id)
        assert {r.token_hash for r in rows} == {hash_token(issued.token), hash_token(api.token)}
        assert all(issued.token not in r.token_hash for r in rows)
        found = TokenRepo(s).lookup(issued.token, now=T0 + 10)
        assert found is not None
        assert (found[1].name, found[0].kind, found[0].last_used) == (
            "alice",
            TokenKind.SESSION,
            T0 + 10,
        )
        assert TokenRepo(s).lookup(issued.token, now=T0 + 3600) is None  # expired
        assert TokenRepo(s).lookup("guess", now=T0) is None
        assert TokenRepo(s).lookup(api.token, now=T0 + 10**6) is not None  # never expires
        UserRepo(s).set_disabled("alice")
        assert TokenRepo(s).lookup(api.token, now=T0) is None  # disabled user
    with db.session() as s:
        assert TokenRepo(s).purge_expired(now=T0 + 3600) == 1
        assert TokenRepo(s).revoke(api.token)
        assert not TokenRepo(s).revoke(api.token)
        assert TokenRepo(s).list() == []


def test_tokens_go_with_their_user(db: Database) -> None:
    from sqlalchemy import delete

    from vigil.store.models import UserRow

    with db.session() as s:
        user = UserRepo(s).add("alice", Role.ADMIN, "h")
        TokenRepo(s).issue(user.id, TokenKind.API)
        TokenRepo(s).issue(user.id, TokenKind.SESSION)
        assert TokenRepo(s).revoke_user(user.id, TokenKind.SESSION) == 1
    with db.session() as s:
        s.execute(delete(UserRow))  # foreign keys are on (SQLite too): tokens cascade
    with db.session() as s:
        assert TokenRepo(s).list() == []


def test_cameras(db: Database) -> None:
    with db.session() as s:
        repo = CameraRepo(s)
        repo.ensure("front", now=1.0)
        repo.ensure("front", now=2.0)
        repo.seen("back", T0)
    with db.session() as s:
        rows = CameraRepo(s).list()
        assert [(r.name, r.created > 0, r.last_seen) for r in rows] == [
            ("back", True, T0),
            ("front", True, None),
        ]
        assert rows[1].created == 1.0


def test_users_lock_serialises_check_then_write(db: Database) -> None:
    """Two first-run setups at once: the second waits for the first's commit, then sees its
    user (without the lock both saw zero users on PostgreSQL and both created an admin)."""
    seen: list[int] = []
    first_in = threading.Event()

    def setup(name: str, hold_s: float) -> None:
        with db.session(immediate=True) as session:
            users = UserRepo(session)
            users.lock()
            first_in.set()
            count = users.count()
            time.sleep(hold_s)
            seen.append(count)
            if count == 0:
                users.add(name, Role.ADMIN, "hash")

    first = threading.Thread(target=setup, args=("a", 0.5))
    first.start()
    assert first_in.wait(10)
    setup("b", 0.0)
    first.join(10)
    assert seen == [0, 1]
    with db.session() as session:
        assert UserRepo(session).count(Role.ADMIN) == 1


def test_api_tokens_listed_with_their_user_and_revoked_by_id(db: Database) -> None:
    with db.session() as s:
        users = UserRepo(s)
        alice, bob = users.add("alice", Role.ADMIN, "h"), users.add("bob", Role.VIEWER, "h")
        tokens = TokenRepo(s)
        tokens.issue(alice.id, TokenKind.SESSION, ttl_s=60, now=T0)
        a = tokens.issue(alice.id, TokenKind.API, ttl_s=60, name="a", now=T0 + 1)
        b = tokens.issue(bob.id, TokenKind.API, ttl_s=60, name="b", now=T0 + 2)
    with db.session() as s:
        tokens = TokenRepo(s)
        assert [(r.name, user) for r, user in tokens.api_tokens()] == [("a", "alice"), ("b", "bob")]
        assert [r.id for r, _ in tokens.api_tokens(bob.id)] == [b.row.id]
        assert tokens.revoke_id(a.row.id)
        assert not tokens.revoke_id(a.row.id)
        assert tokens.get(a.row.id) is None
        assert tokens.get(b.row.id) is not None


def test_login_attempts_window_forget_clear_purge(db: Database) -> None:
    ann, addr = ThrottleKey("account", "ann"), ThrottleKey("address", "192.0.2.1")
    with db.session(immediate=True) as s:
        repo = LoginAttemptRepo(s)
        repo.lock([ann, addr])
        ids = [repo.record(ann, T0 + i) for i in range(3)]
        repo.record(addr, T0)
        repo.record(ThrottleKey("account", "x" * 200), T0)  # long keys are cut, not refused
    with db.session(immediate=True) as s:
        repo = LoginAttemptRepo(s)
        assert repo.window(ann, T0 - 1) == (3, T0)
        assert repo.window(ann, T0) == (2, T0 + 1)  # the window is (since, now]
        assert repo.window(ThrottleKey("address", "ann"), T0 - 1) == (0, None)  # scopes apart
        assert repo.window(ThrottleKey("account", "x" * 200), T0 - 1) == (1, T0)
        repo.forget(ids[:1])
        assert repo.window(ann, T0 - 1) == (2, T0 + 1)
        assert repo.purge(T0 + 1) == 3  # ann's T0 + 1, the address's and the long key's
        assert repo.window(ann, T0 - 1) == (1, T0 + 2)
        assert repo.clear(ann) == 1
        assert repo.window(ann, T0 - 1) == (0, None)


def test_login_attempt_lock_serialises_check_then_record(db: Database) -> None:
    """Two attempts on one key: the second waits for the first's commit and counts its row."""
    key = ThrottleKey("account", "ann")
    seen: list[int] = []
    first_in = threading.Event()

    def attempt(hold_s: float) -> None:
        with db.session(immediate=True) as session:
            repo = LoginAttemptRepo(session)
            repo.lock([key])
            first_in.set()
            count, _ = repo.window(key, T0 - 60)
            time.sleep(hold_s)
            seen.append(count)
            repo.record(key, T0)

    first = threading.Thread(target=attempt, args=(0.5,))
    first.start()
    assert first_in.wait(10)
    attempt(0.0)
    first.join(10)
    assert seen == [0, 1]
