"""Unredacted access: audited before granted, refused without a reason or an audit file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vigil.errors import PrivacyError
from vigil.privacy.audit import UnredactedGrant, unredacted_access


def test_audit_line_written_before_grant(tmp_path: Path) -> None:
    audit = tmp_path / "sub" / "audit.jsonl"
    grant = unredacted_access("police request 118", "bob", audit, "out.mp4")
    unredacted_access("second look", "bob", audit, "out2.mp4")
    lines = [json.loads(line) for line in audit.read_text().splitlines()]
    assert len(lines) == 2
    assert lines[0]["actor"] == "bob"
    assert lines[0]["reason"] == "police request 118"
    assert lines[0]["what"] == "out.mp4"
    assert lines[0]["action"] == "unredacted_access"
    assert lines[0]["time"] == grant.time
    assert grant.time.endswith("+00:00")


@pytest.mark.parametrize(
    ("reason", "actor"), [("", "bob"), ("   ", "bob"), ("ok", "bob"), ("a real reason", " ")]
)
def test_refused_without_reason_or_actor(tmp_path: Path, reason: str, actor: str) -> None:
    audit = tmp_path / "audit.jsonl"
    with pytest.raises(PrivacyError):
        unredacted_access(reason, actor, audit, "x")
    assert not audit.exists()


def test_refused_when_audit_cannot_be_written(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(PrivacyError, match="audit file"):
        unredacted_access("valid reason", "bob", blocker / "audit.jsonl", "x")


def test_grant_cannot_be_forged(tmp_path: Path) -> None:
    with pytest.raises(PrivacyError, match="unredacted_access"):
        UnredactedGrant("eve", "x", "because", "now", tmp_path, object())
