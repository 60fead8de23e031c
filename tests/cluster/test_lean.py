"""The lean head settings (``vigil.cluster.lean``) are the ones ``docs/cluster.md`` tells an
operator to start the head with."""

from __future__ import annotations

import json
import re
from pathlib import Path

from vigil.cluster.lean import LEAN_HEAD_PARAMS, LEAN_SYSTEM_CONFIG

DOC = Path(__file__).resolve().parents[2] / "docs" / "cluster.md"


def test_the_documented_ray_start_line_is_the_lean_settings() -> None:
    text = DOC.read_text(encoding="utf-8")
    found = re.search(r"--system-config '(\{.*?\})'", text, re.S)
    assert found, "docs/cluster.md shows no `ray start --head --system-config` line"
    assert json.loads(found.group(1)) == LEAN_SYSTEM_CONFIG
    assert LEAN_HEAD_PARAMS == {"no_monitor": True, "include_log_monitor": False}
    assert "--no-monitor" in text
    assert "--include-log-monitor=false" in text
