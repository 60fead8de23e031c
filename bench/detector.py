"""Detector throughput: ms per image for batch 1 vs 4, with 1 and 2 intra-op threads.

Runs ``OnnxDetector.detect_batch`` end to end (letterbox, inference, decode, NMS) on real
768x432 frames of ``one-by-one-person-detection.mp4`` and prints each setting's ms/image and
its speed-up against batch 1 / 1 thread measured in the same run. Settings take turns over
several rounds and each reports its median round, since other processes may share the CPU.

    python bench/detector.py [--model PATH] [--images 32] [--rounds 5]
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


def ms_per_image(detector: OnnxDetector, frames: list[ImageArray], batch: int) -> float:
    """One pass over ``frames`` in batches of ``batch``; milliseconds per image."""
    start = time.perf_counter()
    for i in range(0, len(frames), batch):
        detector.detect_batch(frames[i : i + batch])
    return (time.perf_counter() - start) * 1000.0 / len(frames)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=shared_models_dir() / "yolox_nano.onnx")
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    frames = load_frames(args.images)
    load = _loadavg()
    # (threads, spin_wait): the default non-spinning pools, and spinning for comparison
    detectors = {
        (t, spin): OnnxDetector(args.model, threads=t, max_batch=8, spin_wait=spin)
        for t, spin in ((1, False), (2, False), (2, True))
    }
    settings = [(t, spin, batch) for t, spin in detectors for batch in (1, 4)]
    timings: dict[tuple[int, bool, int], list[float]] = {s: [] for s in settings}
    for threads, spin, batch in settings:  # warm-up: the first runs allocate
        ms_per_image(detectors[(threads, spin)], frames[:8], batch)
    # Settings take turns within each round, so load from other processes hits all alike.
    for _ in range(args.rounds):
        for threads, spin, batch in settings:
            ms = ms_per_image(detectors[(threads, spin)], frames, batch)
            timings[(threads, spin, batch)].append(ms)
    print(f"model {args.model.name}, {len(frames)} frames 768x432, median of {args.rounds} rounds")
    print(f"1-minute load average before the run: {load} (others sharing the CPU skew it)")
    baseline = statistics.median(timings[(1, False, 1)])
    for threads, spin, batch in settings:
        ms = statistics.median(timings[(threads, spin, batch)])
        print(
            f"threads={threads} batch={batch} spin={'on ' if spin else 'off'}: {ms:6.2f} ms/image"
            f"  {1000.0 / ms:6.1f} images/s  x{baseline / ms:4.2f} vs batch 1 / 1 thread"
        )


def _loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().split(" ", 3)[0]
    except OSError:
        return "?"


if __name__ == "__main__":
    main()
