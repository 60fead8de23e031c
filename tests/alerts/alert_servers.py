"""Real servers for the alert tests: Mosquitto brokers and an HTTP receiver, on 127.0.0.1.

Brokers are started from the Debian ``mosquitto`` binary in a temporary folder on a free
port. Without the binary the tests skip with the reason; under ``CI=true`` they fail, because
CI installs it (``scripts/test.sh``) and a silent skip there would hide a broken test.
"""

from __future__ import annotations

import getpass
import json
import os
import queue
import shutil
import socket
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion


def require_binary(name: str, *extra_dirs: str) -> str:
    """The path of an executable, or skip (fail under CI=true) naming the missing package."""
    found = shutil.which(name) or next(
        (str(Path(d) / name) for d in extra_dirs if (Path(d) / name).exists()), None
    )
    if found:
        return found
    reason = f"{name} is not installed (Debian: apt-get install mosquitto)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


class Broker:
    """A Mosquitto process; ``stop``/``start`` restart it on the same port and folder."""

    def __init__(
        self, folder: Path, *, passwords: dict[str, str] | None = None, persistence: bool = False
    ) -> None:
        self.binary = require_binary("mosquitto", "/usr/sbin")
        self.folder = folder
        self.port = free_port()
        lines = [
            f"listener {self.port} 127.0.0.1",
            f"user {getpass.getuser()}",
            "max_queued_messages 100000",
        ]
        if passwords:
            pwfile = folder / "passwords"
            tool = require_binary("mosquitto_passwd")
            for i, (user, password) in enumerate(passwords.items()):
                flags = ["-c"] if i == 0 else []
                subprocess.run(
                    [tool, "-b", *flags, str(pwfile), user, password],
                    check=True,
                    capture_output=True,
                )
            lines += ["allow_anonymous false", f"password_file {pwfile}"]
        else:
            lines.append("allow_anonymous true")
        if persistence:
            lines += ["persistence true", f"persistence_location {folder}/"]
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        with (self.folder / "broker.log").open("ab") as log:  # the child keeps its own copy
            self.process = subprocess.Popen(
                [self.binary, "-c", str(self.conf)], stdout=log, stderr=subprocess.STDOUT
            )
        wait_port(self.port)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()  # SIGTERM: mosquitto saves its persistence file
            self.process.wait(10)
            self.process = None


class Subscriber:
    """A paho client collecting messages; ``persistent`` keeps its session over restarts."""

    def __init__(
        self,
        port: int,
        topics: list[str],
        *,
        client_id: str = "",
        persistent: bool = False,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=not persistent
        )
        if username:
            self.client.username_pw_set(username, password)
        self.client.reconnect_delay_set(1, 1)
        ready = threading.Event()

        def on_connect(client: mqtt.Client, *_: Any) -> None:
            client.subscribe([(t, 1) for t in topics])

        def on_subscribe(*_: Any) -> None:
            ready.set()

        def on_message(_c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
            self.messages.put(msg)

        self.client.on_connect = on_connect
        self.client.on_subscribe = on_subscribe
        self.client.on_message = on_message
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        if not ready.wait(10):
            raise RuntimeError("subscriber did not get its SUBACK")

    def take(self, topic: str, timeout: float = 5.0) -> mqtt.MQTTMessage:
        """The next message on ``topic`` (others are dropped while waiting)."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = self.messages.get(timeout=left)
            except queue.Empty:
                break
            if msg.topic == topic:
                return msg
        raise AssertionError(f"no message on {topic} within {timeout} s")

    def drain(self, quiet_s: float = 0.3) -> list[mqtt.MQTTMessage]:
        """Every message until none arrives for ``quiet_s`` seconds."""
        out: list[mqtt.MQTTMessage] = []
        while True:
            try:
                out.append(self.messages.get(timeout=quiet_s))
            except queue.Empty:
                return out

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    time: float


@dataclass
class Receiver:
    """An HTTP server in a thread answering POSTs from a script of (status, headers)."""

    port: int
    script: deque[tuple[int, dict[str, str]]] = field(default_factory=deque)
    requests: list[Received] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook?x=1"

    def payloads(self) -> list[dict[str, Any]]:
        return [json.loads(r.body) for r in self.requests]
