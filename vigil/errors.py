"""Vigil's error tree. Third-party errors are translated into these at the boundary.

::

    VigilError
    ├── ConfigError      a configuration file or value is wrong (names file, line, what is allowed)
    ├── SourceError      a video source cannot be opened or read (names the source)
    ├── ModelError       a model file is missing, corrupt, of the wrong kind, or fails a checksum
    ├── StorageError     the database or media storage failed
    ├── AuthError        authentication or authorisation refused
    └── PrivacyError     redaction cannot be guaranteed, so the output is refused (fail closed)

Every message says what went wrong *and* what to do about it.
"""

from __future__ import annotations


class VigilError(Exception):
    """Base of every error Vigil raises on purpose."""


class ConfigError(VigilError):
    pass


class SourceError(VigilError):
    pass


class ModelError(VigilError):
    pass


class StorageError(VigilError):
    pass


class AuthError(VigilError):
    pass


class PrivacyError(VigilError):
    pass
