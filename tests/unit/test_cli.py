"""The ``vigil`` command line itself: option placement and missing optional packages."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import pytest

from vigil.cli import build_parser, main, missing_dependency_message


@pytest.mark.parametrize(
    "argv",
    [
        ["user", "--config", "c.yaml", "add", "alice", "--role", "admin"],
        ["user", "add", "alice", "--role", "admin", "--config", "c.yaml"],
        ["user", "add", "--config", "c.yaml", "alice", "--role", "admin"],
    ],
)
def test_shared_options_work_before_and_after_the_action(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert (args.action, args.name, args.config, args.database_url) == (
        "add", "alice", "c.yaml", None,
    )  # fmt: skip


@pytest.mark.parametrize(
    "argv",
    [
        ["audit", "--database-url", "sqlite:///x.db", "verify"],
        ["audit", "verify", "--database-url", "sqlite:///x.db"],
    ],
)
def test_audit_takes_the_database_before_and_after_verify(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert (args.config, args.database_url) == (None, "sqlite:///x.db")


def test_config_and_database_url_together_are_refused_wherever_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'vigil.db'}"
    assert main(["user", "--config", "c.yaml", "list", "--database-url", url]) == 2
    assert "not both" in capsys.readouterr().err
    assert not (tmp_path / "vigil.db").exists()


def test_user_add_with_the_config_after_the_action_writes_that_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "cameras.yaml"
    config.write_text(f"data_dir: {tmp_path / 'data'}\n", encoding="utf-8")
    monkeypatch.setattr("sys.stdin", io.StringIO("a long password\n"))
    assert main(["user", "add", "alice", "--role", "admin", "--config", str(config),
                 "--password-stdin"]) == 0  # fmt: skip
    assert (tmp_path / "data" / "vigil.db").is_file()
    capsys.readouterr()
    assert main(["user", "list", "--config", str(config)]) == 0
    assert capsys.readouterr().out.startswith("alice\tadmin\tenabled")


def _raise(name: str) -> int:
    raise ModuleNotFoundError(f"No module named {name!r}", name=name)


@pytest.mark.parametrize(("package", "extra"), [("matplotlib", "bench"), ("ray", "cluster")])
def test_a_missing_optional_package_names_its_extra(
    package: str, extra: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    parser = build_parser()
    args = parser.parse_args(["models", "list"])
    args.handler = lambda _args: _raise(f"{package}.sub")
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", lambda *_a, **_k: args)
    assert main(["models", "list"]) == 2
    err = capsys.readouterr().err
    assert f"pip install 'vigil[{extra}]'" in err
    assert "Traceback" not in err


def test_a_missing_base_package_asks_for_a_reinstall() -> None:
    message = missing_dependency_message(ModuleNotFoundError("x", name="cryptography.hazmat"))
    assert "'cryptography'" in message
    assert "pip install --force-reinstall vigil" in message


def test_batch_demo_options_need_no_serve(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--out", "somewhere"]) == 2
    assert "--no-serve" in capsys.readouterr().err
