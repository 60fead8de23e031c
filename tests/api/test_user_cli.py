"""``vigil user``: add (stdin password, Argon2id), list, role, disable; all audited."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from vigil.api.auth import verify_password
from vigil.cli import main
from vigil.store import AuditLog, Database, Role, UserRepo


def test_user_lifecycle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                        capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    url = f"sqlite:///{tmp_path / 'vigil.db'}"
    monkeypatch.setattr("sys.stdin", io.StringIO("a long password\n"))
    assert main(["user", "--database-url", url, "add", "root", "--role", "admin",
                 "--password-stdin"]) == 0  # fmt: skip
    monkeypatch.setattr("sys.stdin", io.StringIO("another password\n"))
    assert main(["user", "--database-url", url, "add", "cam", "--role", "viewer",
                 "--cameras", "front,back", "--password-stdin"]) == 0  # fmt: skip
    assert main(["user", "--database-url", url, "role", "cam", "operator"]) == 0
    assert main(["user", "--database-url", url, "disable", "cam"]) == 0
    capsys.readouterr()
    assert main(["user", "--database-url", url, "list"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing == ["cam\toperator\tdisabled\tfront,back", "root\tadmin\tenabled\tall cameras"]
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["user", "--database-url", url, "add", "x", "--role", "viewer",
                 "--password-stdin"]) == 2  # fmt: skip
    monkeypatch.setattr("sys.stdin", io.StringIO("a long password\n"))
    assert main(["user", "--database-url", url, "add", "root", "--role", "viewer",
                 "--password-stdin"]) == 2  # fmt: skip
    assert "already exists" in capsys.readouterr().err
    db = Database(url)
    try:
        with db.session() as session:
            root = UserRepo(session).get("root")
            assert root is not None
            assert root.role == Role.ADMIN
            assert verify_password(root.password_hash, "a long password")
        log = AuditLog(db)
        assert [r.action for r in log.records()] == ["user.create", "user.create",
                                                     "user.update", "user.update"]  # fmt: skip
        assert log.verify().ok
    finally:
        db.close()


def test_prompted_passwords_must_match(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    answers = iter(["first password", "second password"])
    monkeypatch.setattr("getpass.getpass", lambda _prompt: next(answers))
    url = f"sqlite:///{tmp_path / 'vigil.db'}"
    assert main(["user", "--database-url", url, "add", "root", "--role", "admin"]) == 2


def test_the_last_admin_stays(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    url = f"sqlite:///{tmp_path / 'vigil.db'}"
    monkeypatch.setattr("sys.stdin", io.StringIO("a long password\n"))
    assert main(["user", "--database-url", url, "add", "root", "--role", "admin",
                 "--password-stdin"]) == 0  # fmt: skip
    assert main(["user", "--database-url", url, "role", "root", "viewer"]) == 2
    assert main(["user", "--database-url", url, "disable", "root"]) == 2
    assert "last enabled admin" in capsys.readouterr().err
    db = Database(url)
    try:
        with db.session() as session:
            root = UserRepo(session).get("root")
            assert root is not None
            assert (root.role, root.disabled) == (Role.ADMIN, False)
    finally:
        db.close()
