"""``promtool check metrics`` (Debian's ``prometheus`` package) on Prometheus text.

Without promtool the caller skips with the reason; under ``CI=true`` it fails, because CI
installs it (``scripts/test.sh``) and a silent skip there would hide a broken check.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest


def require_promtool() -> str:
    found = shutil.which("promtool")
    if found:
        return found
    reason = "promtool is not installed (Debian: apt-get install prometheus)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def promtool_complaints(text: bytes) -> str:
    """What ``promtool check metrics`` says about ``text``: empty when it is content.

    Any complaint counts, lint warnings too: promtool reports them with a non-zero status.
    """
    result = subprocess.run([require_promtool(), "check", "metrics"], input=text,
                            capture_output=True, timeout=60, check=False)  # fmt: skip
    said = (result.stdout + result.stderr).decode(errors="replace").strip()
    if result.returncode != 0 and not said:
        said = f"promtool exited {result.returncode}"
    return said
