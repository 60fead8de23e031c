"""The hash-chained audit log on both backends: appends, tampering found, no forks, the CLI."""

from __future__ import annotations

import itertools
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text

from vigil.cli import main
from vigil.errors import StorageError
from vigil.store import AuditHead, AuditLog, Database
from vigil.store.audit import record_hash
from vigil.store.models import GENESIS_HASH

T0 = 1_700_000_000.0


def _fill(db: Database, n: int = 6) -> AuditLog:
    log = AuditLog(db)
    for i in range(1, n + 1):
        log.append(f"user{i % 2}", "segment.read", f"front/2023-11-14/22/{i:02d}.00.mp4",
                   source="10.0.0.7", reason="incident 17" if i == 3 else None,
                   details={"redacted": i != 3, "bytes": i * 1000, "note": "é ✓"},
                   now=T0 + i + 0.1234567)  # fmt: skip
    return log


def _sql(db: Database, *statements: str) -> None:
    with db.engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))


def test_append_builds_a_chain(db: Database) -> None:
    log = _fill(db)
    rows = log.records(limit=100)
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5, 6]
    assert rows[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(rows))
    assert rows[2].reason == "incident 17"
    assert rows[2].details == {"redacted": False, "bytes": 3000, "note": "é ✓"}
    assert rows[0].time == pytest.approx(T0 + 1.123457)  # kept to the microsecond
    assert log.head() == AuditHead(6, rows[-1].hash)
    assert [r.seq for r in log.records(after_seq=4)] == [5, 6]
    report = log.verify()
    assert (report.ok, report.records, report.first_bad_seq) == (True, 6, None)


def test_the_hash_covers_prev_hash_and_fields() -> None:
    fields = {"seq": 1, "time": T0, "actor": "a", "action": "b", "target": "c", "source": None,
              "reason": None, "details": {"k": 1}}  # fmt: skip
    base = record_hash(GENESIS_HASH, **fields)  # type: ignore[arg-type]
    assert len(base) == 64
    assert record_hash("1" * 64, **fields) != base  # type: ignore[arg-type]
    for key, value in [("seq", 2), ("time", T0 + 1e-6), ("actor", "x"), ("reason", "r"),
                       ("details", {"k": 2})]:  # fmt: skip
        assert record_hash(GENESIS_HASH, **{**fields, key: value}) != base  # type: ignore[arg-type]


def test_empty_log_verifies(db: Database) -> None:
    report = AuditLog(db).verify()
    assert (report.ok, report.records) == (True, 0)


@pytest.mark.parametrize(
    ("statements", "first_bad", "words"),
    [
        (["UPDATE audit SET target = 'other.mp4' WHERE seq = 3"], 3, "altered"),
        (["UPDATE audit SET reason = NULL WHERE seq = 3"], 3, "altered"),
        (["UPDATE audit SET actor = 'mallory' WHERE seq = 6"], 6, "altered"),
        (["UPDATE audit SET time = time + 3600 WHERE seq = 1"], 1, "altered"),
        (["UPDATE audit SET details = '{\"redacted\": true, \"bytes\": 3000, \"note\": \"é ✓\"}'"
          " WHERE seq = 3"], 3, "altered"),
        # A forger who recomputes the edited record's hash breaks the next record's link.
        (["UPDATE audit SET target = 'other.mp4' WHERE seq = 3",
          "UPDATE audit SET hash = '{h3}' WHERE seq = 3"], 4, "does not follow"),
        (["DELETE FROM audit WHERE seq = 3"], 3, "missing"),
        (["DELETE FROM audit WHERE seq = 1"], 1, "missing"),
        (["DELETE FROM audit WHERE seq = 3", "UPDATE audit SET seq = seq - 1 WHERE seq > 3"],
         3, "does not follow"),
        (["UPDATE audit SET seq = -1 WHERE seq = 2", "UPDATE audit SET seq = 2 WHERE seq = 3",
          "UPDATE audit SET seq = 3 WHERE seq = -1"], 2, "does not follow"),
        (["DELETE FROM audit WHERE seq >= 5"], 5, "last 2 record(s) were deleted"),
        (["DELETE FROM audit"], 1, "last 6 record(s) were deleted"),
        (["UPDATE audit_head SET seq = 5"], 5, "head was altered"),
        (["DELETE FROM audit_head"], 7, "audit_head row is missing"),
    ],
)  # fmt: skip
def test_tampering_is_found(db: Database, statements: list[str], first_bad: int,
                            words: str) -> None:  # fmt: skip
    log = _fill(db)
    rows = log.records()
    # What a forger would write for record 3 with its target edited.
    forged = record_hash(rows[2].prev_hash, seq=3, time=rows[2].time, actor=rows[2].actor,
                         action=rows[2].action, target="other.mp4", source=rows[2].source,
                         reason=rows[2].reason, details=rows[2].details)  # fmt: skip
    _sql(db, *(s.replace("{h3}", forged) for s in statements))
    report = log.verify()
    assert not report.ok
    assert report.first_bad_seq == first_bad
    assert report.problem is not None
    assert words in report.problem


