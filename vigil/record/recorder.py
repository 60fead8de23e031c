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

A storage failure (disk full, folder gone, read-only) never ends the loop: the broken segment
is dropped, ``state`` becomes ``failed`` with ``error`` saying why ("recording failed: disk
full"), and the recorder retries after a backoff delay capped at one segment's length, so it
resumes within about one segment once there is space. Before reconnecting to the camera it
checks with a small test write that the disk takes data again (no camera round trip per
retry while the disk is still full). ``on_state`` hears every change of ``state``/``error``.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import av

from vigil import clock
from vigil.errors import SourceError, StorageError
from vigil.ingest.backoff import Backoff
from vigil.ingest.base import mask_credentials
from vigil.ingest.hwaccel import demuxer_options
from vigil.ingest.pacing import Pacer
from vigil.record.motion import MotionSpans
from vigil.record.segmenter import Segmenter, SegmentInfo
from vigil.record.tap import PacketTap

log = logging.getLogger(__name__)

RecordMode = Literal["continuous", "motion", "events"]

#: ``Recorder.state`` values: ``starting`` (not connected yet), ``recording`` (connected:
#: writing, or keeping pre-roll in motion/events mode), ``reconnecting`` (the camera is
#: lost), ``failed`` (the disk takes no data; ``error`` says why), ``stopped``.
RecorderState = Literal["starting", "recording", "reconnecting", "failed", "stopped"]

#: Bytes written (and deleted) to check that a disk that was full takes data again.
PROBE_BYTES = 256 * 1024

#: ``(camera, state, error)``: called from the recording thread on every change.
StateCallback = Callable[[str, RecorderState, "str | None"], None]


def storage_problem(exc: BaseException) -> str:
    """The status text of a storage failure: "recording failed: disk full" or its words."""
    seen: BaseException | None = exc
    while seen is not None:
        code = getattr(seen, "errno", None)
        if code in (errno.ENOSPC, errno.EDQUOT) or "no space left" in str(seen).lower():
            return "recording failed: disk full"
        if code == errno.EROFS:
            return "recording failed: the disk is read-only"
        seen = seen.__cause__ or seen.__context__
    return f"recording failed: {exc}"


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
        on_state: StateCallback | None = None,
    ) -> None:
        if mode not in ("continuous", "motion", "events"):
            raise ValueError(f"record mode must be continuous, motion or events, got {mode!r}")
        self.url = source_url
        self.safe_url = mask_credentials(source_url)
        self.mode: RecordMode = mode
        self.post_roll = post_roll
        # A recorder copies packets and never decodes: a source's hwaccel is not its business.
        self.options = demuxer_options(options)
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
        #: When the camera's analysis saw motion, for the segments' ``has_motion``.
        self.motion = MotionSpans()
        self.connections = 0
        self.last_error: str | None = None
        self.on_state = on_state
        self.state: RecorderState = "starting"
        #: Why recording fails now (None unless ``state`` is ``failed``).
        self.error: str | None = None
        self.storage_failures = 0
        #: False while recording is switched off (Home Assistant's switch): packets only
        #: feed the pre-roll, no segment is written.
        self.enabled = True
        #: The video packets as demuxed, for live stream copy (``vigil.record.tap``).
        self.tap = PacketTap(camera_id)

    def note_motion(self, when: float) -> None:
        """The camera's motion gate saw motion at ``when`` (UTC seconds); thread-safe."""
        self.motion.note(when)

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

        Raises ``SourceError`` only when ``max_attempts`` consecutive connections failed;
        storage failures are retried for ever (see the module docstring).
        """
        failures = 0
        try:
            while not self._stop.is_set():
                if self.state == "failed" and not self._storage_ok():
                    self._wait_storage()
                    continue
                try:
                    worked = self._session()
                except StorageError as exc:
                    self._storage_failed(exc)
                    self._wait_storage()
                    continue
                if worked:
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
                    self._set_state("reconnecting", None)
                    self._stop.wait(self.backoff.next())
        finally:
            try:
                self.segmenter.close()
            except StorageError as exc:  # the last segment is lost; shutting down regardless
                log.warning("%s: %s", self.segmenter.camera, exc)
            self._set_state("stopped", None)

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

    def status(self) -> tuple[RecorderState, str | None]:
        """``(state, error)`` now. Segments the store did not take (the database is full or
        down) are a failure too, though their files were written: retention only deletes
        what the store knows, so unindexed footage would fill the disk and outlive
        ``max_age``."""
        report = self.segmenter.report_error
        if self.error is None and report is not None and self.state != "stopped":
            return "failed", f"recording failed: {report}"
        return self.state, self.error

    def _set_state(self, state: RecorderState, error: str | None) -> None:
        if (state, error) == (self.state, self.error):
            return
        self.state, self.error = state, error
        if self.on_state is not None:
            try:
                self.on_state(self.segmenter.camera, state, error)
            except Exception:  # a status listener must not stop the recording
                log.exception("%s: recording state callback failed", self.segmenter.camera)

    def _storage_failed(self, exc: StorageError) -> None:
        self.storage_failures += 1
        problem = storage_problem(exc)
        if self.state != "failed":
            log.error("%s: %s (%s); retrying", self.segmenter.camera, problem, exc)
        self._set_state("failed", problem)

    def storage_retry_delay(self) -> float:
        """Seconds before the next storage retry: the backoff's, but at most one segment, so
        recording resumes within about one segment of space coming back."""
        return min(self.backoff.next(), self.segmenter.segment_seconds)

    def _wait_storage(self) -> None:
        self._stop.wait(self.storage_retry_delay())

    def _storage_ok(self) -> bool:
        """Whether the recordings folder takes ``PROBE_BYTES`` again (written, then deleted)."""
        folder = self.segmenter.recordings / self.segmenter.camera
        probe = folder / f".probe-{os.getpid()}-{threading.get_ident()}.tmp"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with probe.open("wb") as handle:
                handle.write(bytes(PROBE_BYTES))
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            self._storage_failed(StorageError(f"test write to {folder} failed: {exc}"))
            return False
        finally:
            with contextlib.suppress(OSError):
                probe.unlink(missing_ok=True)
        log.info("%s: the disk takes data again; recording resumes", self.segmenter.camera)
        self._set_state("reconnecting", None)
        return True

    def _session(self) -> bool:
        """One connection: open, demux until it ends or fails. True when packets came.

        Raises ``StorageError`` when a segment cannot be written (the segment is dropped).
        """
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
            self.tap.start(video)
            self.connections += 1
            self._set_state("recording", None)
            streams = [video] if audio is None else [video, audio]
            if self._pacer is not None:
                self._pacer.restart()
            for packet in container.demux(*streams):
                if self._stop.is_set() or not self._paced(packet):
                    break
                if packet.stream_index == video.index:  # before the segmenter restamps it
                    self.tap.publish(packet)
                when = self.segmenter.time_of(packet)
                self.segmenter.write(
                    packet, record=self.recording_at(when if when is not None else clock.now())
                )
                got = True
        except StorageError:
            self.segmenter.abort_segment()
            raise
        except (av.error.FFmpegError, OSError) as exc:
            self.last_error = mask_credentials(str(exc))
            log.warning("%s: stream lost (%s); reconnecting", self.safe_url, self.last_error)
        finally:
            self.tap.end()
            try:
                self.segmenter.finish_segment()
            finally:
                container.close()
        return got
