"""AvSource against real files, real FFmpeg and a real RTSP server.

The RTSP test runs Debian's ``rtsp-server-perl`` (a relay: publishers push to ``-s`` port,
readers pull from ``-c`` port, RTP over UDP only) with an ``ffmpeg`` publisher; killing and
restarting the publisher is a camera dropping out and coming back.
"""

from __future__ import annotations

import functools
import http.server
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from av.video.stream import VideoStream

from tests.rtsp_relay import RtspRelay, require_tools
from vigil.errors import SourceError
from vigil.ingest import AvSource, Backoff, SourceState, SourceStatus, open_source
from vigil.types import Frame

MP4 = "one-by-one-person-detection.mp4"

#: file -> (frames, width, height, nominal fps), from the shared data README.
CLIPS = {
    MP4: (1394, 768, 432, 10.0),
    "car-detection.mp4": (377, 768, 432, 12.5),
    "person-bicycle-car-detection.gif": (41, 480, 270, 12.5),
    "people-detection.gif": (23, 480, 270, 12.5),
    "face-demographics-walking.gif": (35, 480, 270, 12.5),
    "worker-zone-detection.gif": (71, 480, 270, 16.7),
}


# -- files ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CLIPS))
def test_clip_frames_pts_and_seq(clips_dir: Path, name: str) -> None:
    count, width, height, fps = CLIPS[name]
    with AvSource(str(clips_dir / name), "cam1") as source:
        info = source.open()
        assert (info.width, info.height, info.live) == (width, height, False)
        assert info.fps == pytest.approx(fps, abs=0.1)
        seqs, pts, walls = [], [], []
        for frame in source.frames():
            assert frame.luma.shape == (height, width)
            assert frame.camera_id == "cam1"
            assert not frame.live
            seqs.append(frame.seq)
            pts.append(frame.pts)
            walls.append(frame.wall_time)
    assert seqs == list(range(count))
    assert pts[0] == 0.0
    assert np.all(np.diff(pts) > 0)
    # Media time: the mean frame interval is close to the nominal rate's. GIF delays are whole
    # centiseconds (worker-zone alternates 6 and 7 cs: 15 fps shown, 16.7 declared).
    assert (pts[-1] / (count - 1)) == pytest.approx(1 / fps, rel=0.15)
    np.testing.assert_allclose(np.asarray(walls) - walls[0], pts, atol=1e-6)
    assert source.status.state is SourceState.ENDED


def test_mp4_pts_are_exact_tenths(clips_dir: Path) -> None:
    source = AvSource(str(clips_dir / MP4))
    pts = [f.pts for f in source.frames()]
    assert source.open().frame_count == 1394
    np.testing.assert_allclose(pts, np.arange(1394) / 10.0, atol=1e-9)


@pytest.mark.parametrize("name", [MP4, "people-detection.gif", "worker-zone-detection.gif"])
def test_luma_matches_gray_of_bgr(clips_dir: Path, name: str) -> None:
    source = AvSource(str(clips_dir / name))
    for i, frame in enumerate(source.frames()):
        if i % 10:
            continue
        gray = cv2.cvtColor(frame.bgr(), cv2.COLOR_BGR2GRAY).astype(np.int16)
        diff = np.abs(gray - frame.luma.astype(np.int16))
        # Limited-range luma is expanded to full range; what is left is rounding and the
        # BT.601/709 coefficient difference in colourful pixels.
        assert float(diff.mean()) < 2.5
        assert float(np.percentile(diff, 99)) <= 8
        if i >= 50:
            break
    source.close()


@pytest.mark.parametrize("name", [MP4, "people-detection.gif"])
def test_scaled_bgr(clips_dir: Path, name: str) -> None:
    source = AvSource(str(clips_dir / name))
    frame = next(iter(source.frames()))
    full = frame.bgr()
    assert full.shape == (frame.height, frame.width, 3)
    assert frame.bgr() is full  # cached
    height = round(416 * frame.height / frame.width)
    small = frame.bgr((416, height))
    assert small.shape == (height, 416, 3)
    assert small.dtype == np.uint8
    reference = cv2.resize(full, (416, height), interpolation=cv2.INTER_AREA)
    assert float(np.abs(small.astype(np.int16) - reference).mean()) < 4
    source.close()


def _write_video(
    path: Path, size: tuple[int, int], codec: str, pix_fmt: str, frames: int = 6
) -> list[np.ndarray]:
    """A video whose width is no multiple of 32, so decoded planes carry line padding."""
    width, height = size
    images = []
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=10)
        assert isinstance(stream, VideoStream)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        for i in range(frames):
            ramp = np.linspace(30, 220, width, dtype=np.float32)[None, :] + 0 * i
            image = np.repeat(np.repeat(ramp, height, 0)[:, :, None], 3, 2).astype(np.uint8)
            cv2.rectangle(image, (10 + 5 * i, 10), (60 + 5 * i, 60), (0, 0, 0), -1)
            images.append(image)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return images


