"""Video sources: files, network cameras and a synthetic scene, behind one protocol.

``open_source(url)`` picks the implementation; ``FrameSampler`` thins a source's frames to the
rate the detector runs at.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

from vigil.errors import SourceError
from vigil.ingest.av_source import AvSource
from vigil.ingest.backoff import Backoff
from vigil.ingest.base import (
    Source,
    SourceInfo,
    SourceState,
    SourceStatus,
    StatusCallback,
    is_network_url,
    mask_credentials,
)
from vigil.ingest.synthetic import SyntheticObject, SyntheticSource, default_scene
from vigil.types import Frame

__all__ = [
    "AvSource",
    "Backoff",
    "FrameSampler",
    "Source",
    "SourceInfo",
    "SourceState",
    "SourceStatus",
    "StatusCallback",
    "SyntheticObject",
    "SyntheticSource",
    "default_scene",
    "is_network_url",
    "mask_credentials",
    "open_source",
]

_SYNTHETIC_PARAMS: dict[str, type] = {
    "width": int,
    "height": int,
    "fps": float,
    "duration": float,
    "seed": int,
}


def _synthetic_kwargs(url: str) -> dict[str, Any]:
    """Parse ``synthetic://?width=640&height=360&fps=10&duration=20&seed=0``."""
    kwargs: dict[str, Any] = {}
    for key, value in parse_qsl(urlsplit(url).query, keep_blank_values=True):
        kind = _SYNTHETIC_PARAMS.get(key)
        if kind is None:
            allowed = ", ".join(_SYNTHETIC_PARAMS)
            raise SourceError(f"{url}: unknown parameter {key!r}; allowed: {allowed}")
        try:
            kwargs[key] = kind(value)
        except ValueError:
            raise SourceError(f"{url}: {key}={value!r} is not a valid {kind.__name__}") from None
    return kwargs


def open_source(url: str, camera_id: str = "camera", **kwargs: Any) -> Source:
    """The source for ``url``: ``synthetic://…`` renders the default scene, anything else is
    decoded by FFmpeg (:class:`AvSource`; ``kwargs`` go to its constructor).

    Nothing is opened yet: call ``open()`` (or iterate ``frames()``) to find out whether the
    source works.
    """
    if urlsplit(url).scheme.lower() == "synthetic":
        try:
            return SyntheticSource(camera_id, **_synthetic_kwargs(url), **kwargs)
        except (TypeError, ValueError) as exc:
            raise SourceError(f"{url}: {exc}") from None
    return AvSource(url, camera_id, **kwargs)


class FrameSampler:
    """Decides, from ``pts``, which frames are analysed at ``fps`` frames per second.

    Frames are taken on a fixed grid of due times ``t0 + k / fps`` (so the average rate is
    exact, without drift); a frame is taken when it is the first at or just before its due
    time, within half a source frame interval (estimated from the pts seen), so jittery pts do
    not shift the choice by a frame. A source slower than ``fps`` has every frame taken. A
    backwards jump in pts (a reconnect, a looped file) restarts the grid.
    """

    def __init__(self, fps: float) -> None:
        if fps <= 0:
            raise ValueError(f"FrameSampler needs fps > 0, got {fps}")
        self.fps = fps
        self.interval = 1.0 / fps
        self._due: float | None = None
        self._last_pts: float | None = None
        self._source_dt: float | None = None

    def needed(self, pts: float, frame_interval: float) -> bool:
        """Whether a frame at ``pts`` could be taken; False only when it surely will not.

        For a source that leaves undecoded the frames nobody will look at, decided before
        the frame exists (and before the frames decoded ahead of it reach :meth:`take`):
        ``frame_interval`` is the source's nominal one. A frame further than three quarters
        of an interval from every due time of the current grid is never the one taken for
        it; before the grid exists, or when every frame is taken anyway, all are needed.
        """
        if self._due is None or frame_interval <= 0 or self.interval < 1.5 * frame_interval:
            return True
        offset = (pts - self._due) % self.interval
        distance = min(offset, self.interval - offset)
        return distance <= 0.75 * frame_interval

    def take(self, frame: Frame) -> bool:
        """True when ``frame`` should be analysed."""
        return self.take_pts(frame.pts)

    def take_pts(self, pts: float) -> bool:
        """:meth:`take` on a bare pts in seconds."""
        last, self._last_pts = self._last_pts, pts
        if last is not None and pts > last:
            dt = pts - last
            if self._source_dt is None:
                self._source_dt = dt
            elif dt < 4 * self._source_dt:
                # A slow average over normal steps: one late frame must not change the
                # tolerance much, and a gap in the stream is no frame interval at all.
                self._source_dt = 0.9 * self._source_dt + 0.1 * dt
        if self._due is None or last is None or pts < last:
            self._due = pts + self.interval
            return True
        slack = 0.5 * min(self._source_dt or 0.0, self.interval)
        if pts + slack < self._due:
            return False
        self._due += self.interval
        if self._due <= pts:
            # A gap in the stream: restart the grid rather than taking a burst of frames.
            self._due = pts + self.interval
        return True
