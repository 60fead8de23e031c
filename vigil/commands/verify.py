"""``vigil verify EXPORT.mp4``: check an export's signed manifest and every file's hash."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from vigil.record.export import verify_export
from vigil.record.signing import load_public_key


def register(subparsers: Any) -> None:
    """Add ``verify`` to the ``vigil`` command line."""
    parser = subparsers.add_parser(
        "verify", help="check an export against its signed manifest",
        description="Exit 0 when the export's manifest signature and every SHA-256 hold, "
        "1 naming what failed (changed bytes, bad signature, missing manifest, wrong key).",
    )  # fmt: skip
    parser.add_argument("export", type=Path, help="the exported MP4 (its .manifest.json beside)")
    parser.add_argument(
        "--public-key", type=Path, metavar="FILE",
        help="trusted public key (PEM or base64); without it only integrity is checked",
    )  # fmt: skip
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    trusted = load_public_key(args.public_key) if args.public_key is not None else None
    report = verify_export(args.export, trusted_key=trusted)
    if not report.ok:
        for problem in report.problems:
            print(f"FAILED: {problem}")
        return 1
    manifest = report.manifest or {}
    trust = "trusted key" if trusted is not None else "key in the manifest (not pinned)"
    print(
        f"verified: {args.export} camera {manifest.get('camera')} {manifest.get('start')} .. "
        f"{manifest.get('end')}, redaction {manifest.get('redaction', {}).get('mode')}, "
        f"signed by {manifest.get('key_fingerprint')} ({trust})"
    )
    return 0
