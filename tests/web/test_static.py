"""The web UI's files as the server serves them: public index and static files (they hold no
data), security headers on them and only on them, no traversal, packaged with vigil."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the server extra is not installed")

from fastapi import FastAPI

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from fastapi.testclient import TestClient

from vigil.api import PUBLIC_PATHS, ApiSettings, CameraStatus, StaticRuntime, create_app
from vigil.config.models import RedactConfig
from vigil.privacy import Redactor
from vigil.store import Database
from vigil.web import PUBLIC_UI_PATHS, SECURITY_HEADERS, STATIC_DIR


def _no_redactor(config: RedactConfig, size: tuple[int, int]) -> Redactor:
    raise AssertionError("the UI's files need no redaction")


@pytest.fixture
def app(tmp_path: Path) -> Iterator[FastAPI]:
    db = Database(f"sqlite:///{tmp_path / 'vigil.db'}")
    db.migrate()
    runtime = StaticRuntime({"door": CameraStatus("door", True, "running")})
    yield create_app(ApiSettings(secure_cookies=False, job_workers=0), db, runtime,
                     data_dir=tmp_path / "data",
                     redactor_factory=_no_redactor)  # fmt: skip
    db.close()


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


def static_files() -> list[str]:
    files = (p for p in STATIC_DIR.rglob("*") if p.is_file())
    return sorted(p.relative_to(STATIC_DIR).as_posix() for p in files)


def test_public_ui_paths_are_exactly_the_index() -> None:
    """Deliberately: the UI adds "/" (the shell) to the public routes and nothing else; its
    static files are a mount beside it. A new public UI route must be added here on purpose."""
    assert {"/"} == PUBLIC_UI_PATHS
    assert PUBLIC_UI_PATHS <= PUBLIC_PATHS
    assert {p for p in PUBLIC_PATHS if not p.startswith("/api/")} == {"/"}


@pytest.mark.parametrize("path", ["/", *[f"/static/{f}" for f in static_files()]])
def test_ui_files_are_public_and_carry_security_headers(client: TestClient, path: str) -> None:
    reply = client.get(path)
    assert reply.status_code == 200, path
    for name, value in SECURITY_HEADERS.items():
        assert reply.headers[name] == value, (path, name)


@pytest.mark.parametrize(
    ("suffix", "media"),
    [
        (".js", "javascript"),
        (".css", "text/css"),
        (".html", "text/html"),
        (".svg", "image/svg+xml"),
    ],
)
def test_ui_files_have_the_right_media_type(client: TestClient, suffix: str, media: str) -> None:
    """ES modules only load with a JavaScript media type (and nosniff is on)."""
    name = next(f for f in static_files() if f.endswith(suffix))
    assert media in client.get(f"/static/{name}").headers["content-type"]


def test_api_responses_do_not_get_the_ui_headers(client: TestClient) -> None:
    """The UI's CSP is for the UI; API responses carry the API's own headers
    (``vigil.api.headers``, tested in ``tests/api/test_hardening.py``)."""
    for path in ("/api/health", "/api/openapi.json"):
        reply = client.get(path)
        assert reply.status_code == 200
        ui_policy = SECURITY_HEADERS["Content-Security-Policy"]
        assert reply.headers.get("content-security-policy") != ui_policy, path


@pytest.mark.parametrize("path", ["/static/../vigil.db", "/static/%2e%2e/%2e%2e/app.py",
                                  "/static/js/../../__init__.py", "/static/nope.js", "/index.html",
                                  "/api/anything"])  # fmt: skip
def test_nothing_else_is_public(client: TestClient, path: str) -> None:
    reply = client.get(path)
    assert reply.status_code in (401, 404), (path, reply.status_code)
    assert "import " not in reply.text
    assert "SQLite" not in reply.text


def test_the_shell_has_no_inline_script_or_style() -> None:
    """The CSP forbids inline code; a slip would break the page in every browser."""
    html = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    assert re.search(r"<script(?![^>]*\bsrc=)", html) is None
    assert " style=" not in html
    assert "<style" not in html
    for js in STATIC_DIR.rglob("*.js"):
        text = js.read_text(encoding="utf-8")
        assert ".innerHTML" not in text, js  # DOM built with createElement only
        assert "setAttribute('style'" not in text, js
        assert "http://" not in text, js  # nothing from elsewhere
        assert "https://" not in text, js


def test_static_files_are_package_data() -> None:
    """pyproject ships vigil/web/static/** in the wheel and sdist."""
    pyproject = (Path(__file__).parents[2] / "pyproject.toml").read_text(encoding="utf-8")
    assert '"web/static/**/*"' in pyproject
    expected = {"index.html", "app.css", "favicon.svg", "js/app.js", "js/api.js", "js/router.js"}
    assert expected <= set(static_files())


def test_csp_lets_the_live_video_player_work() -> None:
    """mse.js plays a MediaSource (a blob: URL) fed from a WebSocket to the same server; the
    rest of the policy stays closed (no inline or foreign script)."""
    parts = [p.split() for p in SECURITY_HEADERS["Content-Security-Policy"].split(";")]
    policy = {words[0]: set(words[1:]) for words in parts if words}
    assert "blob:" in policy["media-src"]
    assert {"'self'", "ws:", "wss:"} <= policy["connect-src"]
    assert policy["script-src"] == {"'self'"}
    assert policy["default-src"] == {"'self'"}
