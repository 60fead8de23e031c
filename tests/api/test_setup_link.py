"""First-run setup through the one-time link of ``vigil serve``: only its holder may create
the first admin, and a wrong token is refused before any password is hashed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.conftest import PASSWORD, Api, build_api
from vigil.config.models import RedactConfig
from vigil.privacy import FaceDetector, Redactor, build_redactor
from vigil.store import Database, UserRepo

TOKEN = "a-one-time-setup-token"


@pytest.fixture
def linked_api(tmp_path: Path, face_detector: FaceDetector) -> Iterator[Api]:
    db = Database(f"sqlite:///{tmp_path / 'vigil.db'}")
    db.migrate()

    def factory(config: RedactConfig, size: tuple[int, int]) -> Redactor:
        return build_redactor(config, size, face_detector=face_detector)

    built = build_api(db, tmp_path / "data", factory, setup_token=TOKEN)
    yield built
    built.close()
    db.close()


@pytest.mark.parametrize("token", [None, "", "a-one-time-setup-tokem", TOKEN + "x"])
def test_setup_without_the_link_is_refused(linked_api: Api, token: str | None) -> None:
    body = {"name": "intruder", "password": PASSWORD, **({"token": token} if token is not None
                                                        else {})}  # fmt: skip
    refused = linked_api.client().post("/api/setup", json=body)
    assert refused.status_code == 403
    assert "link" in refused.json()["error"]["message"]
    with linked_api.db.session() as session:
        assert UserRepo(session).count() == 0


def test_setup_with_the_link_creates_the_admin(linked_api: Api) -> None:
    client = linked_api.client()
    made = client.post("/api/setup", json={"name": "root", "password": PASSWORD, "token": TOKEN})
    assert made.status_code == 201
    assert made.json()["role"] == "admin"
    again = client.post("/api/setup", json={"name": "two", "password": PASSWORD, "token": TOKEN})
    assert again.status_code == 409
