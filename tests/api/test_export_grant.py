"""An unredacted export is re-checked when its job runs, not only when it is asked for.

The job may run minutes (a queue) or a restart later; an operator demoted, disabled, given a
new password or a narrower scope in between must not get unredacted pixels. The job fails with
403 ``grant_revoked`` naming why, the refusal is audited, no export file is written and the
worker opens no unredacted grant (the local unredacted-access log has the request's line only).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import T0, Api, build_api
from vigil.api.app import JOB_HANDLERS
from vigil.api.exports import grant_refusal
from vigil.api.jobs import JobRunner
from vigil.api.state import SYSTEM_ACTOR
from vigil.config.models import RedactConfig
from vigil.privacy import FaceDetector, Redactor, build_redactor
from vigil.store import AuditRepo, Database, JobRepo, Role

REASON = "police request 118"


@pytest.fixture
def idle_api(tmp_path: Path, face_detector: FaceDetector) -> Iterator[Api]:
    """An API whose jobs run only when the test says so (``job_workers=0``)."""
    db = Database(f"sqlite:///{tmp_path / 'vigil.db'}")
    db.migrate()

    def factory(config: RedactConfig, size: tuple[int, int]) -> Redactor:
        return build_redactor(config, size, face_detector=face_detector)

    built = build_api(db, tmp_path / "data", factory, job_workers=0)
    yield built
    built.close()
    db.close()


def _queue(api: Api) -> tuple[dict[str, Any], Any]:
    """An operator's unredacted export of ``front``, queued; (the job, the admin's client)."""
    api.add_segment("front", T0)
    admin = api.login("ada", Role.ADMIN)
    operator = api.login("op", Role.OPERATOR)
    made = operator.post(
        "/api/exports",
        json={
            "camera": "front",
            "start": T0,
            "end": T0 + 1.5,
            "unredacted": True,
            "reason": REASON,
        },
    )
    assert made.status_code == 202, made.text
    return made.json(), admin


def _run(api: Api, job: dict[str, Any]) -> dict[str, Any]:
    assert JobRunner(api.app.state.vigil, JOB_HANDLERS, workers=0).run_next()
    admin = api.login("ada")
    reply = admin.get(str(job["url"]))
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


@pytest.mark.parametrize(("change", "why"), [
    ({"role": "viewer"}, "'viewer', which sees redacted media only"),
    ({"disabled": True}, "is disabled"),
    ({"cameras": ["back"]}, "no longer in the camera scope"),
    ({"password": "another long password"}, "account of 'op' changed"),
    ({"role": "admin"}, "account of 'op' changed"),  # any change ends a grant, as live ones
])  # fmt: skip
def test_an_export_of_a_changed_account_fails_when_its_job_runs(
    idle_api: Api, change: dict[str, Any], why: str
) -> None:
    job, admin = _queue(idle_api)
    assert admin.patch("/api/users/op", json=change).status_code == 200
    done = _run(idle_api, job)
    assert done["state"] == "failed", done
    assert done["error_code"] == "grant_revoked"
    assert why in done["error"]
    assert not list((idle_api.data_dir / "exports").glob("*.mp4")), "no pixels were exported"
    log = (idle_api.data_dir / "audit" / "unredacted.jsonl").read_text()
    assert log.count(REASON) == 1, "the worker opened no grant of its own"
    with idle_api.db.session() as session:
        (denied,) = AuditRepo(session).records(action="unredacted.denied")
    assert denied.actor == SYSTEM_ACTOR
    assert denied.details["user"] == "op"
    assert denied.details["job"] == job["id"]
    assert why in denied.details["why"]


def test_an_export_of_an_unchanged_account_runs(idle_api: Api) -> None:
    job, admin = _queue(idle_api)
    assert admin.patch("/api/users/ada", json={"cameras": ["front"]}).status_code == 200
    done = _run(idle_api, job)
    assert done["state"] == "done", done
    assert done["result"]["redaction"] == "none"
    log = (idle_api.data_dir / "audit" / "unredacted.jsonl").read_text()
    assert log.count(REASON) == 2, "the request's grant and the worker's"


def test_a_job_queued_before_accounts_were_kept_still_checks_the_role(idle_api: Api) -> None:
    """A job an older server queued has no account digest: the role is checked all the same."""
    job, admin = _queue(idle_api)
    with idle_api.db.session() as session:
        row = JobRepo(session).get(job["id"])
        assert row is not None
        assert "account" in row.params
        row.params = {k: v for k, v in row.params.items() if k != "account"}
    assert admin.patch("/api/users/op", json={"role": "viewer"}).status_code == 200
    done = _run(idle_api, job)
    assert (done["state"], done["error_code"]) == ("failed", "grant_revoked")
    assert grant_refusal(None, "front", None) == "the user no longer exists"
