"""Queries added for the API, on SQLite and PostgreSQL: ``SegmentRepo.get``, ``AuditRepo``."""

from __future__ import annotations

import pytest

from vigil.store import AuditLog, AuditRepo, Database, SegmentRepo

SHA = "ab" * 32


def test_segment_get(db: Database) -> None:
    with db.session() as session:
        row = SegmentRepo(session).add(camera="front", path="recordings/front/a.mp4", start=1.0,
                                       end=11.0, size=10, sha256=SHA)  # fmt: skip
    with db.session() as session:
        found = SegmentRepo(session).get(row.id)
        assert found is not None
        assert found.path == "recordings/front/a.mp4"
        assert SegmentRepo(session).get(row.id + 1000) is None


@pytest.mark.parametrize(("filters", "seqs"), [
    ({}, [1, 2, 3, 4, 5]),
    ({"actor": "ann"}, [1, 3]),
    ({"action": "segment.read"}, [1, 2]),
    ({"action": "segment.*"}, [1, 2]),
    ({"action": "user."}, [4, 5]),
    ({"action": "user_"}, []),  # LIKE wildcards in the input are literal
    ({"action": "%"}, []),
    ({"since": 102.0, "until": 104.0}, [3, 4]),
    ({"after_seq": 3}, [4, 5]),
    ({"limit": 2}, [1, 2]),
    ({"actor": "bob", "action": "user.*"}, [4]),
])  # fmt: skip
def test_audit_records_filters(db: Database, filters: dict[str, object], seqs: list[int]) -> None:
    log = AuditLog(db)
    for when, actor, action in [(100, "ann", "segment.read"), (101, "bob", "segment.read"),
                                (102, "ann", "snapshot.read"), (103, "bob", "user.create"),
                                (104, "cli:root", "user.update")]:  # fmt: skip
        log.append(actor, action, "t", now=float(when))
    with db.session() as session:
        rows = AuditRepo(session).records(**filters)  # type: ignore[arg-type]
    assert [r.seq for r in rows] == seqs
