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
