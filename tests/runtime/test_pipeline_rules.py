"""``CameraPipeline.update_rules``: rules and the event manager's trigger change together."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.runtime.test_supervisor import make_config
from vigil.config.models import LineConfig, ZoneConfig
from vigil.errors import ConfigError
from vigil.runtime.pipeline import CameraPipeline

LINE = LineConfig.model_validate({"points": [[0.05, 0.5], [0.95, 0.5]]})
ZONE = ZoneConfig.model_validate({"polygon": [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9]]})


def pipeline(tmp_path: Path) -> CameraPipeline:
    config = make_config(tmp_path, {"a": {"sources": [{"url": "synthetic://"}]}})
    return CameraPipeline(config.camera("a"), None, (640, 360))


@pytest.mark.parametrize(("zones", "lines", "configured"), [
    ({}, {"middle": LINE}, True),
    ({"yard": ZONE}, {}, True),
    ({}, {}, False),
])  # fmt: skip
def test_update_rules_switches_rules_and_event_trigger(
    tmp_path: Path, zones: dict[str, ZoneConfig], lines: dict[str, LineConfig], configured: bool
) -> None:
    pipe = pipeline(tmp_path)
    pipe.update_rules({"old": ZONE}, {})
    pipe.update_rules(zones, lines)
    assert pipe.rules.configured is configured
    assert pipe.events.rules_configured is configured
    assert set(pipe.rules.counts()["lines"]) == set(lines)
    assert set(pipe.rules.counts()["zones"]) == set(zones)


def test_bad_rule_changes_nothing(tmp_path: Path) -> None:
    pipe = pipeline(tmp_path)
    bad = LineConfig.model_validate({"points": [[0.1, 0.5], [0.9, 0.5]], "labels": ["unicorn"]})
    with pytest.raises(ConfigError):
        pipe.update_rules({}, {"bad": bad})
    assert not pipe.rules.configured
    assert not pipe.events.rules_configured
