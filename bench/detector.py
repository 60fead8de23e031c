"""Detector throughput: ms per image for batch 1 vs 4, with 1 and 2 intra-op threads.

Runs ``OnnxDetector.detect_batch`` end to end (letterbox, inference, decode, NMS) on real
768x432 frames of ``one-by-one-person-detection.mp4`` and prints each setting's ms/image and
its speed-up against batch 1 / 1 thread measured in the same run. Each setting is timed in
several rounds and the median round is reported, since other processes share the CPU.

    python bench/detector.py [--model PATH] [--images 32] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import av
import numpy as np

from vigil.detect import OnnxDetector
from vigil.paths import shared_data_dir, shared_models_dir
from vigil.types import ImageArray


def load_frames(count: int) -> list[ImageArray]:
    path = shared_data_dir() / "clips" / "one-by-one-person-detection.mp4"
    frames: list[ImageArray] = []
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i % 10 == 0:
                frames.append(np.asarray(frame.to_ndarray(format="bgr24"), np.uint8))
            if len(frames) == count:
                break
    return frames


def ms_per_image(
    detector: OnnxDetector, frames: list[ImageArray], batch: int, rounds: int
) -> float:
    detector.detect_batch(frames[:batch])  # warm-up: first run allocates
    timings = []
    for _ in range(rounds):
        start = time.perf_counter()
        for i in range(0, len(frames), batch):
            detector.detect_batch(frames[i : i + batch])
        timings.append((time.perf_counter() - start) * 1000.0 / len(frames))
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=shared_models_dir() / "yolox_nano.onnx")
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    frames = load_frames(args.images)
    print(f"model {args.model.name}, {len(frames)} frames of 768x432, median of {args.rounds}")
    baseline: float | None = None
    for threads in (1, 2):
        detector = OnnxDetector(args.model, threads=threads, max_batch=8)
        for batch in (1, 4):
            ms = ms_per_image(detector, frames, batch, args.rounds)
            baseline = baseline or ms
            print(
                f"threads={threads} batch={batch}: {ms:6.2f} ms/image  "
                f"{1000.0 / ms:6.1f} images/s  x{baseline / ms:4.2f} vs batch 1 / 1 thread"
            )


if __name__ == "__main__":
    main()
