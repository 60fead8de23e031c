"""A real small filesystem for disk-full tests: a tmpfs mounted on a test folder.

Mounting needs root (or CAP_SYS_ADMIN); without it the test is skipped with the reason, and
fails instead under ``CI=true`` (CI runs as root in a container that may mount). ``fill``
writes a ballast file until the disk says "no space left"; ``resize`` grows (or shrinks) the
filesystem in place, the way an operator adds space, without touching the files on it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


class SmallDisk:
    """A tmpfs of ``size`` bytes mounted on ``path`` (see the module docstring)."""

    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self.size = size

    @property
    def free(self) -> int:
        return shutil.disk_usage(self.path).free

    def resize(self, size: int) -> None:
        _mount("-o", f"remount,size={size}", str(self.path))
        self.size = size

    def fill(self, name: str = "ballast") -> Path:
        """Write ``name`` until the disk is full; returns the ballast file."""
        ballast = self.path / name
        block = bytes(64 * 1024)
        with ballast.open("ab", buffering=0) as handle:
            while True:
                try:
                    written = handle.write(block)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
                if not written:
                    break
        # The last partial block may still fit byte by byte: take it too.
        with contextlib.suppress(OSError), ballast.open("ab", buffering=0) as handle:
            while handle.write(b"\0" * 512):
                pass
        return ballast


def _mount(*args: str) -> None:
    done = subprocess.run(["mount", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise OSError(f"mount {' '.join(args)} failed: {done.stderr.strip()}")


@contextlib.contextmanager
def small_disk(path: Path, size: int) -> Iterator[SmallDisk]:
    """Mount a ``size``-byte tmpfs on ``path`` (created) for the block; unmounted after."""
    path.mkdir(parents=True, exist_ok=True)
    try:
        if shutil.which("mount") is None:
            raise OSError("the mount program is not installed")
        _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path))
    except OSError as exc:
        reason = (f"cannot mount a small tmpfs for the disk-full test ({exc}); run as root "
                  f"(uid {os.getuid()} now) or in a container allowed to mount")  # fmt: skip
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield SmallDisk(path, size)
    finally:
        # Lazy: a thread of the code under test may still hold a file open there.
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)
