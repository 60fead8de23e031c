"""``Recorder``: one camera's recording stream, demuxed and segmented without decoding.

It opens its own PyAV demuxer, independent of the analysis decoder: real cameras offer a
main stream to record and a sub-stream to analyse. Modes:

- ``continuous``: every packet is recorded.
- ``motion`` / ``events``: packets are recorded while the pipeline says something happens
  (``mark_activity(until)``, UTC seconds) plus ``post_roll`` seconds after; the segment that
  starts on activity includes ``pre_roll`` seconds before it (see ``Segmenter``). The two modes
  differ only in who calls ``mark_activity`` (the motion gate or the event lifecycle).

A lost or stalled connection ends the open segment, waits a ``Backoff`` delay and reconnects;
segments already written are never touched again. ``close()`` (from any thread) ends the loop
after the current read (at most ``read_timeout``) and finishes the open segment.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import av

from vigil.errors import SourceError
from vigil.ingest.backoff import Backoff
from vigil.ingest.base import mask_credentials
from vigil.ingest.pacing import Pacer
from vigil.record.segmenter import Segmenter, SegmentInfo

log = logging.getLogger(__name__)

RecordMode = Literal["continuous", "motion", "events"]


class Recorder:
    """Records ``source_url`` for ``camera_id`` into ``root/recordings`` until ``close()``."""

    def __init__(
        self,
        source_url: str,
        camera_id: str,
        root: Path,
        *,
        mode: RecordMode = "continuous",
        pre_roll: float = 5.0,
        post_roll: float = 5.0,
        segment_seconds: float = 10.0,
        on_segment: Callable[[SegmentInfo], None] | None = None,
        options: dict[str, str] | None = None,
        open_timeout: float = 10.0,
        read_timeout: float = 10.0,
        backoff: Backoff | None = None,
        max_attempts: int | None = None,
        file_loop: bool | None = None,
    ) -> None:
        if mode not in ("continuous", "motion", "events"):
            raise ValueError(f"record mode must be continuous, motion or events, got {mode!r}")
        self.url = source_url
        self.safe_url = mask_credentials(source_url)
        self.mode: RecordMode = mode
        self.post_roll = post_roll
        self.options = dict(options or {})
        self.open_timeout, self.read_timeout = open_timeout, read_timeout
        self.backoff = backoff or Backoff()
        self.max_attempts = max_attempts
        self.segmenter = Segmenter(
            camera_id, root, segment_seconds=segment_seconds,
            pre_roll=pre_roll if mode != "continuous" else 0.0, on_segment=on_segment,
        )  # fmt: skip
        self._stop = threading.Event()
        # A file is recorded as the camera it stands for: paced to real time, once through
        # (file_loop False) or again at each end (True). None: a stream, already real time.
        self.file_loop = file_loop
        self._pacer = Pacer(self._stop) if file_loop is not None else None
        self._lock = threading.Lock()
        self._activity_until = float("-inf")
        self.connections = 0
        self.last_error: str | None = None
        #: False while recording is switched off (Home Assistant's switch): packets only
        #: feed the pre-roll, no segment is written.
        self.enabled = True

    def mark_activity(self, until: float) -> None:
        """Something happens until ``until`` (UTC seconds): record through ``until + post_roll``.

        Thread-safe; an earlier ``until`` than one already marked changes nothing.
        """
        with self._lock:
            self._activity_until = max(self._activity_until, until)

    def recording_at(self, when: float) -> bool:
        """Whether a packet stamped ``when`` (UTC seconds) is recorded in the current mode."""
        if not self.enabled:
            return False
        if self.mode == "continuous":
            return True
        with self._lock:
            return when <= self._activity_until + self.post_roll

    def run(self) -> None:
        """Record until ``close()``; reconnects with backoff. Blocking: run it in a thread.

        Raises ``SourceError`` only when ``max_attempts`` consecutive connections failed.
        """
        failures = 0
        try:
            while not self._stop.is_set():
                if self._session():
                    failures = 0
                    self.backoff.reset()
                    if self.file_loop is False:
                        break  # the file was recorded once through
                else:
                    failures += 1
                    if self.max_attempts is not None and failures >= self.max_attempts:
                        raise SourceError(
                            f"{self.safe_url}: recording gave up after {failures} attempts "
                            f"({self.last_error}); check the camera"
                        )
                if not self._stop.is_set():
                    self._stop.wait(self.backoff.next())
        finally:
            self.segmenter.close()

    def start(self) -> threading.Thread:
        """``run()`` in a daemon thread named after the camera."""
        thread = threading.Thread(
            target=self.run, name=f"record-{self.segmenter.camera}", daemon=True
        )
        thread.start()
        return thread

    def close(self) -> None:
        """Ask the loop to stop; the open segment is finished by the recording thread."""
        self._stop.set()

    def _paced(self, packet: Any) -> bool:
        """Wait until a file's packet is due (False when stopped meanwhile)."""
        ts = packet.dts if packet.dts is not None else packet.pts
        if self._pacer is None or ts is None:
            return True
        return self._pacer.wait(float(ts * packet.time_base))

    def _session(self) -> bool:
        """One connection: open, demux until it ends or fails. True when packets came."""
        try:
            container: Any = av.open(
                self.url, options=self.options, timeout=(self.open_timeout, self.read_timeout)
            )
        except (av.error.FFmpegError, OSError) as exc:
            self.last_error = mask_credentials(str(exc))
            log.warning("%s: cannot open (%s); retrying", self.safe_url, self.last_error)
            return False
        got = False
        try:
            if not container.streams.video:
                self.last_error = "no video stream"
                return False
            video = container.streams.video[0]
            audio = container.streams.audio[0] if container.streams.audio else None
            self.segmenter.set_streams(video, audio)
            self.connections += 1
            streams = [video] if audio is None else [video, audio]
            if self._pacer is not None:
                self._pacer.restart()
            for packet in container.demux(*streams):
                if self._stop.is_set() or not self._paced(packet):
                    break
                when = self.segmenter.time_of(packet)
                self.segmenter.write(
                    packet, record=self.recording_at(when if when is not None else time.time())
                )
                got = True
        except (av.error.FFmpegError, OSError) as exc:
            self.last_error = mask_credentials(str(exc))
            log.warning("%s: stream lost (%s); reconnecting", self.safe_url, self.last_error)
        finally:
            self.segmenter.finish_segment()
            container.close()
        return got
