"""``vigil track-mot``: run Vigil's tracker over MOTChallenge detections, write MOT tracks.

For benchmarking the tracker alone against published results (no video needed).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from vigil.config import load_config
from vigil.track.mot import run_track_mot


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "track-mot",
        help="track MOTChallenge detections (det.txt) and write MOT-format tracks",
        description="Read detections in MOTChallenge format (frame, id, x, y, w, h, conf, ...; "
        "frames from 1), track them and write 'frame, id, x, y, w, h, 1, -1, -1, -1' lines.",
    )
    parser.add_argument("detections", type=Path, metavar="DETECTIONS_TXT")
    parser.add_argument("output", type=Path, metavar="OUTPUT_TXT")
    parser.add_argument(
        "--fps", type=float, default=25.0, help="frame rate of the sequence (default 25)"
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="Vigil YAML whose 'tracker' section to use (default: the tracker defaults, "
        "the same as the product's)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config).tracker if args.config else None
    count = run_track_mot(args.detections, args.output, args.fps, config)
    print(f"{count} tracks written to {args.output}")
    return 0
