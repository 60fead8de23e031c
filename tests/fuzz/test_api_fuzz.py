"""Schemathesis against a real ``vigil serve``: no server error, every answer as the spec says.

A ``vigil serve`` process with a file camera (the demo street, looping in real time), its
first admin made through the setup link it printed, and an API token; Schemathesis then
generates requests for every operation of the served OpenAPI document (valid and invalid
ones), bounded per operation, and checks each reply: no 5xx, a status code, content type
and body the spec declares. Operations that stream for ever, or that would end the fuzzing
credential itself, are left out and say why.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis (the dev extra) is missing")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.alerts.alert_servers import free_port  # noqa: E402
from vigil.media.h264 import Encoding, H264File  # noqa: E402
from vigil.runtime.demo_scene import FPS, HEIGHT, WIDTH, render_frame  # noqa: E402
from vigil.runtime.demo_scene import _script as demo_script  # noqa: E402
from vigil.runtime.demo_scene import background as demo_background  # noqa: E402

PASSWORD = "a fuzzing password"
#: Generated requests per operation: enough to reach every parameter's edge cases (huge
#: integers, odd strings) on each route; the whole run stays within a few minutes.
EXAMPLES = int(os.environ.get("VIGIL_FUZZ_EXAMPLES", "25"))

#: Operations not fuzzed, and why.
LEFT_OUT = {
    r"/live\.mjpeg$": "an endless stream: a fuzzer waits on it for ever",
    r"/api/ws/": "a WebSocket, outside OpenAPI's request/response model",
    r"^/api/logout$": "would end the fuzzing session's credential",
    r"^/api/tokens/\{[^}]+\}$": "DELETE could revoke the fuzzing token itself",
    r"/password$": "a new password revokes the fuzzing token",
}


def _clip(root: Path) -> Path:
    path = root / "street.mp4"
    movers, empty = demo_script(), demo_background()
    with H264File(path, FPS, (WIDTH, HEIGHT), encoding=Encoding(keyframe_s=1.0)) as out:
        for i in range(round(6 * FPS)):
            out.write(render_frame(8.0 + i / FPS, movers, empty))
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """``(base URL, admin API token)`` of a running ``vigil serve``."""
    root = tmp_path_factory.mktemp("fuzz")
    port = free_port()
    config = root / "vigil.yaml"
    config.write_text(
        f"data_dir: {root / 'data'}\n"
        f"server: {{host: 127.0.0.1, port: {port}, secure_cookies: false}}\n"
        "detect: {model: motion}\nrecord: {segment_seconds: 2}\n"
        f"cameras:\n  street:\n    sources: [{{url: {_clip(root)}, loop: true}}]\n"
        "    lines: {door: {points: [[0.42, 0.47], [0.56, 0.47]]}}\n",
        encoding="utf-8",
    )
    log = root / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "vigil.cli", "serve", "--config",
                                    str(config)], stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        token = _admin_token(base, log, process)
        yield base, token
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert "Traceback" not in log.read_text(), log.read_text()[-6000:]


def _admin_token(base: str, log: Path, process: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + 120
    link = None
    while link is None:
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"vigil serve did not start:\n{log.read_text()[-4000:]}")
        link = re.search(r"/#/setup\?token=(\S+)", log.read_text())
        time.sleep(0.2)
    with httpx.Client(base_url=base, timeout=30) as client:
        while True:
            try:
                client.get("/api/health")
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "the API did not answer"
                time.sleep(0.2)
        made = client.post("/api/setup", json={"name": "admin", "password": PASSWORD,
                                               "token": link.group(1)})  # fmt: skip
        assert made.status_code == 201, made.text
        login = client.post("/api/login", json={"name": "admin", "password": PASSWORD})
        client.headers["X-CSRF-Token"] = login.json()["csrf_token"]
        minted = client.post("/api/tokens", json={"name": "fuzz"})
        assert minted.status_code in (200, 201), minted.text
        return str(minted.json()["token"])


def operations(base: str) -> list[object]:
    """The served spec's operations, less the ones ``LEFT_OUT`` names."""
    loaded = schemathesis.openapi.from_url(f"{base}/api/openapi.json")
    for pattern in LEFT_OUT:
        loaded = loaded.exclude(path_regex=pattern)
    return [result.ok() for result in loaded.get_all_operations()]


@pytest.mark.slow
def test_every_operation_answers_as_its_spec_says(server: tuple[str, str]) -> None:
    # Schemathesis' pytest plugin does not run under pytest 9; its Hypothesis strategies do,
    # so each operation gets its own bounded Hypothesis run here, and every failure is listed.
    base, token = server
    checks = [not_a_server_error, status_code_conformance, content_type_conformance,
              response_schema_conformance]  # fmt: skip
    failures: dict[str, str] = {}
    ran = 0
    for operation in operations(base):

        @given(case=operation.as_strategy())  # type: ignore[attr-defined]
        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        def fuzz(case: Any) -> None:
            case.call_and_validate(base_url=base, headers={"Authorization": f"Bearer {token}"},
                                   timeout=60, checks=checks)  # fmt: skip

        try:
            fuzz()
        except Exception as exc:  # a failed check: keep going, report them all
            text = str(exc)  # the check that failed and the request (as curl) come first
            failures[str(operation.label)] = text[:800] + (
                "\n…\n" + text[-400:] if len(text) > 1200 else text[800:]
            )
        ran += 1
    assert ran >= 25, f"only {ran} operations in the spec"
    assert not failures, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())
