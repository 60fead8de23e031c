"""Fixtures of the alert tests: real Mosquitto brokers and an HTTP receiver (see alert_servers)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from alert_servers import Broker, Received, Receiver


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    server = Broker(tmp_path_factory.mktemp("mosquitto"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def auth_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    server = Broker(
        tmp_path_factory.mktemp("mosquitto-auth"), passwords={"vigil": "correct horse battery"}
    )
    yield server
    server.stop()


@pytest.fixture
def restartable_broker(tmp_path: Path) -> Iterator[Broker]:
    """A broker of its own that keeps sessions across restarts (persistence on)."""
    server = Broker(tmp_path, persistence=True)
    yield server
    server.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(port=0)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            assert self.path == "/hook?x=1"
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.requests.append(Received(dict(self.headers.items()), body, time.monotonic()))
            status, headers = state.script.popleft() if state.script else (204, {})
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.server, state.port = server, int(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
