"""The server's log over real HTTP: uvicorn with Vigil's log configuration, a real request,
the log as written; secrets in URLs (API tokens, live grants) never reach it."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.api.conftest import Api
from tests.store.conftest import free_port
from vigil.api.logs import REDACTED, redact_query_secrets, server_log_config
from vigil.store import Role

TOKEN = "vgl_secret-token-0123456789"
GRANT = "secret-grant-abcdef"


@pytest.fixture
def log() -> io.StringIO:
    return io.StringIO()


@pytest.fixture
def served(api: Api, log: io.StringIO) -> Iterator[str]:
    """``api`` under uvicorn configured as ``vigil serve`` configures it (log level info),
    its two log handlers writing to ``log`` instead of stdout and stderr."""
    port = free_port()
    log_config = server_log_config()
    for handler in log_config["handlers"].values():
        handler["stream"] = log
    config = uvicorn.Config(api.app, host="127.0.0.1", port=port, log_level="info",
                            log_config=log_config, lifespan="off")  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def test_access_log_has_no_query_secrets(api: Api, served: str, log: io.StringIO) -> None:
    api.add_user("wall", Role.VIEWER)
    with httpx.Client(base_url=served) as client:
        client.get(f"/api/cameras/front/live.mjpeg?fps=5&grant={GRANT}")  # 401: no login
        client.get(f"/api/events?limit=5&token={TOKEN}")
        client.delete(f"/api/cameras/front/live/unredacted/{GRANT}")
    ws_url = served.replace("http://", "ws://") + f"/api/ws/events?token={TOKEN}"
    with pytest.raises(InvalidStatus):  # refused handshake: logged by uvicorn's server log
        connect(ws_url, open_timeout=10).close()
    deadline = time.monotonic() + 10
    while "WebSocket /api/ws/events" not in log.getvalue():
        assert time.monotonic() < deadline, f"no WebSocket line:\n{log.getvalue()}"
        time.sleep(0.05)
    text = log.getvalue()
    assert "GET /api/cameras/front/live.mjpeg?fps=5&grant=[redacted] HTTP/1.1" in text, text
    assert "GET /api/events?limit=5&token=[redacted]" in text
    assert "/live/unredacted/[redacted]" in text
    assert f"/api/ws/events?token={REDACTED}" in text
    assert TOKEN not in text
    assert GRANT not in text


@pytest.mark.parametrize(("line", "expected"), [
    ("GET /a?token=abc HTTP/1.1", "GET /a?token=[redacted] HTTP/1.1"),
    ("/a?x=1&grant=g&fps=5", "/a?x=1&grant=[redacted]&fps=5"),
    ("/a?%74oken=abc", "/a?%74oken=[redacted]"),  # the server decodes the key to token
    ("/a?tokens=keep&grantee=keep", "/a?tokens=keep&grantee=keep"),
    ("/a?token=", "/a?token="),
    ("token=free text, no query", "token=free text, no query"),
])  # fmt: skip
def test_redact_query_secrets(line: str, expected: str) -> None:
    assert redact_query_secrets(line) == expected
