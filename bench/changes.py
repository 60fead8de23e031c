"""What hiding the changes since the decided frame costs (``vigil.privacy.changes``).

Run from the repository root::

    python bench/changes.py [--seconds 60] [--width 640] [--detect-fps 5]

The one-by-one clip (10 fps) at ``--width`` (640: a camera's ``latest_frame`` size), through
the camera pipeline with yolox-nano at ``--detect-fps``, as a camera whose tracks hold people
(``redact.mode: people``, the default ``blur``): each frame is redacted as live video
redacts it, with the people boxes of the last analysed frame, once as before (``plain``) and
once with the changes since the analysed frame hidden too (``changes``: the thumbnail of the
analysed frame, made once per analysed frame as ``CameraWorker`` makes it, and the
comparison on every frame). Printed: the redaction's CPU time per frame (process CPU time,
OpenCV's threads included), what that is per stream at the clip's rate, and how often and
how much more of the picture the changes hid (frames not analysed only), and the camera
worker's part: the analysed frame's thumbnail, made from the decoder's frame.
"""

from __future__ import annotations

import argparse
import time

import av
import numpy as np

from vigil.config.loader import parse_config
from vigil.config.models import RedactConfig
from vigil.detect import build_detector
from vigil.ingest import open_source
from vigil.paths import shared_data_dir
from vigil.privacy import Redactor
from vigil.privacy.changes import Decided, thumbnail
from vigil.runtime.pipeline import CameraPipeline
from vigil.types import Detections, Frame, ImageArray

CAMERA = """
cameras:
  cam:
    sources: [{url: "synthetic://"}]
    detect: {fps: %s, labels: [person]}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--detect-fps", type=float, default=5.0)
    args = parser.parse_args()
    clip = shared_data_dir() / "clips" / "one-by-one-person-detection.mp4"
    frames: list[ImageArray] = []
    with av.open(str(clip)) as box:
        stream = box.streams.video[0]
        fps = float(stream.average_rate or 10)
        height = round(stream.height * args.width / stream.width) // 2 * 2
        for frame in box.decode(stream):
            if len(frames) >= args.seconds * fps:
                break
            frames.append(frame.to_ndarray(format="bgr24", width=args.width, height=height))
    size = (args.width, height)
    camera = parse_config(CAMERA % args.detect_fps).camera("cam")
    pipeline = CameraPipeline(camera, build_detector(camera.detect), size, source_fps=fps)
    work: list[tuple[ImageArray, Detections, bool, int]] = []
    decided_at = 0
    for i, image in enumerate(frames):
        result = pipeline.process(Frame.from_bgr(image, seq=i, pts=i / fps, wall_time=i / fps))
        if result.analysed:
            decided_at = i
        raw = result.detections
        people = Detections.merge([result.tracked,
                                   Detections(raw.xyxy, raw.confidence, raw.class_id)])  # fmt: skip
        work.append((image, people, result.analysed, decided_at))
    config = RedactConfig.model_validate({"mode": "people"})

    started = time.process_time()
    plain = Redactor(config, size)
    for image, people, _, _ in work:
        plain.process(image, people=people)
    before = (time.process_time() - started) / len(work)

    started = time.process_time()
    guarded = Redactor(config, size)
    thumb, thumb_of = None, -1
    for image, people, analysed, at in work:
        if at != thumb_of:  # the worker's one thumbnail per analysed frame
            thumb, thumb_of = thumbnail(frames[at]), at
        assert thumb is not None
        decided = [] if analysed else [Decided(thumb)]
        guarded.process(image, people=people, decided=decided)
    after = (time.process_time() - started) / len(work)

    # How much more was hidden, measured apart from the timing: where the outputs differ.
    one, two = Redactor(config, size), Redactor(config, size)
    extra, area = 0, []
    for image, people, analysed, at in work:
        a = one.process(image, people=people)
        decided = [] if analysed else [Decided(thumbnail(frames[at]))]
        b = two.process(image, people=people, decided=decided)
        if not analysed and (a != b).any():
            extra += 1
            area.append(float((a != b).any(axis=2).mean()))
    # The camera worker's part: the analysed frame converted at latest_frame's size (from
    # the decoder's frame, as CameraWorker does) and its thumbnail, once per analysed frame.
    source = open_source(str(clip), "cam")
    source.open()
    decoded = []
    for item in source.frames():
        decoded.append(item)
        if len(decoded) >= 100:
            break
    started = time.process_time()
    for item in decoded:
        thumbnail(item.bgr(size))
    worker = (time.process_time() - started) / len(decoded)
    source.close()
    between = sum(1 for w in work if not w[2])
    print(f"{len(work)} frames {args.width}x{height} at {fps:g} fps, detect {args.detect_fps:g} "
          f"fps ({between} frames between analysed ones)")  # fmt: skip
    print(f"redaction CPU per frame: plain {before * 1000:.2f} ms, changes {after * 1000:.2f} ms"
          f" (+{(after - before) * 1000:.2f} ms)")  # fmt: skip
    print(
        f"per stream at {fps:g} fps: plain {before * fps * 100:.1f} %, changes "
        f"{after * fps * 100:.1f} % of one core (+{(after - before) * fps * 100:.1f} %)"
    )
    print(
        f"camera worker: {worker * 1000:.2f} ms per analysed frame, "
        f"{worker * args.detect_fps * 100:.1f} % of one core at {args.detect_fps:g} fps"
    )
    mean = float(np.mean(area)) if area else 0.0
    print(
        f"changes hidden in {extra} of {between} frames between analysed ones; "
        f"mean extra area when any: {mean * 100:.1f} % of the picture"
    )


if __name__ == "__main__":
    main()
