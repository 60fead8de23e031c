"""``vigil serve --cluster``: what is refused before anything starts, and how it says so."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from vigil.cli import main
from vigil.commands.serve import with_cluster
from vigil.config.models import VigilConfig

CONFIG = """
detect: {{model: motion}}
data_dir: {data}
{database}
cameras:
  yard:
    sources: [{{url: "synthetic://?fps=10&duration=10"}}]
"""


def _config(tmp_path: Path, database: str = "") -> Path:
    path = tmp_path / "vigil.yaml"
    path.write_text(CONFIG.format(data=tmp_path / "data", database=database))
    return path


def test_cluster_with_sqlite_is_refused_naming_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--config", str(_config(tmp_path)), "--cluster", "local"]) == 2
    err = capsys.readouterr().err
    assert "needs PostgreSQL" in err
    assert "database_url: postgresql://" in err
    assert not (tmp_path / "data" / "vigil.db").exists(), "refused before creating anything"


def test_cluster_without_ray_names_the_extra(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as if not installed
    config = _config(tmp_path, "database_url: postgresql://u@127.0.0.1:1/vigil")
    assert main(["serve", "--config", str(config), "--cluster", "auto"]) == 2
    assert "pip install 'vigil[cluster]'" in capsys.readouterr().err


def test_a_bad_cluster_address_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--config", str(_config(tmp_path)), "--cluster", "nohost"]) == 2
    assert "--cluster 'nohost'" in capsys.readouterr().err


def test_the_cluster_option_sets_the_backend_and_address() -> None:
    config = with_cluster(VigilConfig(), "10.0.0.5:6379")
    assert (config.server.backend, config.cluster.address) == ("ray", "10.0.0.5:6379")


def test_the_replica_option_makes_an_api_replica_of_the_cluster() -> None:
    config = with_cluster(VigilConfig(), "10.0.0.5:6379", replica=True)
    assert (config.server.backend, config.cluster.replica) == ("ray", True)
    assert with_cluster(VigilConfig(), "auto").cluster.replica is False


def test_a_replica_without_a_cluster_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--config", str(_config(tmp_path)), "--replica"]) == 2
    assert "--replica serves the API beside a cluster's head" in capsys.readouterr().err


def test_a_replica_of_a_throwaway_local_cluster_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, "database_url: postgresql://u@127.0.0.1:1/vigil")
    assert main(["serve", "--config", str(config), "--cluster", "local", "--replica"]) == 2
    err = capsys.readouterr().err
    assert "address 'local' starts a new, empty one" in err
    assert not (tmp_path / "data").exists(), "refused before creating anything"
