"""An open live stream does not outlive its viewer's rights: demoting, disabling or a new
password ends the user's unredacted-live grants and their streams, whether the change comes
through the API (this process) or ``vigil user`` (the database only). Over real HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.api.conftest import Api
from tests.api.test_http_server import _serve
from tests.api.test_live_view import GRANTS, LIVE, Feeder, http_login, read_parts, state_of
from vigil.api.state import SYSTEM_ACTOR
from vigil.cli import main
from vigil.store import AuditRepo, Role

IMAGE = np.full((64, 96, 3), 150, np.uint8)


@pytest.fixture
def base_url(api: Api) -> Iterator[str]:
    yield from _serve(api)


def change_user(how: str, name: str, admin: httpx.Client, db_url: str) -> str:
    """Apply ``how`` to user ``name``; the audit actor of the grant's end it should cause."""
    patches = {"api-demote": {"role": "viewer"}, "api-disable": {"disabled": True},
               "api-password": {"password": "a brand new password"}}  # fmt: skip
    if how in patches:
        assert admin.patch(f"/api/users/{name}", json=patches[how]).status_code == 200
        return "root"
    verb = {"cli-demote": ["role", name, "viewer"], "cli-disable": ["disable", name]}[how]
    assert main(["user", "--database-url", db_url, *verb]) == 0
    return SYSTEM_ACTOR


def stream_ends(chunks: Iterator[bytes], timeout: float = 5.0) -> int:
    """Read the body to its end (the server closes it); the parts still received."""
    deadline, parts = time.monotonic() + timeout, 0
    for chunk in chunks:
        assert time.monotonic() < deadline, "the stream outlived the change of its user"
        parts += chunk.count(b"--frame\r\n")
    return parts


@pytest.mark.parametrize("how", ["api-demote", "api-disable", "api-password", "cli-demote",
                                 "cli-disable"])  # fmt: skip
def test_a_change_of_the_user_ends_the_unredacted_stream_and_grant(
    api: Api, base_url: str, tmp_path: Path, how: str
) -> None:
    api.add_user("root", Role.ADMIN)
    api.add_user("op", Role.OPERATOR)
    api.add_user("op2", Role.OPERATOR)
    state = state_of(api)
    with closing(http_login(base_url, "op")) as op, closing(http_login(base_url, "op2")) as op2, \
            closing(http_login(base_url, "root")) as admin:  # fmt: skip
        grant = op.post(GRANTS, json={"reason": "incident 21"}).json()["grant"]
        other = op2.post(GRANTS, json={"reason": "incident 22"}).json()["grant"]
        with Feeder(api, "front", IMAGE), op.stream("GET", LIVE, params={"grant": grant}) as reply:
            assert reply.status_code == 200
            chunks = reply.iter_bytes()
            read_parts(chunks, 2)  # unredacted frames flow
            actor = change_user(how, "op", admin, f"sqlite:///{tmp_path / 'vigil.db'}")
            stream_ends(chunks)
        assert state.grants.valid(grant, "op", "front") is None, "the grant is ended"
        assert state.grants.valid(other, "op2", "front") is not None, "others keep theirs"
    with api.db.session() as session:
        ends = AuditRepo(session).records(action="camera.live.unredacted.end")
    assert [(r.actor, r.details["user"]) for r in ends] == [(actor, "op")]
    assert ends[0].details["cause"] in ("user.update", "account changed")
    assert grant not in str(ends[0].details), "the audit log names the grant by a hash"


def test_a_grant_of_a_changed_account_cannot_start_a_stream(
    api: Api, base_url: str, tmp_path: Path
) -> None:
    """Checked before a stream starts too: even a promotion (admins may watch unredacted)
    made by the CLI ends the grant, which rests on the account as it was."""
    api.add_user("op", Role.OPERATOR)
    api.runtime.set_frame("front", IMAGE)
    with closing(http_login(base_url, "op")) as op:
        grant = op.post(GRANTS, json={"reason": "incident 23"}).json()["grant"]
        assert main(["user", "--database-url", f"sqlite:///{tmp_path / 'vigil.db'}",
                     "role", "op", "admin"]) == 0  # fmt: skip
        refused = op.get(LIVE, params={"grant": grant})
        assert refused.status_code == 403, refused.text
        assert state_of(api).grants.valid(grant, "op", "front") is None


def test_a_disabled_users_redacted_stream_ends(api: Api, base_url: str, tmp_path: Path) -> None:
    api.add_user("val", Role.VIEWER)
    val = http_login(base_url, "val")
    with closing(val), Feeder(api, "front", IMAGE), val.stream("GET", LIVE) as reply:
        chunks = reply.iter_bytes()
        read_parts(chunks, 2)
        assert main(["user", "--database-url", f"sqlite:///{tmp_path / 'vigil.db'}",
                     "disable", "val"]) == 0  # fmt: skip
        stream_ends(chunks)


def test_logging_out_ends_the_stream(api: Api, base_url: str) -> None:
    """The stream re-checks the session it was opened with, not only the account."""
    api.add_user("val", Role.VIEWER)
    val = http_login(base_url, "val")
    with closing(val), Feeder(api, "front", IMAGE), val.stream("GET", LIVE) as reply:
        chunks = reply.iter_bytes()
        read_parts(chunks, 2)
        assert val.post("/api/logout").status_code == 204
        stream_ends(chunks)
