"""Configuration: pydantic models and the YAML loader."""

from vigil.config.loader import load_config, parse_config
from vigil.config.models import (
    CameraConfig,
    DetectConfig,
    EventsConfig,
    LineConfig,
    MotionConfig,
    RedactConfig,
    ResolvedCamera,
    SourceConfig,
    TrackerConfig,
    VigilConfig,
    ZoneConfig,
)

__all__ = [
    "CameraConfig",
    "DetectConfig",
    "EventsConfig",
    "LineConfig",
    "MotionConfig",
    "RedactConfig",
    "ResolvedCamera",
    "SourceConfig",
    "TrackerConfig",
    "VigilConfig",
    "ZoneConfig",
    "load_config",
    "parse_config",
]
