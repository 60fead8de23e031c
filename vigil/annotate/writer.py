"""H.264 MP4 output of BGR frames with PyAV."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import av

from vigil.errors import VigilError
from vigil.types import ImageArray


class Mp4Writer:
    """Encodes BGR uint8 frames of one size into an H.264 MP4 at a constant frame rate.

    The encoder needs even dimensions for yuv420p; odd sizes are cropped by one pixel rather
    than scaled, so drawn coordinates stay exact. The file is complete only after ``close``.
    """

    def __init__(
        self, path: Path, fps: float, size: tuple[int, int], *, crf: int = 23,
        keyframe_interval: int | None = None,
    ) -> None:  # fmt: skip
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._width, self._height = size[0] - size[0] % 2, size[1] - size[1] % 2
        rate = Fraction(fps).limit_denominator(1001)
        try:
            self._container: Any = av.open(str(path), mode="w")
            self._stream: Any = self._container.add_stream("libx264", rate=rate)
        except (av.error.FFmpegError, ValueError) as exc:
            raise VigilError(f"cannot write video {path}: {exc}; check the folder") from exc
        self._stream.width, self._stream.height = self._width, self._height
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = {"crf": str(crf), "preset": "veryfast"}
        if keyframe_interval is not None:  # frames between keyframes, where players can seek
            self._stream.options |= {"g": str(keyframe_interval),
                                     "keyint_min": str(keyframe_interval)}  # fmt: skip
        self.frames = 0

    def write(self, image: ImageArray) -> None:
        image = image[: self._height, : self._width]
        frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        if self._container is None:
            return
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        self._container.close()
        self._container = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
