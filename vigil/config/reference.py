"""The configuration reference (``docs/configuration.md``), rendered from the models.

The reference is generated so it cannot drift from the code: a test compares the committed
file with :func:`render_reference`, and ``python -m vigil.config.reference > FILE`` rewrites it.
"""

from __future__ import annotations

import json
import sys
import typing
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from vigil.config.models import (
    CameraConfig,
    ClusterConfig,
    DetectConfig,
    DetectorConfig,
    EventsConfig,
    JobsConfig,
    LineConfig,
    MotionConfig,
    RecordConfig,
    RedactConfig,
    ServerConfig,
    SourceConfig,
    TrackerConfig,
    VigilConfig,
    ZoneCalibration,
    ZoneConfig,
    ZoneDirection,
)

_SECTIONS: list[tuple[str, type[BaseModel]]] = [
    ("Top level", VigilConfig),
    ("`detect`", DetectConfig),
    ("`motion`", MotionConfig),
    ("`tracker`", TrackerConfig),
    ("`events`", EventsConfig),
    ("`redact`", RedactConfig),
    ("`record`", RecordConfig),
    ("`detector`", DetectorConfig),
    ("`server`", ServerConfig),
    ("`cluster`", ClusterConfig),
    ("`jobs`", JobsConfig),
    ("`zones.<name>`", ZoneConfig),
    ("`zones.<name>.calibration`", ZoneCalibration),
    ("`zones.<name>.direction`", ZoneDirection),
    ("`lines.<name>`", LineConfig),
    ("`cameras.<name>`", CameraConfig),
    ("`cameras.<name>.sources[]`", SourceConfig),
]

_INTRO = """# Configuration reference

Vigil reads one YAML file (`vigil analyze --config FILE`, later `vigil serve --config FILE`).
Every key is optional unless marked *required*; unknown keys are errors that name the file,
the line and the keys allowed there.

- Coordinates of zones, lines and masks are **normalized**: `[x, y]` with `x` the fraction of
  the frame's width from the left and `y` the fraction of its height from the top (0–1), so
  one configuration survives a change of stream resolution.
- Top-level `detect`, `motion`, `tracker`, `events` and `redact` are defaults for every camera;
  a camera's own section is deep-merged over them (a camera that sets only `detect: {fps: 2}`
  keeps every other global detect setting), for a file and for a configuration built in code
  (`VigilConfig.model_validate`) alike.
- Top-level `zones` and `lines` are the rules of `vigil analyze` and of cameras without any.
- Lines are directed: from `points[0]` (the A end) to `points[1]` (the B end). Side A is on
  the left when looking from A to B on the screen, side B on the right. A crossing from side A
  to side B counts as `a_to_b`. Only crossings of the segment itself count, and a band of
  `hysteresis` around the line keeps a track that jitters on it from counting twice.
- Zones use a box's anchor point (bottom centre by default: where feet touch the ground).
- Traffic: a four-corner zone with `calibration` (the true lengths of its sides) measures
  speeds on the ground plane (an image→ground homography of its corners), in km/h or mph;
  `speed_limit` raises `speeding` events. Every zone measures headings (compass-like on the
  screen: 0 = up, 90 = right), true on the ground when calibrated; `direction` makes it one
  way (`wrong_way` events) and `stopped` raises `stopped` events for vehicles standing still.
  Speeds and headings are fitted over `smoothing` seconds of the track's positions, with the
  frames' own timestamps.

Generated from `vigil/config/models.py` by `python -m vigil.config.reference`.
"""


def _type_name(annotation: Any) -> str:
    text = repr(annotation) if not isinstance(annotation, type) else annotation.__name__
    for prefix in ("typing.", "vigil.config.models.", "vigil.types.", "pathlib."):
        text = text.replace(prefix, "")
    if typing.get_origin(annotation) is typing.Annotated:
        return _type_name(typing.get_args(annotation)[0])
    return text.replace(
        "Annotated[float, FieldInfo(annotation=NoneType, required=True, "
        "metadata=[Ge(ge=0.0), Le(le=1.0)])]",
        "float",
    )


def _default(field: Any) -> str:
    if field.is_required():
        return "*required*"
    value = field.get_default(call_default_factory=True)
    if value is PydanticUndefined:
        return ""
    if isinstance(value, BaseModel):
        return "(section)"
    try:
        return f"`{json.dumps(value, default=str)}`"
    except TypeError:
        return f"`{value}`"


def _table(model: type[BaseModel]) -> list[str]:
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for name, field in model.model_fields.items():
        meaning = (field.description or "").replace("|", "\\|").replace("\n", " ")
        type_name = _type_name(field.annotation).replace("|", "\\|")
        rows.append(f"| `{name}` | `{type_name}` | {_default(field)} | {meaning} |")
    return rows


def render_reference() -> str:
    parts = [_INTRO]
    for title, model in _SECTIONS:
        doc = (model.__doc__ or "").strip().splitlines()
        parts.append(f"## {title}\n")
        if doc:
            parts.append(" ".join(line.strip() for line in doc if line.strip()) + "\n")
        parts.append("\n".join(_table(model)) + "\n")
    return "\n".join(parts)


if __name__ == "__main__":
    sys.stdout.write(render_reference())
