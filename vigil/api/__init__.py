"""The HTTP API: FastAPI app, authentication on by default, roles, audit, media, live events.

``create_app(settings, db, runtime, data_dir=...)`` builds the application; ``RuntimeView``
(in ``vigil.api.runtime``) is what it needs from the running cameras, and ``StaticRuntime``
serves recordings without cameras. Importing this package needs the ``server`` extra.
"""

from __future__ import annotations

from vigil.api.app import PUBLIC_PATHS, create_app
from vigil.api.runtime import CameraStatus, RuntimeView, StaticRuntime
from vigil.api.settings import ApiSettings

__all__ = [
    "PUBLIC_PATHS",
    "ApiSettings",
    "CameraStatus",
    "RuntimeView",
    "StaticRuntime",
    "create_app",
]
