"""``vigil.media.h264``, the one H.264 writer: real encodes, checked with FFmpeg's own tools.

Odd sizes, keyframe spacing (``ffprobe``'s packet flags), faststart (the ``moov`` box before
``mdat``), fragmented MP4 that ``ffmpeg`` decodes, audio copied only when asked, timestamps,
fail-closed files and the errors, each naming the file and the fix.
"""

from __future__ import annotations

import itertools
import pickle
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from tests.ffprobe import decoded_frames, keyframe_gaps, probe, require, streams, top_level_boxes
from vigil.errors import MediaError, MediaReadError, MediaWriteError, SourceError, StorageError
from vigil.media.h264 import (
    CLOCK,
    FILE,
    LIVE,
    Encoding,
    Fragmenter,
    H264File,
    Mp4Output,
    codec_string,
    decode,
    open_input,
    partial_file,
    split_boxes,
)
from vigil.types import ImageArray


def moving(count: int, size: tuple[int, int]) -> list[ImageArray]:
    """A bright bar sliding over a gradient: motion without scene cuts, so every keyframe is
    the encoder's interval, not its scene detection."""
    width, height = size
    base = np.tile(np.linspace(40, 200, width, dtype=np.uint8), (height, 1))
    frames = []
    for i in range(count):
        image = np.repeat(base[:, :, None], 3, axis=2)
        x = (2 * i) % max(1, width - 8)
        image[:, x : x + 8] = 250
        frames.append(image)
    return frames


def ffmpeg(*args: str) -> None:
    subprocess.run([require("ffmpeg"), "-v", "error", "-y", *args], check=True, timeout=120)


