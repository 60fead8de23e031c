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
    ├── PrivacyError     redaction cannot be guaranteed, so the output is refused (fail closed)
    └── MediaError       a video file cannot be read or written (``vigil.media``): names the
        │                file (``path``) and the fix (``fix``)
        ├── MediaReadError   also a SourceError: the input is missing, not video, or damaged
        └── MediaWriteError  also a StorageError: the output cannot be written or encoded

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
        super().__init__(
            f"node {node!r}, which holds this media, is unavailable ({detail}); "
            "it is served again once the node is back (check `vigil cluster "
            "status`)"
        )
        self.node = node
        self.detail = detail

    def __reduce__(self) -> tuple[type[NodeUnavailableError], tuple[str, str]]:
        return (NodeUnavailableError, (self.node, self.detail))


class AuthError(VigilError):
    pass


class PrivacyError(VigilError):
    pass


class MediaError(VigilError):
    """A video file (or in-memory stream) that cannot be read or written.

    The message is ``PATH: PROBLEM (DETAIL); FIX``; ``path`` and ``fix`` are kept for callers
    that show them apart. Its two kinds are also a ``SourceError`` (reading) or a
    ``StorageError`` (writing), so the API's status for each stays the same.
    """

    def __init__(self, path: object, problem: str, fix: str, detail: object = None) -> None:
        self.path, self.problem, self.fix = str(path), problem, fix
        self.detail = None if detail is None else str(detail)  # text: it pickles
        more = f" ({self.detail})" if self.detail is not None else ""
        super().__init__(f"{path}: {problem}{more}; {fix}")

    def __reduce__(self) -> tuple[type[MediaError], tuple[str, str, str, str | None]]:
        # Exceptions pickle as ``cls(*args)``; these take more than the message.
        return type(self), (self.path, self.problem, self.fix, self.detail)


class MediaReadError(MediaError, SourceError):
    pass


class MediaWriteError(MediaError, StorageError):
    pass
