"""``vigil models``: list the registry, download a model, print where a model is cached."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from vigil.detect.models import get_model, list_models, model_path, pull


def register(subparsers: Any) -> None:
    """Add ``models list | pull | path`` to the ``vigil`` command line."""
    parser = subparsers.add_parser(
        "models", help="list, download and locate detection models",
        description="Detection models: the official YOLOX ONNX files, pinned by SHA-256.",
    )  # fmt: skip
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    listing = actions.add_parser("list", help="the registry, with what is cached")
    _cache_option(listing)
    listing.set_defaults(handler=_list)

    fetch = actions.add_parser("pull", help="download a model into the cache, verified")
    fetch.add_argument("name", help="registry name, e.g. yolox-nano")
    _cache_option(fetch)
    fetch.add_argument("--url", help="download from this URL (a mirror) instead")
    fetch.add_argument(
        "--sha256", metavar="HEX", help="expected SHA-256 for a model the registry does not pin"
    )
    fetch.add_argument("--no-progress", action="store_true", help="no progress bar")
    fetch.set_defaults(handler=_pull)

    where = actions.add_parser("path", help="print where a model is (or would be) cached")
    where.add_argument("name", help="registry name, e.g. yolox-nano")
    _cache_option(where)
    where.set_defaults(handler=_path)


def _cache_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cache-dir", type=Path, default=None,
        help="model cache (default: $VIGIL_CACHE_DIR or ~/.cache/vigil)",
    )  # fmt: skip


def _list(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    table = Table("name", "input", "size", "cached", "path")
    table.columns[-1].overflow = "fold"
    for spec in list_models():
        path = model_path(spec.name, args.cache_dir)
        size = f"{spec.size / 1e6:.1f} MB" if spec.size else "?"
        cached = "yes" if path.is_file() else "no"
        table.add_row(spec.name, str(spec.input_size), size, cached, str(path))
    Console().print(table)
    return 0


def _pull(args: argparse.Namespace) -> int:
    path = pull(
        args.name, args.cache_dir, url=args.url, sha256=args.sha256,
        progress=not args.no_progress,
    )  # fmt: skip
    print(path)
    return 0


def _path(args: argparse.Namespace) -> int:
    get_model(args.name)
    print(model_path(args.name, args.cache_dir))
    return 0
