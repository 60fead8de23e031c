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


def test_tokens_listed_and_revoked_and_a_new_password_ends_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from vigil.store import TokenKind, TokenRepo

    url = f"sqlite:///{tmp_path / 'vigil.db'}"
    monkeypatch.setattr("sys.stdin", io.StringIO("a long password\n"))
    assert main(["user", "--database-url", url, "add", "op", "--role", "operator",
                 "--password-stdin"]) == 0  # fmt: skip
    db = Database(url)
    try:
        with db.session() as session:
            user = UserRepo(session).get("op")
            assert user is not None
            tokens = TokenRepo(session)
            first = tokens.issue(user.id, TokenKind.API, ttl_s=3600, name="nvr", now=0.0)
            second = tokens.issue(user.id, TokenKind.API, ttl_s=3600, name="ha")
            tokens.issue(user.id, TokenKind.SESSION, ttl_s=3600)
        capsys.readouterr()
        assert main(["user", "--database-url", url, "token", "list", "--user", "op"]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[0].split("\t")[:3] == ["id", "user", "name"]
        assert [line.split("\t")[:3] for line in lines[1:]] == [
            [str(first.row.id), "op", "nvr"],
            [str(second.row.id), "op", "ha"],
        ]
        assert lines[1].split("\t")[4] == "1970-01-01T01:00:00Z"  # expires
        assert first.token not in "\n".join(lines)
        assert main(["user", "--database-url", url, "token", "revoke", str(first.row.id)]) == 0
        assert main(["user", "--database-url", url, "token", "revoke", str(first.row.id)]) == 2
        assert "no API token with id" in capsys.readouterr().err
        assert main(["user", "--database-url", url, "token", "list", "--user", "ghost"]) == 2
        with db.session() as session:
            assert [r.name for r, _ in TokenRepo(session).api_tokens()] == ["ha"]
        monkeypatch.setattr("sys.stdin", io.StringIO("a new long password\n"))
        assert main(["user", "--database-url", url, "password", "op", "--password-stdin"]) == 0
        assert "2 session(s)/token(s) ended" in capsys.readouterr().out
        with db.session() as session:
            op = UserRepo(session).get("op")
            assert op is not None
            assert verify_password(op.password_hash, "a new long password")
            assert TokenRepo(session).list() == []
        actions = [r.action for r in AuditLog(db).records()]
        assert actions == ["user.create", "token.revoke", "user.update"]
    finally:
        db.close()
