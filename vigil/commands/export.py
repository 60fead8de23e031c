"""``vigil export RECORDINGS CAMERA START END OUT.mp4``: a signed MP4 of a time range.

Redacted by default: faces blurred (``RedactConfig()``), or with ``--config FILE`` as that
configuration redacts the camera (``VigilConfig.redact_for``: mode, style, static masks).
``--unredacted`` needs ``--reason`` and writes an audit record first
(``vigil.privacy.unredacted_access``); it is a stream copy unless the camera has static masks,
which apply even then (the frames are re-encoded with only the masks). Segments are found by
the file layout, so this works from the recordings folder alone.
"""

from __future__ import annotations

import argparse
import getpass
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from vigil.config.models import RedactConfig
from vigil.errors import ConfigError, SourceError
from vigil.media.h264 import open_input
from vigil.paths import cache_dir
from vigil.privacy import (
    Redactor,
    UnredactedGrant,
    build_redactor,
    default_audit_path,
    unredacted_access,
)
from vigil.record.export import RedactorFactory, export_range, overlapping
from vigil.record.layout import check_camera_id, parse_segment_path
from vigil.record.signing import fingerprint, load_or_create_key


def register(subparsers: Any) -> None:
    """Add ``export`` to the ``vigil`` command line."""
    parser = subparsers.add_parser(
        "export", help="export a camera's time range as a signed MP4 (redacted by default)",
        description="Write OUT.mp4 and OUT.mp4.manifest.json (Ed25519-signed hashes).",
    )  # fmt: skip
    parser.add_argument("recordings", type=Path, help="the recordings folder")
    parser.add_argument("camera", help="camera id")
    parser.add_argument("start", help="ISO-8601 start, e.g. 2024-05-01T12:00:00Z")
    parser.add_argument("end", help="ISO-8601 end")
    parser.add_argument("output", type=Path, help="MP4 file to write")
    parser.add_argument("--unredacted", action="store_true", help="no redaction (audited)")
    parser.add_argument("--reason", default="", help="why unredacted output is needed")
    parser.add_argument("--config", metavar="FILE", default=None,
                        help="redact as this configuration does for CAMERA (its own redact: "
                        "settings and static masks); default: faces, no masks")  # fmt: skip
    parser.add_argument(
        "--key", type=Path, default=None,
        help="Ed25519 signing key (created 0600 if absent; default $VIGIL_EXPORT_KEY or cache)",
    )  # fmt: skip
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)


def parse_time(text: str) -> float:
    """UTC seconds of an ISO-8601 time; a time without offset is taken as UTC."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ConfigError(f"{text!r} is not an ISO-8601 time like 2024-05-01T12:00:00Z") from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def find_segments(recordings: Path, camera: str, start: float, end: float) -> list[Path]:
    """Segment files of ``camera`` overlapping ``[start, end)``, found by their names.

    A segment's end is read from its container (its duration), so gaps are respected.
    """
    folder = recordings / check_camera_id(camera)
    if not folder.is_dir():
        raise SourceError(f"no recordings of camera {camera!r} in {recordings}")
    spans = []
    for path in folder.glob("*/*/*.mp4"):
        try:
            seg_start = parse_segment_path(path)[1]
        except ValueError:
            continue
        if seg_start >= end or seg_start < start - 3600:  # segments are far shorter than 1 h
            continue
        with open_input(path) as container:  # a damaged segment: an error naming it
            duration = (container.duration or 0) / 1e6
        spans.append((path, seg_start, seg_start + duration + 1.0))  # names are to the second
    return [p for p, _, _ in overlapping(spans, start, end)]


def _key_path(args: argparse.Namespace) -> Path:
    if args.key is not None:
        return Path(args.key)
    env = os.environ.get("VIGIL_EXPORT_KEY")
    return Path(env) if env else cache_dir() / "export_ed25519.pem"


def _redaction(args: argparse.Namespace) -> RedactConfig:
    if args.config is None:
        return RedactConfig()
    from vigil.config.loader import load_config

    return load_config(args.config).redact_for(args.camera)


def _masks_only(config: RedactConfig, grant: UnredactedGrant) -> RedactorFactory:
    return lambda size: Redactor(config, size, grant=grant)


def run(args: argparse.Namespace) -> int:
    start, end = parse_time(args.start), parse_time(args.end)
    segments = find_segments(args.recordings, args.camera, start, end)
    if not segments:
        raise SourceError(f"no segments of {args.camera} between {args.start} and {args.end}")
    key = load_or_create_key(_key_path(args))
    config = _redaction(args)
    grant = None
    factory: RedactorFactory | None = lambda size: build_redactor(config, size)  # noqa: E731
    if args.unredacted:
        what = f"export {args.camera} {args.start}..{args.end} -> {args.output}"
        grant = unredacted_access(args.reason, getpass.getuser(), default_audit_path(), what)
        factory = _masks_only(config, grant) if config.masks else None
    with Progress(
        TextColumn("[bold]exporting[/bold]"), BarColumn(), MofNCompleteColumn(),
        disable=args.no_progress,
    ) as progress:  # fmt: skip
        task = progress.add_task("segments", total=len(segments))
        result = export_range(
            segments, start, end, args.output, key=key, redactor_factory=factory, grant=grant,
            camera=args.camera, on_progress=lambda done, _: progress.update(task, completed=done),
        )  # fmt: skip
    print(
        f"{result.path}: redaction {result.redaction}, {result.packets} frames; manifest "
        f"{result.manifest} signed by {fingerprint(key.public_key())}"
    )
    return 0
