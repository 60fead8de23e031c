"""Pixel arrays across a process boundary without pickling them: ``multiprocessing``
shared-memory slots.

A ``Slot`` is one named shared-memory block that holds a list of ``uint8`` images packed one
after the other; what crosses the pipe is only their ``ImageLayout`` (offset and shape per
image), a few dozen bytes. The protocol that makes this safe is the caller's: a writer
fills a slot, sends the layout, and does not write the slot again before the reader said it
is done with it (a request/response round trip), so a reader never sees a torn image.

``SlotRegistry`` is the owner's side (the parent process): it creates every slot, so that
the blocks outlive a crashed child and ``close()`` unlinks all of them (no leak in
``/dev/shm``); children only attach by name.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from multiprocessing import shared_memory

import numpy as np

from vigil.types import ImageArray

# (offset in bytes, shape) per image
ImageLayout = list[tuple[int, tuple[int, ...]]]

_ALIGN = 64  # cache-line aligned starts: cheap, and friendly to vectorised copies


def packed_size(shapes: Sequence[tuple[int, ...]]) -> int:
    """Bytes a slot needs to hold uint8 images of ``shapes`` packed with ``pack``."""
    total = 0
    for shape in shapes:
        total = _aligned(total) + int(np.prod(shape))
    return total


def _aligned(n: int) -> int:
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN


class Slot:
    """One shared-memory block of ``size`` bytes (``create``: a new one; else attach)."""

    def __init__(self, name: str | None, size: int = 0, *, create: bool = False) -> None:
        self.shm = shared_memory.SharedMemory(name=name, create=create, size=size)
        self.name = self.shm.name
        self.size = self.shm.size

    def pack(self, images: Sequence[ImageArray]) -> ImageLayout:
        """Copy uint8 ``images`` into the slot; raises ``ValueError`` if they do not fit."""
        need = packed_size([im.shape for im in images])
        if need > self.size:
            raise ValueError(f"{need} bytes of images do not fit a {self.size}-byte slot")
        layout: ImageLayout = []
        offset = 0
        buf = self.shm.buf
        for image in images:
            offset = _aligned(offset)
            view = np.ndarray(image.shape, np.uint8, buffer=buf, offset=offset)
            view[...] = image
            layout.append((offset, tuple(image.shape)))
            offset += image.nbytes
        return layout

    def views(self, layout: ImageLayout) -> list[ImageArray]:
        """The images of ``layout`` as read-only views of the slot (valid until it is
        written again: copy what must outlive the round trip)."""
        out: list[ImageArray] = []
        for offset, shape in layout:
            view = np.ndarray(shape, np.uint8, buffer=self.shm.buf, offset=offset)
            view.flags.writeable = False
            out.append(view)
        return out

    def close(self) -> None:
        """Drop this process's mapping (the block lives on until unlinked)."""
        self.shm.close()


class SlotRegistry:
    """The parent's slots by name: creates, looks up, replaces and unlinks them.

    ``prefix`` names the blocks (``/dev/shm/<prefix>-<n>``) so a leak is easy to spot.
    Thread-safe.
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._lock = threading.Lock()
        self._slots: dict[str, Slot] = {}
        self._n = 0

    def create(self, size: int, replaces: str | None = None) -> Slot:
        """A new slot of at least ``size`` bytes; ``replaces`` (a name) is unlinked."""
        with self._lock:
            self._n += 1
            name = f"{self.prefix}-{self._n}"
        slot = Slot(name, max(1, size), create=True)
        with self._lock:
            self._slots[slot.name] = slot
        if replaces is not None:
            self.unlink(replaces)
        return slot

    def get(self, name: str) -> Slot:
        with self._lock:
            return self._slots[name]

    def unlink(self, name: str) -> None:
        with self._lock:
            slot = self._slots.pop(name, None)
        if slot is not None:
            _unlink(slot)

    @property
    def names(self) -> list[str]:
        with self._lock:
            return list(self._slots)

    def close(self) -> None:
        """Unlink every slot (idempotent)."""
        with self._lock:
            slots, self._slots = list(self._slots.values()), {}
        for slot in slots:
            _unlink(slot)


def _unlink(slot: Slot) -> None:
    # BufferError: a view handed out is still alive somewhere; the mapping stays until it is
    # collected, but the name goes now, which is what frees /dev/shm in the end.
    with contextlib.suppress(BufferError):
        slot.shm.close()
    with contextlib.suppress(FileNotFoundError):
        slot.shm.unlink()