@pytest.fixture(scope="module")
def with_audio(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 s of testsrc 160x120 at 10 fps (a single keyframe) with a 440 Hz AAC tone."""
    out = tmp_path_factory.mktemp("input") / "in.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:rate=10", "-f", "lavfi",
           "-i", "sine=frequency=440:sample_rate=16000", "-t", "3", "-c:v", "libx264",
           "-g", "1000", "-pix_fmt", "yuv420p", "-c:a", "aac", str(out))  # fmt: skip
    return out


def test_odd_sides_are_padded_with_black_and_every_pixel_kept(tmp_path: Path) -> None:
    path = tmp_path / "odd.mp4"
    image = np.full((21, 33, 3), 128, np.uint8)
    with H264File(path, 10, (33, 21)) as out:
        for _ in range(10):
            out.write(image)
    (video,) = streams(path)
    assert (video["width"], video["height"]) == (34, 22)
    with av.open(str(path)) as container:
        first = next(container.decode(video=0)).to_ndarray(format="bgr24")
    assert abs(float(first[:21, :33].mean()) - 128) < 4, "the picture is where it was"
    assert first[:, 33].max() < 40, "the added column is black"
    assert first[21, :].max() < 40, "the added row is black"


@pytest.mark.parametrize(
    ("fps", "encoding"),
    [
        pytest.param(10.0, FILE, id="files: 2 s at 10 fps"),
        pytest.param(25.0, FILE, id="files: 2 s at 25 fps"),
        pytest.param(12.5, Encoding(keyframe_s=1.0), id="1 s at 12.5 fps"),
        pytest.param(15.0, LIVE, id="live: 1 s at 15 fps"),
    ],
)
def test_keyframes_come_at_least_every_interval(
    tmp_path: Path, fps: float, encoding: Encoding
) -> None:
    path = tmp_path / "gop.mp4"
    seconds = 6
    with H264File(path, fps, (96, 64), encoding=encoding) as out:
        for image in moving(round(seconds * fps), (96, 64)):
            out.write(image)
    gaps = keyframe_gaps(path)
    assert max(gaps) <= encoding.keyframe_s + 1e-6, gaps
    assert len(gaps) >= seconds / encoding.keyframe_s, gaps


def test_files_have_their_index_first(tmp_path: Path) -> None:
    path = tmp_path / "fast.mp4"
    with H264File(path, 10, (64, 48)) as out:
        for image in moving(20, (64, 48)):
            out.write(image)
    boxes = top_level_boxes(path.read_bytes())
    assert boxes[0] == "ftyp"
    assert boxes.index("moov") < boxes.index("mdat"), f"faststart: {boxes}"


def test_fragmented_output_is_an_init_segment_and_one_playable_fragment_a_frame(
    tmp_path: Path,
) -> None:
    fragmenter = Fragmenter((97, 65), 15)
    fragments = []
    for i, image in enumerate(moving(20, (97, 65))):
        fragments += fragmenter.encode(image, i * 6000, keyframe=i in (0, 7))
    fragmenter.close()
    assert fragmenter.init is not None
    assert [kind for kind, _ in split_boxes(bytearray(fragmenter.init))] == [b"ftyp", b"moov"]
    assert codec_string(fragmenter.init).startswith("avc1.42"), "constrained baseline"
    for fragment in fragments:
        assert [kind for kind, _ in split_boxes(bytearray(fragment.data))] == [b"moof", b"mdat"]
    assert len(fragments) >= 19  # the last frame's fragment waits for the next frame
    assert fragments[0].key, "the first frame"
    assert fragments[7].key, "an asked-for keyframe"
    assert not any(f.key for f in fragments[1:7]), "no B-frames or lookahead: one frame each"
    path = tmp_path / "live.mp4"
    path.write_bytes(fragmenter.init + b"".join(f.data for f in fragments))
    assert decoded_frames(path) == len(fragments)
    (video,) = streams(path)
    assert (video["width"], video["height"]) == (98, 66)


def _copy_video_and_audio(source: Path, target: Path, *, audio: bool) -> int:
    """Re-encode ``source``'s video, copy its audio packets when ``audio``, as ``vigil redact``
    does; returns the audio packets copied."""
    copied = 0
    with open_input(source) as inp, Mp4Output(target) as out:
        vin = inp.streams.video[0]
        video = out.add_h264((160, 120), 10, FILE, time_base=vin.time_base)
        ain = inp.streams.audio[0]
        aout = out.add_copy(ain) if audio else None
        for packet in inp.demux(vin, ain):
            if packet.stream is vin:
                for frame in decode(packet, source):
                    video.write(frame.to_ndarray(format="bgr24"), frame.pts, frame.time_base)
            elif aout is not None and packet.dts is not None:
                packet.stream = aout
                out.mux(packet)
                copied += 1
    return copied


def test_audio_is_copied_packet_for_packet_when_asked(with_audio: Path, tmp_path: Path) -> None:
    target = tmp_path / "out.mp4"
    copied = _copy_video_and_audio(with_audio, target, audio=True)
    facts = probe(target)
    kinds = {s["codec_type"]: s for s in facts["streams"]}
    assert kinds["video"]["codec_name"] == "h264"
    assert kinds["audio"]["codec_name"] == "aac"
    audio_index = kinds["audio"]["index"]
    audio_packets = [p for p in facts["packets"] if p["stream_index"] == audio_index]
    source_audio = [p for p in probe(with_audio)["packets"] if p["stream_index"] == 1]
    assert copied == len(audio_packets) == len(source_audio)
    assert [p["size"] for p in audio_packets] == [p["size"] for p in source_audio]
    assert max(keyframe_gaps(target)) <= FILE.keyframe_s + 1e-6, "a new GOP, not the input's"


def test_no_audio_unless_asked(with_audio: Path, tmp_path: Path) -> None:
    target = tmp_path / "silent.mp4"
    _copy_video_and_audio(with_audio, target, audio=False)
    assert [s["codec_type"] for s in streams(target)] == ["video"]


def test_timestamps_are_rescaled_and_kept_increasing(tmp_path: Path) -> None:
    path = tmp_path / "times.mp4"
    with Mp4Output(path) as out:
        video = out.add_h264((64, 48), 10, FILE, time_base=CLOCK)
        millis = [0, 100, 200, 200, 150, 500]  # a repeated and a backward step
        for image, ms in zip(moving(len(millis), (64, 48)), millis, strict=True):
            video.write(image, ms, Fraction(1, 1000))
    facts = probe(path)
    times = sorted(float(p["pts_time"]) for p in facts["packets"])
    assert len(times) == len(millis)
    assert times[:3] == pytest.approx([0.0, 0.1, 0.2], abs=1e-3)
    assert all(b > a for a, b in itertools.pairwise(times)), times
    assert times[-1] == pytest.approx(0.5, abs=1e-3)


def _stopped_half_way(target: Path) -> None:
    with partial_file(target) as partial, H264File(partial, 10, (64, 48)) as out:
        out.write(moving(1, (64, 48))[0])
        raise RuntimeError("stopped half way")


def test_partial_file_appears_only_when_complete(tmp_path: Path) -> None:
    target = tmp_path / "clips" / "a.mp4"
    with pytest.raises(RuntimeError, match="stopped"):
        _stopped_half_way(target)
    assert list(target.parent.iterdir()) == []
    with partial_file(target) as partial, H264File(partial, 10, (64, 48)) as out:
        for image in moving(5, (64, 48)):
            out.write(image)
        assert not target.exists()
    assert [p.name for p in target.parent.iterdir()] == ["a.mp4"]
    assert decoded_frames(target) == 5


@pytest.fixture
def audio_only(tmp_path: Path) -> Path:
    out = tmp_path / "tone.m4a"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=16000", "-t", "1", str(out))
    return out


def test_inputs_fail_naming_the_file_and_the_fix(tmp_path: Path, audio_only: Path) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n")
    cases = [
        (tmp_path / "missing.mp4", "no such file; check the path"),
        (text, "cannot be opened as video"),
        (audio_only, "has no video stream; give a file with video"),
    ]
    for path, said in cases:
        with pytest.raises(MediaReadError) as info:
            open_input(path)
        assert isinstance(info.value, SourceError), "the API answers 404 for missing media"
        assert str(info.value).startswith(f"{path}: "), str(info.value)
        assert said in str(info.value)
        assert info.value.path == str(path)
        assert info.value.fix


def test_outputs_fail_naming_the_file_and_the_fix(tmp_path: Path) -> None:
    blocker = tmp_path / "exports"
    blocker.write_text("a file where a folder should be\n")
    with pytest.raises(MediaWriteError) as info:
        H264File(blocker / "x.mp4", 10, (64, 48))
    assert isinstance(info.value, StorageError), "the API answers 503 for storage faults"
    assert str(blocker) in str(info.value)
    assert "check" in info.value.fix


def test_media_errors_survive_pickling() -> None:
    """Jobs and worker processes pass errors on: the path and fix must come along."""
    error = MediaReadError("/x/in.mp4", "cannot be decoded", "is the file damaged?", "EOF")
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is MediaReadError
    assert isinstance(again, MediaError)
    assert str(again) == str(error) == "/x/in.mp4: cannot be decoded (EOF); is the file damaged?"
    assert (again.path, again.fix) == (error.path, error.fix)
