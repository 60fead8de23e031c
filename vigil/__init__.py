"""Vigil: private-by-design video analytics and recording. It sees what happens, never who."""

from vigil.errors import (
    ConfigError,
    ModelError,
    PrivacyError,
    SourceError,
    StorageError,
    VigilError,
)
from vigil.types import Detections, Event, Frame, RuleEvent

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "Detections",
    "Event",
    "Frame",
    "ModelError",
    "PrivacyError",
    "RuleEvent",
    "SourceError",
    "StorageError",
    "VigilError",
    "__version__",
]
