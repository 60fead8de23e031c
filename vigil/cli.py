"""The ``vigil`` command line: a table of contents of the commands in ``vigil.commands``."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence

from vigil import __version__
from vigil.errors import VigilError
from vigil.paths import restrict_umask

#: Modules of ``vigil.commands`` in the order ``vigil --help`` lists them.
COMMANDS: tuple[str, ...] = (
    "analyze", "demo", "track_mot", "redact", "models", "audit", "export", "verify",
    "serve", "cluster", "user",
)  # fmt: skip


#: Packages that only an extra installs, and that extra: a command needing one says what to
#: install instead of showing a traceback. Everything else is in the plain install.
OPTIONAL_PACKAGES: dict[str, str] = {
    "matplotlib": "bench", "pandas": "bench", "trackers": "bench", "supervision": "bench",
    "motmetrics": "bench", "pytest": "dev", "playwright": "dev", "ray": "cluster",
}  # fmt: skip


def missing_dependency_message(exc: ModuleNotFoundError) -> str:
    """What to install for a package that is not there, naming the extra that brings it."""
    package = (exc.name or "").split(".")[0] or "a package"
    extra = OPTIONAL_PACKAGES.get(package)
    if extra is not None:
        return (f"this needs {package!r}, which comes with the {extra!r} extra: "
                f"pip install 'vigil[{extra}]'")  # fmt: skip
    # A package of the plain install is missing: the installation itself is broken.
    return (f"the Python package {package!r} is missing although Vigil depends on it; "
            "reinstall Vigil: pip install --force-reinstall vigil")  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vigil",
        description="Private-by-design video analytics: sees what happens, never who.",
    )
    parser.add_argument("--version", action="version", version=f"vigil {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"vigil.commands.{name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    restrict_umask()  # before any command creates a file: footage and the database are private
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except VigilError as exc:
        print(f"vigil {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        print(f"vigil {args.command}: error: {missing_dependency_message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