def test_truncation_with_a_rewritten_head_needs_an_anchor(db: Database) -> None:
    log = _fill(db)
    anchor = log.head()  # copied somewhere the forger cannot write
    rows = log.records()
    _sql(
        db,
        "DELETE FROM audit WHERE seq >= 5",
        f"UPDATE audit_head SET seq = 4, hash = '{rows[3].hash}'",
    )
    assert log.verify().ok  # what the database alone can show: a consistent shorter chain
    report = log.verify(anchor=anchor)
    assert (report.ok, report.first_bad_seq) == (False, 5)
    assert log.verify(anchor=AuditHead(4, rows[3].hash)).ok
    assert log.verify(anchor=AuditHead(4, "f" * 64)).first_bad_seq == 4


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"actor": ""}, "actor and an action"), ({"details": {"x": object()}}, "JSON"),
     ({"details": {"x": float("nan")}}, "JSON"), ({"now": float("inf")}, "finite")],
)  # fmt: skip
def test_bad_appends_are_refused(db: Database, kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"actor": "alice", "action": "a", "target": "t", **kwargs}
    with pytest.raises(StorageError, match=match):
        AuditLog(db).append(**args)  # type: ignore[arg-type]
    assert AuditLog(db).head().seq == 0


def test_concurrent_appends_never_fork(db: Database) -> None:
    """Threads append at once (each its own transaction): one chain, no seq lost or doubled."""
    log = AuditLog(db)
    errors: list[BaseException] = []

    def worker(k: int) -> Callable[[], None]:
        def run() -> None:
            try:
                for i in range(15):
                    log.append(f"t{k}", "x", f"{k}/{i}")
            except BaseException as exc:
                errors.append(exc)

        return run

    threads = [threading.Thread(target=worker(k)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    report = log.verify()
    assert (report.ok, report.records) == (True, 60)


_APPENDER = textwrap.dedent("""
    import sys
    from vigil.store import AuditLog, Database
    db = Database(sys.argv[1])
    log = AuditLog(db)
    for i in range(int(sys.argv[3])):
        log.append(sys.argv[2], "segment.read", f"{sys.argv[2]}/{i}")
    db.close()
""")


def test_appends_from_several_processes_never_fork(db: Database) -> None:
    url = db.engine.url.render_as_string(hide_password=False)
    procs = [subprocess.Popen([sys.executable, "-c", _APPENDER, url, f"p{k}", "20"])
             for k in range(3)]  # fmt: skip
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    report = AuditLog(db).verify()
    assert (report.ok, report.records) == (True, 60)


def test_cli_verify(db: Database, capsys: pytest.CaptureFixture[str]) -> None:
    log = _fill(db)
    url = db.engine.url.render_as_string(hide_password=False)
    assert main(["audit", "verify", "--database-url", url]) == 0
    out = capsys.readouterr().out
    assert "chain intact (6 records)" in out
    head = log.head()
    assert main(["audit", "verify", "--database-url", url, "--anchor",
                 f"{head.seq}:{head.hash}"]) == 0  # fmt: skip
    capsys.readouterr()
    _sql(db, "UPDATE audit SET target = 'x' WHERE seq = 4")
    assert main(["audit", "verify", "--database-url", url]) == 1
    assert "chain BROKEN at record 4" in capsys.readouterr().out


def test_cli_verify_reads_the_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    db = Database(f"sqlite:///{data / 'vigil.db'}")
    db.migrate()
    _fill(db, 3)
    db.close()
    config = tmp_path / "vigil.yaml"
    config.write_text(f"data_dir: {data}\n", encoding="utf-8")
    assert main(["audit", "verify", "--config", str(config)]) == 0
    assert "chain intact (3 records)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "code", "words"),
    [
        (["--anchor", "nope"], 2, "expected SEQ:HASH"),
        ([], 1, "never migrated"),
    ],
)
def test_cli_verify_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str],
                           code: int, words: str) -> None:  # fmt: skip
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    assert main(["audit", "verify", "--database-url", url, *argv]) == code
    assert words in capsys.readouterr().err