@pytest.mark.parametrize(
    ("codec", "pix_fmt", "suffix"),
    [("libx264", "yuv420p", "mp4"), ("mjpeg", "yuvj420p", "avi")],  # limited and full range
)
def test_luma_is_stride_aware_and_a_copy(
    tmp_path: Path, codec: str, pix_fmt: str, suffix: str
) -> None:
    path = tmp_path / f"odd.{suffix}"
    images = _write_video(path, (250, 142), codec, pix_fmt)
    with av.open(str(path)) as container:
        first = next(container.decode(video=0))
        assert first.format.name == pix_fmt
        assert first.planes[0].line_size > first.width, "the test needs padded planes"
    frames = list(AvSource(str(path)).frames())
    assert len(frames) == len(images)
    for frame, image in zip(frames, images, strict=True):
        assert frame.luma.shape == (142, 250)
        assert frame.luma.flags.c_contiguous
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.int16)
        assert float(np.abs(gray - frame.luma).mean()) < 3
        # The luma plane is Vigil's own: writing to it leaves the decoded frame alone.
        before = frame.bgr((250, 142)).copy()
        frame.luma[:] = 0
        np.testing.assert_array_equal(frame.bgr((250, 142)), before)


@pytest.mark.parametrize(
    ("codec", "pix_fmt", "suffix", "exact"),
    [("libx264", "yuv420p", "mp4", False), ("mjpeg", "yuvj420p", "avi", True)],
)
def test_reduced_luma_comes_from_the_padded_plane_without_the_full_copy(
    tmp_path: Path, codec: str, pix_fmt: str, suffix: str, exact: bool
) -> None:
    path = tmp_path / f"odd.{suffix}"
    _write_video(path, (250, 142), codec, pix_fmt)
    for frame in AvSource(str(path)).frames():
        small = frame.luma_at((125, 71))
        assert frame._luma is None  # the motion gate's input costs no full-size copy
        reference = cv2.resize(frame.luma, (125, 71), interpolation=cv2.INTER_AREA)
        diff = np.abs(small.astype(np.int16) - reference)
        if exact:  # full range: averaging is all there is
            np.testing.assert_array_equal(small, reference)
        else:  # limited range mapped after averaging instead of before: rounding only
            assert int(diff.max()) <= 5
            assert float(diff.mean()) < 0.5


# -- errors ---------------------------------------------------------------------------------


def _open_error(url: str, **kwargs: object) -> str:
    with pytest.raises(SourceError) as info:
        AvSource(url, **kwargs).open()  # type: ignore[arg-type]
    return str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    message = _open_error(str(tmp_path / "nope.mp4"))
    assert str(tmp_path / "nope.mp4") in message
    assert "No such file" in message
    assert "check the path" in message


def test_text_file_renamed_mp4(tmp_path: Path) -> None:
    path = tmp_path / "notes.mp4"
    path.write_text("these are meeting notes, not a video\n" * 20)
    message = _open_error(str(path))
    assert str(path) in message
    assert "is it really a video file?" in message


def test_directory(tmp_path: Path) -> None:
    assert "not a directory" in _open_error(str(tmp_path))


def test_audio_only_file(tmp_path: Path) -> None:
    require_tools("ffmpeg")
    path = tmp_path / "tone.m4a"
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:duration=1",
            str(path),
        ],
        check=True,
    )
    assert "no video stream" in _open_error(str(path))


def test_unreachable_camera_masks_credentials() -> None:
    statuses: list[SourceStatus] = []
    url = "rtsp://admin:hunter2@127.0.0.1:1/x"
    started = time.monotonic()
    message = _open_error(url, stall_timeout=2.0, on_status=statuses.append)
    assert time.monotonic() - started < 5
    assert "rtsp://admin:***@127.0.0.1:1/x" in message
    assert "is the camera reachable?" in message
    assert "hunter2" not in message
    assert [s.state for s in statuses] == [SourceState.CONNECTING, SourceState.FAILED]
    assert all("hunter2" not in f"{s.url} {s.last_error}" for s in statuses)


