"""The live-view endpoints on the real runtime: a ``Supervisor`` running the synthetic scene
(real time, motion-blob detector, real tracker and line), read through the API."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import PASSWORD
from tests.runtime.test_supervisor import LINE, fast_backoff, make_config, make_db, wait_for
from vigil.api import ApiSettings, create_app
from vigil.config.models import RedactConfig
from vigil.privacy import FaceDetector, Redactor, build_redactor
from vigil.runtime.serve import Supervisor
from vigil.store import Role, UserRepo

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from fastapi.testclient import TestClient


@pytest.fixture
def served(tmp_path: Path, face_detector: FaceDetector) -> Iterator[tuple[TestClient, Supervisor]]:
    from vigil.api.auth import hash_password

    config = make_config(tmp_path, {
        "a": {"sources": [{"url": "synthetic://?width=640&height=360&fps=10&duration=60"}],
              "lines": LINE},
    })  # fmt: skip
    db = make_db(tmp_path)
    with db.session() as session:
        UserRepo(session).add("val", Role.VIEWER, hash_password(PASSWORD))
    supervisor = Supervisor(config, db=db, backoff=fast_backoff)

    def factory(config: RedactConfig, size: tuple[int, int]) -> Redactor:
        return build_redactor(config, size, face_detector=face_detector)

    app = create_app(ApiSettings(secure_cookies=False, job_workers=0), db, supervisor,
                     data_dir=tmp_path / "data", redactor_factory=factory)  # fmt: skip
    client = TestClient(app)
    assert client.post("/api/login", json={"name": "val", "password": PASSWORD}).status_code == 200
    supervisor.start()
    try:
        yield client, supervisor
    finally:
        supervisor.stop()
        client.close()
        db.close()


def test_overlay_shows_the_running_cameras_tracks_and_counts(
    served: tuple[TestClient, Supervisor],
) -> None:
    client, _ = served
    seen: list[dict[str, Any]] = []

    def tracked() -> bool:
        body = client.get("/api/cameras/a/overlay").json()
        seen.append(body)
        return bool(body["tracks"])

    wait_for(tracked, 20, "the scene's walkers appear in the overlay")
    body = seen[-1]
    assert (body["width"], body["height"]) == (640, 360)
    assert body["time"] is not None
    for track in body["tracks"]:
        assert set(track) == {"id", "label", "score", "box"}
        assert all(0.0 <= v <= 1.0 for v in track["box"])
    assert set(body["lines"]) == {"middle"}
    assert body["counts"]["lines"]["middle"]["total"].keys() == {"a_to_b", "b_to_a"}

    def crossed() -> bool:
        total = client.get("/api/cameras/a/overlay").json()["counts"]["lines"]["middle"]
        return sum(total["total"].values()) > 0

    wait_for(crossed, 30, "a walker crosses the line and the live counts rise")
    assert client.get("/api/cameras/zz/overlay").status_code == 404

    def stored() -> bool:  # counts are written per frame with a rule hit: seconds, not minutes
        points = client.get("/api/counts", params={"camera": "a", "period": "minute"}).json()
        return sum(p["count"] for p in points) > 0

    wait_for(stored, 3, "the crossing is in the database")
