"""``JobRepo`` on SQLite and PostgreSQL: claim order, deferral, restart, limits, forgetting."""

from __future__ import annotations

from vigil.store import Database, JobRepo


def test_claim_order_deferral_and_restart(db: Database) -> None:
    with db.session() as session:
        repo = JobRepo(session)
        low = repo.add("clip", {"event": "a"}, priority=0, key="clip:a", now=100.0)
        mid = repo.add("export", {}, priority=5, owner="val", now=101.0)
        late = repo.add("clip", {"event": "b"}, priority=10, key="clip:b", not_before=500.0,
                        now=102.0)  # fmt: skip
    with db.session(immediate=True) as session:
        repo = JobRepo(session)
        assert repo.any_due(now=200.0)
        first = repo.claim(now=200.0)
        assert first is not None
        assert first.id == mid.id, "highest due priority first; the deferred one waits"
        assert repo.claim(now=600.0).id == late.id  # type: ignore[union-attr]
        repo.defer(late.id, 700.0)
        assert repo.claim(now=650.0).id == low.id  # type: ignore[union-attr]
        assert repo.claim(now=650.0) is None
        assert not repo.any_due(now=650.0)
    with db.session() as session:
        repo = JobRepo(session)
        assert repo.active("clip:a").id == low.id  # type: ignore[union-attr]
        assert repo.count_active(owner="val", kind="export") == 1
        assert repo.requeue_running() == 2  # a restart: mid and low were running
    with db.session() as session:
        repo = JobRepo(session)
        assert {j.state for j in repo.list()} == {"queued"}
        repo.promote(late.id, 10, "ann")
        repo.finish(mid.id, {"name": "x.mp4"}, now=1000.0)
        repo.fail(low.id, "404 no_recording: gone", now=5000.0)
    with db.session() as session:
        repo = JobRepo(session)
        promoted = repo.get(late.id)
        assert promoted is not None
        assert (promoted.owner, promoted.not_before) == ("ann", 0.0)
        assert repo.active("clip:a") is None
        assert repo.latest("clip:a").state == "failed"  # type: ignore[union-attr]
        assert repo.delete_finished(before=2000.0) == 1
        assert {j.id for j in repo.list()} == {late.id, low.id}
