"""Configuration: validation errors that name file, line and fix; merging; the reference."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from vigil.config import DetectConfig, VigilConfig, load_config, parse_config
from vigil.config.models import CameraConfig, MotionConfig
from vigil.config.reference import render_reference
from vigil.errors import ConfigError
from vigil.rules.zone import ZoneRule

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("detect:\n  fsp: 3\n", ["x.yaml:2", "detect.fsp", "unknown key 'fsp'", "fps"]),
        ("detect:\n  fps: -1\n", ["x.yaml:2", "detect.fps", "greater than 0", "-1"]),
        (
            "lines:\n  door:\n    points: [[0, 0.5], [1.2, 0.5]]\n",
            ["x.yaml:3", "lines.door.points", "less than or equal to 1"],
        ),
        (
            "lines:\n  door:\n    points: [[0.5, 0.5], [0.5, 0.5]]\n",
            ["x.yaml:3", "two different points"],
        ),
        (
            "zones:\n  z:\n    polygon: [[0, 0], [1, 1]]\n    labelz: []\n",
            ["x.yaml:3", "at least 3", "x.yaml:4", "unknown key 'labelz'", "polygon"],
        ),
        ("cameras:\n  'bad name!':\n    sources: [{url: a.mp4}]\n", ["letters, digits"]),
        ("cameras:\n  cam:\n    source: a.mp4\n", ["unknown key 'source'", "sources"]),
        ("detect: [1, 2\n", ["x.yaml:", "not valid YAML"]),
        ("- just\n- a list\n", ["top level must be a mapping"]),
    ],
)
def test_errors_name_the_place_and_the_fix(text: str, expected: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="x.yaml")
    for part in expected:
        assert part in str(info.value)


def test_empty_file_gives_defaults() -> None:
    config = parse_config("", source="empty.yaml")
    assert config.detect.model == "yolox-nano"
    assert config.lines == {}


def test_camera_sections_deep_merge_over_globals() -> None:
    config = parse_config(
        "detect:\n  fps: 3\n  confidence: 0.4\n"
        "cameras:\n  front:\n    sources: [{url: a.mp4}]\n    detect: {confidence: 0.6}\n"
        "  back:\n    sources: [{url: b.mp4}]\n"
    )
    front, back = config.camera("front"), config.camera("back")
    assert (front.detect.fps, front.detect.confidence) == (3.0, 0.6)
    assert (back.detect.fps, back.detect.confidence) == (3.0, 0.4)


GLOBAL_AND_OWN = {
    "detect": {"fps": 3, "confidence": 0.4, "labels": ["person", "car"]},
    "motion": {"threshold": 40},
    "cameras": {
        "front": {"sources": [{"url": "a.mp4"}], "detect": {"confidence": 0.6},
                  "motion": {"min_area": 0.02}},
        "back": {"sources": [{"url": "b.mp4"}]},
    },
}  # fmt: skip


def _built(via: str) -> VigilConfig:
    """``GLOBAL_AND_OWN`` read from YAML, validated from a mapping, or made of models."""
    data = GLOBAL_AND_OWN
    if via == "file":
        return parse_config(yaml.safe_dump(data))
    if via == "mapping":
        return VigilConfig.model_validate(data)
    cameras: Any = data["cameras"]
    return VigilConfig(
        detect=DetectConfig.model_validate(data["detect"]),
        motion=MotionConfig.model_validate(data["motion"]),
        cameras={name: CameraConfig.model_validate(cam) for name, cam in cameras.items()},
    )


@pytest.mark.parametrize("via", ["file", "mapping", "models"])
def test_a_camera_keeps_the_global_settings_it_does_not_set(via: str) -> None:
    """One merge for every way a configuration is made: a camera's own ``detect`` that sets
    only the confidence keeps the global fps and labels, in code as from a file."""
    config = _built(via)
    front, back = config.camera("front"), config.camera("back")
    assert (front.detect.fps, front.detect.confidence, front.detect.labels) == (
        3.0, 0.6, ["person", "car"])  # fmt: skip
    assert (back.detect.fps, back.detect.confidence) == (3.0, 0.4)
    assert (front.motion.threshold, front.motion.min_area) == (40, 0.02)
    assert back.motion == config.motion
    assert config.camera("front") == _built("file").camera("front"), "every path agrees"


MASK = [[0.0, 0.0], [0.5, 0.0], [0.5, 1.0]]


@pytest.mark.parametrize("via", ["file", "code"])
def test_redaction_of_a_camera_is_the_global_one_with_its_own_over_it(via: str) -> None:
    """``redact_for`` is the one answer for "how is camera X redacted", whether the
    configuration came from a file (merged by the loader) or was built in code."""
    data = {
        "redact": {"style": "fill", "masks": [MASK]},
        "cameras": {"front": {"sources": [{"url": "a.mp4"}], "redact": {"mode": "people"}},
                    "side": {"sources": [{"url": "b.mp4"}], "redact": {"masks": []}},
                    "back": {"sources": [{"url": "c.mp4"}]}},
    }  # fmt: skip
    config = (
        parse_config(yaml.safe_dump(data)) if via == "file" else VigilConfig.model_validate(data)
    )
    front = config.redact_for("front")
    assert (front.mode, front.style) == ("people", "fill")
    assert front.masks == [[tuple(p) for p in MASK]], "the global masks stay with the camera"
    assert config.redact_for("side").masks == [], "a camera's own masks replace the global"
    assert config.redact_for("back") == config.redact
    assert config.redact_for("removed") == config.redact, "old recordings: the global one"
    assert config.camera("front").redact == front


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read configuration file .*nope\.yaml"):
        load_config(tmp_path / "nope.yaml")


def test_reference_document_is_up_to_date() -> None:
    committed = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert committed == render_reference(), (
        "docs/configuration.md is stale: run `python -m vigil.config.reference > "
        "docs/configuration.md`"
    )


def test_readme_example_configs_are_valid() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = [part.split("```", 1)[0] for part in readme.split("```yaml\n")[1:]]
    assert len(blocks) == 3
    analyze = parse_config(blocks[0], source="README.md")
    assert set(analyze.lines) == {"door"}
    assert analyze.zones["counter"].dwell == 10
    traffic = parse_config(blocks[1], source="README.md")
    lane = traffic.zones["lane"]
    assert lane.calibration is not None
    assert lane.speed_limit == 50
    # It compiles too: the side lengths close a shape and the corners are convex.
    names = ["person", "bicycle", "car", "motorcycle", "bus", "truck"]
    assert ZoneRule("lane", lane, (1280, 720), names).traffic.speed_unit == "km/h"
    serve = parse_config(blocks[2], source="README.md")
    assert [s.roles for s in serve.camera("door").sources] == [["record"], ["detect"]]


@pytest.mark.parametrize(
    ("model", "motion"),
    [
        ("motion", True),
        (" Motion ", True),
        ("MOTION", True),
        ("yolox-nano", False),
        ("models/motion.onnx", False),
    ],
)
def test_is_motion_names_the_model_free_detector(
    model: str, motion: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # a model path must exist at load
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "motion.onnx").write_bytes(b"")
    assert DetectConfig(model=model).is_motion is motion
    assert parse_config(f"detect:\n  model: '{model}'\n").detect.is_motion is motion
