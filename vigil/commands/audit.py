"""``vigil audit verify``: check the audit log's hash chain; exit 1 naming the first bad record."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from vigil.commands import add_action, add_database_options, check_database_options
from vigil.errors import ConfigError


def register(subparsers: Any) -> None:
    """Add ``audit verify`` to the ``vigil`` command line."""
    parser = subparsers.add_parser(
        "audit", help="check the tamper-evident audit log",
        description="The audit log records every read of media and every change of settings "
        "or users, each record hash-chained to the one before.",
    )  # fmt: skip
    add_database_options(parser)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    verify = add_action(
        actions,
        "verify",
        help="walk the hash chain: exit 0 if intact, 1 naming the first bad record",
    )
    verify.add_argument(
        "--anchor",
        metavar="SEQ:HASH",
        help="a head copied earlier (`SEQ:HASH`): that record must be unchanged",
    )
    verify.set_defaults(handler=_verify)


def _database_url(args: argparse.Namespace) -> str:
    from vigil.config.models import VigilConfig
    from vigil.store import database_url_for

    check_database_options(args)
    if args.database_url:
        return str(args.database_url)
    from vigil.config.loader import load_config

    return database_url_for(load_config(args.config) if args.config else VigilConfig())


def _anchor(text: str | None) -> Any:
    from vigil.store import AuditHead

    if text is None:
        return None
    seq, _, digest = text.partition(":")
    if not seq.isdigit() or len(digest) != 64:
        raise ConfigError(f"--anchor {text!r}: expected SEQ:HASH, e.g. 42:{'ab' * 32}")
    return AuditHead(int(seq), digest.lower())


def _verify(args: argparse.Namespace) -> int:
    from vigil.store import AuditLog, Database

    anchor = _anchor(args.anchor)
    db = Database(_database_url(args))
    try:
        if db.current_revision() is None:
            print(f"{db.display_url} holds no Vigil schema (never migrated); nothing to verify",
                  file=sys.stderr)  # fmt: skip
            return 1
        log = AuditLog(db)
        report = log.verify(anchor=anchor)
        if report.ok:
            head = log.head()
            print(f"chain intact ({report.records} records); head {head.seq}:{head.hash}")
            return 0
        print(f"chain BROKEN at record {report.first_bad_seq}: {report.problem} "
              f"({report.records} records verified before it)")  # fmt: skip
        return 1
    finally:
        db.close()
