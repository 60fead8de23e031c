"""Privacy by design: redaction on every path where pixels leave Vigil.

Vigil sees what happens, never who: it finds faces and people only to hide them, never to
recognise them (see ``docs/privacy.md`` and ``tests/test_boundary.py``).

- ``Redactor`` / ``build_redactor``: faces (CenterFace), people, static masks; temporal hold.
- ``unredacted_access``: the audited, explicit way to unredacted output.
- ``redact_file``: the file anonymizer behind ``vigil redact``.
"""

from vigil.privacy.audit import UnredactedGrant, unredacted_access
from vigil.privacy.faces import CenterFaceDetector, FaceDetector
from vigil.privacy.hold import BoxHold
from vigil.privacy.masks import StaticMasks, parse_polygon
from vigil.privacy.redactor import Redactor, build_redactor, default_audit_path
from vigil.privacy.video import RedactReport, redact_file

__all__ = [
    "BoxHold",
    "CenterFaceDetector",
    "FaceDetector",
    "RedactReport",
    "Redactor",
    "StaticMasks",
    "UnredactedGrant",
    "build_redactor",
    "default_audit_path",
    "parse_polygon",
    "redact_file",
    "unredacted_access",
]
