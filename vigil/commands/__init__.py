"""One module per CLI command; each exposes ``register(subparsers)``.

A command's ``register`` adds its parser and sets ``handler`` (``Callable[[Namespace], int]``)
as the parser default. Keeping commands apart lets each stay a page long.
"""

from __future__ import annotations

import argparse
from typing import Any


def add_database_options(parser: argparse.ArgumentParser, *, under_action: bool = False) -> None:
    """``--config`` / ``--database-url``, accepted before and after a command's action.

    ``vigil user --config c.yaml add …`` and ``vigil user add … --config c.yaml`` mean the same.
    The copy on each action's parser defaults to "not given" (``SUPPRESS``), so it never
    overwrites a value given before the action.
    """
    default: Any = argparse.SUPPRESS if under_action else None
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--config", metavar="FILE", default=default,
                       help="the configuration whose database to use")  # fmt: skip
    where.add_argument("--database-url", metavar="URL", default=default,
                       help="database URL (sqlite:///PATH or postgresql://...); "
                       "default: the one of the default configuration")  # fmt: skip


def add_action(actions: Any, name: str, **kwargs: Any) -> argparse.ArgumentParser:
    """An action of a command with database options (``vigil user add``), taking them too."""
    parser: argparse.ArgumentParser = actions.add_parser(name, **kwargs)
    add_database_options(parser, under_action=True)
    return parser


def check_database_options(args: argparse.Namespace) -> None:
    """Refuse ``--config`` and ``--database-url`` together, wherever each was given."""
    from vigil.errors import ConfigError

    if getattr(args, "config", None) and getattr(args, "database_url", None):
        raise ConfigError("give --config or --database-url, not both")
