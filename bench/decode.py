"""Decode throughput of ``AvSource``: luma only vs luma + full BGR vs luma + BGR scaled.

Decodes a whole clip (default ``one-by-one-person-detection.mp4``, 768x432 H.264) in each
mode and prints frames/s and the ratio to plain PyAV decoding (threaded, no pixel access)
measured in the same run. Modes take turns over several rounds; each reports its median round,
since other processes may share the CPU.

    python bench/decode.py [--clip PATH] [--rounds 3] [--width 416]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import av

from vigil.ingest import AvSource
from vigil.paths import shared_data_dir


def decode_only(path: Path, threaded: bool) -> int:
    """Plain PyAV decoding, no pixel access: the floor every mode builds on."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if threaded:
            stream.thread_type = "AUTO"
        return sum(1 for _ in container.decode(stream))


def luma_only(path: Path) -> int:
    return sum(1 for f in AvSource(str(path)).frames() if f.luma.size)


def luma_bgr(path: Path) -> int:
    return sum(1 for f in AvSource(str(path)).frames() if f.bgr().size)


def luma_bgr_scaled(path: Path, width: int) -> int:
    count = 0
    for frame in AvSource(str(path)).frames():
        height = round(width * frame.height / frame.width)
        count += frame.bgr((width, height)).size > 0
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--clip",
        type=Path,
        default=shared_data_dir() / "clips" / "one-by-one-person-detection.mp4",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--width", type=int, default=416)
    args = parser.parse_args()
    modes: dict[str, Callable[[], int]] = {
        "decode only (PyAV, threads)": lambda: decode_only(args.clip, True),
        "decode only (PyAV, 1 thread)": lambda: decode_only(args.clip, False),
        "AvSource luma": lambda: luma_only(args.clip),
        "AvSource luma + full BGR": lambda: luma_bgr(args.clip),
        f"AvSource luma + BGR {args.width} wide": lambda: luma_bgr_scaled(args.clip, args.width),
    }
    rates: dict[str, list[float]] = {name: [] for name in modes}
    for _ in range(args.rounds):
        for name, run in modes.items():
            start = time.perf_counter()
            frames = run()
            rates[name].append(frames / (time.perf_counter() - start))
    baseline = statistics.median(rates["decode only (PyAV, threads)"])
    print(f"{args.clip.name}: median of {args.rounds} rounds")
    print(f"{'mode':<36} {'frames/s':>9} {'vs decode':>10}")
    for name, values in rates.items():
        rate = statistics.median(values)
        print(f"{name:<36} {rate:9.0f} {rate / baseline:9.2f}x")


if __name__ == "__main__":
    main()
