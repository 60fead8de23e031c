"""Where shared models and footage live, overridable by environment variables.

The repository never contains model weights or footage; tests and benchmarks find them in the
``shared`` folder beside the checkout (``../shared``), or wherever ``VIGIL_SHARED_DIR`` points.
The product itself downloads models into a cache (see ``vigil.detect.models``). Files are
identified by :func:`sha256_file` everywhere: cached models, segments, exports.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from vigil.errors import MediaNotFoundError

_REPO_ROOT = Path(__file__).resolve().parent.parent


def shared_dir() -> Path:
    """Root of the shared material: ``$VIGIL_SHARED_DIR`` or ``<repo>/../shared``."""
    env = os.environ.get("VIGIL_SHARED_DIR")
    return Path(env) if env else (_REPO_ROOT.parent / "shared")


def shared_models_dir() -> Path:
    env = os.environ.get("VIGIL_MODELS_DIR")
    return Path(env) if env else shared_dir() / "models"


def shared_data_dir() -> Path:
    env = os.environ.get("VIGIL_DATA_DIR")
    return Path(env) if env else shared_dir() / "data"


def cache_dir() -> Path:
    """Model cache: ``$VIGIL_CACHE_DIR``, ``$XDG_CACHE_HOME/vigil`` or ``~/.cache/vigil``."""
    env = os.environ.get("VIGIL_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "vigil"


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks (segments and models can be large)."""
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


#: The data directory's folders of recorded segments, of event snapshots and of the
#: segments' redacted preview thumbnails (``vigil.record.previews``).
RECORDINGS = "recordings"
SNAPSHOTS = "snapshots"
PREVIEWS = "previews"


def confined_path(root: Path, relative: str) -> Path:
    """The file ``relative`` names under ``root``, or ``MediaNotFoundError``.

    The one confinement rule for media files, wherever they are read (the API, a node's media
    actor): ``relative`` must have no absolute prefix, ``..``, ``.``, empty part, backslash or
    NUL, and must resolve (symlinks included) to a regular file under ``root``.
    """
    check_relative(relative)
    base = root.resolve()
    target = (base / relative).resolve()
    if not target.is_relative_to(base) or not target.is_file():
        raise MediaNotFoundError("media file not found")
    return target


def check_relative(relative: str, folder: str | None = None) -> None:
    """``MediaNotFoundError`` unless ``relative`` is a plain relative path (see
    ``confined_path``), starting with ``folder/`` when given. Needs no file system: what a
    node other than the file's own can check."""
    parts = relative.split("/")
    if (not relative or relative.startswith("/") or "\\" in relative or "\x00" in relative
            or any(p in ("", ".", "..") for p in parts)
            or (folder is not None and (len(parts) < 2 or parts[0] != folder))):  # fmt: skip
        raise MediaNotFoundError("media file not found")


def confined_media_path(data_dir: Path, relative: str, folder: str) -> Path:
    """The file a database row names (``relative`` to ``data_dir``) when it lies in the media
    ``folder`` of ``data_dir`` (symlinks resolved), else ``MediaNotFoundError``."""
    check_relative(relative, folder)
    return confined_path(data_dir / folder, relative.partition("/")[2])


#: The file-creation mask ``vigil`` runs under: recordings, snapshots, exports, clips and the
#: database are footage of people and their movements, so no other user may read them and
#: nobody but the owner may change them (files 0640, folders 0750 at most; the group may
#: read, for a backup account). Secrets are created 0600 explicitly (signing key, audit file).
PRIVATE_UMASK = 0o027


def restrict_umask(mask: int = PRIVATE_UMASK) -> int:
    """Add ``mask`` to the process's umask (never loosening a stricter one); the new umask.

    Every file and folder created afterwards, by this process and the FFmpeg/worker processes
    it starts, gets at most the permissions the mask leaves.
    """
    old = os.umask(mask)
    os.umask(old | mask)
    return old | mask
