"""Traffic zone counters end to end: a ``Supervisor`` running the synthetic scene (motion-blob
detector, real tracker) with a calibrated zone, read back through the API: the live overlay
counts carry speeds per class, and speeding hits reach the database's per-class counters."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from tests.api.conftest import PASSWORD
from tests.runtime.test_supervisor import fast_backoff, make_config, make_db, wait_for
from vigil.api import ApiSettings, create_app
from vigil.api.auth import hash_password
from vigil.runtime.serve import Supervisor
from vigil.store import Role, UserRepo

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from fastapi.testclient import TestClient

#: The whole 640×360 view as a 64 m × 36 m rectangle: 10 px per metre. Any walker moving
#: faster than 0.5 km/h (1.4 px/s) speeds.
ROAD = {
    "road": {
        "polygon": [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]],
        "calibration": {"distances": [64, 36, 64, 36]},
        "speed_limit": 0.5,
    }
}


def test_speeds_and_speeding_counts_through_the_api(tmp_path: Path) -> None:
    config = make_config(tmp_path, {
        "a": {"sources": [{"url": "synthetic://?width=640&height=360&fps=10&duration=60"}],
              "zones": ROAD},
    })  # fmt: skip
    db = make_db(tmp_path)
    with db.session() as session:
        UserRepo(session).add("val", Role.VIEWER, hash_password(PASSWORD))
    supervisor = Supervisor(config, db=db, backoff=fast_backoff)
    app = create_app(ApiSettings(secure_cookies=False, job_workers=0), db, supervisor,
                     data_dir=tmp_path / "data", redactor_factory=None)  # fmt: skip
    client = TestClient(app)
    try:
        login = client.post("/api/login", json={"name": "val", "password": PASSWORD})
        assert login.status_code == 200
        supervisor.start()
        zone: dict[str, Any] = {}

        def speeding() -> bool:
            counts = client.get("/api/cameras/a/overlay").json()["counts"]
            zone.update(counts.get("zones", {}).get("road", {}))  # {} before the first frame
            return zone.get("speeding_events", 0) > 0 and zone["speed"]["tracks"] > 0

        wait_for(speeding, 40, "a walker is measured and speeds in the calibrated zone")
        assert zone["speed"]["unit"] == "km/h"
        assert zone["speed"]["mean"] > 0.5
        assert set(zone["speed"]["by_class"]) == {"motion"}
        assert zone["events_by_class"]["speeding"]["motion"] == zone["speeding_events"]

        def stored() -> bool:
            points = client.get("/api/counts", params={
                "camera": "a", "period": "minute", "metric": "speeding", "label": "motion",
            }).json()  # fmt: skip
            return sum(p["count"] for p in points) > 0

        wait_for(stored, 5, "the speeding hits are in the database, per class")
    finally:
        supervisor.stop()
        client.close()
        db.close()