def test_silent_server_times_out() -> None:
    """A host that accepts the connection but never answers: the open timeout applies."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        started = time.monotonic()
        message = _open_error(f"rtsp://127.0.0.1:{port}/x", open_timeout=1.0)
        assert time.monotonic() - started < 4
    assert "no answer within 1 s" in message
    assert "is the camera reachable?" in message


def test_unknown_scheme() -> None:
    assert "check the scheme" in _open_error("nosuchproto://x/y")


def test_open_is_idempotent_and_close_stops(clips_dir: Path) -> None:
    source = open_source(str(clips_dir / MP4), "cam1")
    assert source.open() == source.open()
    seqs = []
    for frame in source.frames():
        seqs.append(frame.seq)
        if frame.seq == 4:
            source.close()
    assert seqs == [0, 1, 2, 3, 4]
    with pytest.raises(SourceError, match="was closed"):
        source.open()


# -- HTTP / HLS ---------------------------------------------------------------------------------


@pytest.fixture
def hls_url(clips_dir: Path, tmp_path: Path) -> Iterator[str]:
    """The first 3 s of a clip as an HLS playlist served over HTTP from a local server."""
    require_tools("ffmpeg")
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-loglevel",
            "error",
            "-i",
            str(clips_dir / MP4),
            "-t",
            "3",
            "-c",
            "copy",
            "-f",
            "hls",
            "-hls_time",
            "1",
            "-hls_playlist_type",
            "vod",
            str(tmp_path / "live.m3u8"),
        ],
        check=True,
    )
    handler = functools.partial(_QuietHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/live.m3u8"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """No request log on stderr."""


def test_hls_over_http(hls_url: str) -> None:
    source = AvSource(hls_url, "hls", reconnect=False, stall_timeout=5.0)
    info = source.open()
    assert (info.width, info.height, info.live, info.frame_count) == (768, 432, True, None)
    frames = list(source.frames())
    # Stream copy cuts at packet boundaries: about 3 s at 10 fps.
    assert 28 <= len(frames) <= 32
    assert [f.seq for f in frames] == list(range(len(frames)))
    assert frames[0].pts == 0.0
    np.testing.assert_allclose(np.diff([f.pts for f in frames]), 0.1, atol=1e-6)
    assert all(f.live for f in frames)
    assert source.status.state is SourceState.ENDED


# -- a real RTSP server -----------------------------------------------------------------------


@pytest.fixture
def relay(clips_dir: Path) -> Iterator[RtspRelay]:
    require_tools("rtsp-server-perl", "ffmpeg")
    server = RtspRelay(clips_dir / MP4)
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.slow
def test_rtsp_reconnects_after_the_camera_drops_out(relay: RtspRelay) -> None:
    relay.publish()
    time.sleep(1.5)  # the publisher announces the stream
    statuses: list[SourceStatus] = []
    restarted = threading.Event()

    def on_status(status: SourceStatus) -> None:
        statuses.append(status)
        # The camera comes back once the source has noticed it was gone.
        if status.state is SourceState.RECONNECTING and relay.publisher is None:
            relay.publish()
            restarted.set()

    url = f"rtsp://viewer:s3cret@127.0.0.1:{relay.client_port}/cam1"
    source = AvSource(
        url,
        "door",
        stall_timeout=2.0,
        open_timeout=8.0,
        on_status=on_status,
        options={"rtsp_transport": "udp"},
        backoff=Backoff(0.3, 2, 2.0, jitter=0),
    )
    watchdog = threading.Timer(45, source.close)
    watchdog.start()
    frames = []
    try:
        for frame in source.frames():
            frames.append((frame.seq, frame.pts, frame.wall_time))
            if len(frames) == 20:
                relay.unpublish()
                killed_at = len(frames)
            if (
                restarted.is_set()
                and len(frames) > killed_at + 20
                and (statuses[-1].state is SourceState.STREAMING)
            ):
                break
    finally:
        watchdog.cancel()
        source.close()

    states = [s.state for s in statuses]
    assert states[:2] == [SourceState.CONNECTING, SourceState.STREAMING]
    assert SourceState.STALLED in states or SourceState.RECONNECTING in states
    gone = min(
        i for i, s in enumerate(states) if s in (SourceState.STALLED, SourceState.RECONNECTING)
    )
    assert SourceState.STREAMING in states[gone:], f"never streamed again: {states}"
    seqs = [f[0] for f in frames]
    assert seqs == list(range(len(seqs)))
    assert np.all(np.diff([f[1] for f in frames]) >= 0), "pts must keep increasing"
    assert all(f[2] > 1e9 for f in frames), "live frames carry wall-clock time"
    for status in statuses:
        assert "s3cret" not in f"{status.url} {status.last_error}"
        assert status.url == f"rtsp://viewer:***@127.0.0.1:{relay.client_port}/cam1"


def test_network_stream_reconnects_at_its_end_and_gives_up_when_gone(
    hls_url: str, tmp_path: Path
) -> None:
    """A stream that ends is reopened (seq and pts go on); one that vanishes fails in time."""
    statuses: list[SourceStatus] = []
    source = AvSource(
        hls_url,
        "hls",
        stall_timeout=3.0,
        max_attempts=2,
        on_status=statuses.append,
        backoff=Backoff(0.05, 2, 0.2, jitter=0),
    )
    frames: list[Frame] = []

    def read_all() -> None:
        for frame in source.frames():
            frames.append(frame)
            if len(frames) == 45:  # into the second pass: the server loses the stream
                for path in tmp_path.glob("live*"):
                    path.unlink()

    with pytest.raises(SourceError, match=r"gave up after 2 reconnection attempts.*404"):
        read_all()
    assert len(frames) > 45
    assert [f.seq for f in frames] == list(range(len(frames)))
    assert np.all(np.diff([f.pts for f in frames]) > 0)
    states = [s.state for s in statuses]
    assert states[:3] == [SourceState.CONNECTING, SourceState.STREAMING, SourceState.RECONNECTING]
    assert "the stream ended" in (statuses[2].last_error or "")
    assert states[3] is SourceState.STREAMING
    assert states[-1] is SourceState.FAILED
    assert statuses[-1].attempts == 2


def test_close_from_another_thread_interrupts_a_reconnect_wait(hls_url: str) -> None:
    source = AvSource(hls_url, "hls", backoff=Backoff(30, 2, 60, jitter=0))
    statuses: list[SourceStatus] = []

    def on_status(status: SourceStatus) -> None:
        statuses.append(status)
        if status.state is SourceState.RECONNECTING:
            threading.Timer(0.2, source.close).start()

    source.on_status = on_status
    started = time.monotonic()
    frames = sum(1 for _ in source.frames())
    assert frames >= 28
    assert time.monotonic() - started < 10, "close() must cut the 30 s backoff short"
    assert statuses[-1].state is SourceState.RECONNECTING


def _sampled(
    url: str, skip: bool, seconds: float = 6.0
) -> tuple[list[tuple[int, float]], list[np.ndarray], int]:
    """(seq, pts) and luma of the frames a 5 fps sampler takes, and how many were skipped."""
    from vigil.ingest import FrameSampler

    source = AvSource(url)
    info = source.open()
    sampler = FrameSampler(5.0)
    if skip:
        source.skip = lambda pts: not sampler.needed(pts, 1.0 / info.fps)
    keys, lumas = [], []
    for frame in source.frames():
        if frame.pts > seconds:
            break
        if sampler.take(frame):
            keys.append((frame.seq, round(frame.pts, 6)))
            lumas.append(frame.luma)
    source.close()
    return keys, lumas, source.skipped_frames


@pytest.mark.parametrize("container", ["mp4", "ts"])
def test_skipping_undecoded_frames_changes_no_taken_frame(
    clips_dir: Path, tmp_path: Path, container: str
) -> None:
    """Length-prefixed (MP4) and start-code (MPEG-TS) H.264 alike: the sampler takes the same
    frames with the same seq and the same pixels, while non-reference frames it drops are
    never decoded."""
    url = str(clips_dir / MP4)
    if container == "ts":
        url = str(tmp_path / "clip.ts")
        subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(clips_dir / MP4), "-t", "7",
                        "-c", "copy", "-an", url], check=True)  # fmt: skip
    keys, lumas, skipped = _sampled(url, skip=False)
    skip_keys, skip_lumas, skip_skipped = _sampled(url, skip=True)
    assert skipped == 0
    assert skip_skipped >= 0.3 * 60  # 4 of each 10 frames are droppable B-frames here
    assert skip_keys == keys
    for a, b in zip(lumas, skip_lumas, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "region", [(0, 0, 416, 416), (101, 57, 517, 431), (351, 15, 768, 432), (0, 0, 768, 432)]
)
def test_a_region_converts_exactly_like_the_full_frame(
    clips_dir: Path, region: tuple[int, int, int, int]
) -> None:
    """Odd and even corners, frame edges: the region's own conversion is the full frame's
    conversion cut to the region, pixel for pixel."""
    source = AvSource(str(clips_dir / MP4))
    checked = 0
    for frame in source.frames():
        if frame.seq % 25 == 0:
            x1, y1, x2, y2 = region
            alone = frame.bgr_region(region)
            full = frame.bgr()
            np.testing.assert_array_equal(alone, full[y1:y2, x1:x2])
            checked += 1
        if checked == 4:
            break
    source.close()
    assert checked == 4
