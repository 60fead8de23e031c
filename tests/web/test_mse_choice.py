"""Which stream the live player plays (``choose`` of ``mse.js``), run in Node.

A granted unredacted view may be the camera's own H.264 copied as it is (mode "copy"), in a
Main or High profile the browser may not decode: the player then asks the server for the
re-encoded stream (``?encode=1``) instead of showing nothing, and says why.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Any

import pytest

from vigil.web import STATIC_DIR

PATH = "/api/cameras/door/live.mp4ws?grant=g1&width=1280"


def choose(head: dict[str, str], path: str, playable: list[str]) -> dict[str, Any]:
    """``choose(head, path, canPlay)`` where the browser plays the codecs in ``playable``."""
    node = shutil.which("node")
    if node is None:
        reason = "node is not installed (Debian: apt-get install nodejs)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    script = ("import { choose } from './mse.js';"
              f"const playable = {json.dumps(playable)};"
              f"const out = choose({json.dumps(head)}, {json.dumps(path)},"
              " (mime) => playable.some((c) => mime.includes(c)));"
              "process.stdout.write(JSON.stringify(out));")  # fmt: skip
    done = subprocess.run([node, "--input-type=module", "-e", script], cwd=STATIC_DIR / "js",
                          capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    out: dict[str, Any] = json.loads(done.stdout)
    return out


def head(codec: str, mode: str) -> dict[str, str]:
    return {"codec": codec, "mime": f'video/mp4; codecs="{codec}"', "mode": mode}


def test_a_copy_the_browser_cannot_play_is_asked_for_re_encoded() -> None:
    out = choose(head("avc1.640028", "copy"), PATH, ["avc1.42"])
    assert out["action"] == "reencode"
    assert out["path"] == PATH + "&encode=1"
    assert "avc1.640028" in out["reason"]


def test_a_playable_copy_is_played() -> None:
    out = choose(head("avc1.640028", "copy"), PATH, ["avc1.42", "avc1.64"])
    assert out == {"action": "play"}


def test_an_unplayable_encoded_stream_fails_with_its_reason_without_looping() -> None:
    # Already re-encoded (or asked for it): nothing better to ask for.
    assert choose(head("avc1.42C01E", "encode"), PATH, [])["action"] == "fail"
    again = choose(head("avc1.640028", "copy"), PATH + "&encode=1", ["avc1.42"])
    assert again["action"] == "fail"
    assert "avc1.640028" in again["reason"]
    bare = choose(head("avc1.640028", "copy"), "/api/cameras/door/live.mp4ws", ["avc1.42"])
    assert bare["path"] == "/api/cameras/door/live.mp4ws?encode=1"
