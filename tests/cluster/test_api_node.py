"""``/api/cameras`` says which cluster node each camera runs on now (null on one host)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tests.api.conftest import build_api
from vigil.privacy import Redactor
from vigil.store import Database, Role


def _no_redactor(*_args: object) -> Redactor:
    raise AssertionError("listing cameras needs no redaction")


def test_the_camera_list_shows_the_node_a_camera_runs_on(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'vigil.db'}")
    db.migrate()
    api = build_api(db, tmp_path / "data", _no_redactor)
    try:
        front = next(s for s in api.runtime.cameras() if s.name == "front")
        api.runtime.set_status(dataclasses.replace(front, node="node-2"))
        viewer = api.login("vera", Role.VIEWER)
        cameras = {c["name"]: c for c in viewer.get("/api/cameras").json()}
        assert cameras["front"]["node"] == "node-2"
        assert cameras["back"]["node"] is None
    finally:
        api.close()
        db.close()
