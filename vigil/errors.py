"""Vigil's error tree. Third-party errors are translated into these at the boundary.

::

    VigilError
    ├── ConfigError      a configuration file or value is wrong (names file, line, what is allowed)
    ├── SourceError      a video source cannot be opened or read (names the source)
    │   └── MediaNotFoundError  a stored media file is missing or outside its media folder
    ├── ModelError       a model file is missing, corrupt, of the wrong kind, or fails a checksum
    ├── StorageError     the database or media storage failed
    │   └── NodeUnavailableError  the cluster node holding a media file cannot be reached
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


class MediaNotFoundError(SourceError):
    """A media file a row names is missing, or lies outside its media folder (a tampered
    row, a symlink out): the API answers 404 without saying which."""


class ModelError(VigilError):
    pass


class StorageError(VigilError):
    pass


class NodeUnavailableError(StorageError):
    """The cluster node that holds a recording or snapshot cannot be reached (down, or its
    media actor is gone); ``node`` names it. The API answers 503, never 500."""

    def __init__(self, node: str, detail: str) -> None:
        super().__init__(f"node {node!r}, which holds this media, is unavailable ({detail}); "
                         "it is served again once the node is back (check `vigil cluster "
                         "status`)")
        self.node = node
        self.detail = detail

    def __reduce__(self) -> tuple[type[NodeUnavailableError], tuple[str, str]]:
        return (NodeUnavailableError, (self.node, self.detail))


class AuthError(VigilError):
    pass


class PrivacyError(VigilError):
    pass
