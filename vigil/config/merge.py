"""The one place where global sections become each camera's defaults.

A camera that sets only ``detect: {fps: 2}`` keeps every other global detect setting: the
global section is deep-merged under the camera's own *before* validation, so the merged
section is validated as a whole. ``VigilConfig`` runs this as a ``mode="before"`` validator,
so a configuration read from YAML and one built in code (``VigilConfig.model_validate`` on a
mapping, or ``VigilConfig(...)`` with section models) are merged alike.

Lists are not merged: a camera's ``masks`` or ``labels`` replace the global ones (polygons
are fractions of one camera's view).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

#: The sections a camera may set that default to the global section of the same name.
MERGED_SECTIONS = ("detect", "motion", "tracker", "events", "redact")


def _raw(value: Any) -> Any:
    """A section model as the mapping of the fields that were given (so that a field left at
    its default in a camera's own section still takes the global value), else ``value``."""
    return value.model_dump(exclude_unset=True) if isinstance(value, BaseModel) else value


def merge_camera_defaults(data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` (a configuration's raw top-level mapping) with the global sections
    deep-merged into each camera's; what is not a mapping is left for validation to
    refuse."""
    out = dict(data)
    cameras = data.get("cameras")
    if not isinstance(cameras, Mapping):
        return out
    merged: dict[str, Any] = {}
    for name, given in cameras.items():
        raw = _raw(given)
        if not isinstance(raw, Mapping):
            merged[name] = raw
            continue
        cam = dict(raw)
        for section in MERGED_SECTIONS:
            base = _raw(data.get(section))
            if not isinstance(base, Mapping):
                continue
            own = _raw(cam.get(section))
            if isinstance(own, Mapping):
                cam[section] = deep_merge(base, own)
            elif section not in cam:
                cam[section] = base
        merged[name] = cam
    out["cameras"] = merged
    return out


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``over``'s keys over it, mappings merged key by key."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out
