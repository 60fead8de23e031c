"""The camera status line of the web UI (``statusText`` of ``live.js``), run in Node.

Live tiles and the camera page show it; a camera whose analysis is online while its recorder
fails must say so ("recording failed: disk full"), not just "online".
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from vigil.web import STATIC_DIR


def status_text(status: dict[str, object]) -> str:
    node = shutil.which("node")
    if node is None:
        reason = "node is not installed (Debian: apt-get install nodejs)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    script = ("import { statusText } from './live.js';"
              f"process.stdout.write(statusText({json.dumps(status)}));")  # fmt: skip
    done = subprocess.run([node, "--input-type=module", "-e", script], cwd=STATIC_DIR / "js",
                          capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    return done.stdout


BASE = {"online": True, "state": "running", "decode_fps": 5.0, "last_frame_time": None}


def test_failed_recording_is_shown_with_its_reason() -> None:
    text = status_text({**BASE, "recording": "failed",
                        "recording_error": "recording failed: disk full"})  # fmt: skip
    assert text == "online · 5.0 fps · no frame yet · recording failed: disk full"
    offline = status_text({**BASE, "online": False, "state": "offline", "recording": "failed",
                           "recording_error": None})  # fmt: skip
    assert offline == "offline (offline) · no frame yet · recording failed"


@pytest.mark.parametrize("recording", ["recording", "reconnecting", None])
def test_other_recording_states_add_nothing(recording: str | None) -> None:
    assert status_text({**BASE, "recording": recording}) == "online · 5.0 fps · no frame yet"
