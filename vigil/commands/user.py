"""``vigil user add|list|disable|enable|role``: manage the people who may log in.

There is no default password: the first admin comes from ``vigil user add NAME --role admin``
(or the setup page). Passwords are read from a prompt (twice) or, for scripts, from standard
input with ``--password-stdin``; never from the command line, where ``ps`` would show them.
Every change is written to the hash-chained audit log as ``cli:<OS user>``.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import TYPE_CHECKING, Any

from vigil.commands import add_action, add_database_options, check_database_options
from vigil.errors import ConfigError

if TYPE_CHECKING:
    from vigil.store import UserRepo

ROLES = ("admin", "operator", "auditor", "viewer")


def register(subparsers: Any) -> None:
    """Add ``user`` to the ``vigil`` command line."""
    parser = subparsers.add_parser(
        "user", help="add, list, disable users and change their role",
        description="Users log in to the API; roles: admin, operator, auditor, viewer.",
    )  # fmt: skip
    add_database_options(parser)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = add_action(actions, "add", help="create a user (prompts for the password)")
    add.add_argument("name")
    add.add_argument("--role", choices=ROLES, required=True)
    add.add_argument("--cameras", metavar="A,B", help="limit the user to these cameras")
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password from the first line of standard input")
    add.set_defaults(handler=_add)
    add_action(actions, "list", help="list users").set_defaults(handler=_list)
    for verb, handler in (("disable", _disable), ("enable", _enable)):
        sub = add_action(actions, verb, help=f"{verb} a user (disabling ends their sessions)")
        sub.add_argument("name")
        sub.set_defaults(handler=handler)
    role = add_action(actions, "role", help="change a user's role")
    role.add_argument("name")
    role.add_argument("role", choices=ROLES)
    role.set_defaults(handler=_role)


def _database(args: argparse.Namespace) -> Any:
    from vigil.store import Database, database_url_for

    check_database_options(args)
    if args.database_url:
        url = str(args.database_url)
    else:
        from vigil.config.loader import load_config
        from vigil.config.models import VigilConfig

        url = database_url_for(load_config(args.config) if args.config else VigilConfig())
    db = Database(url)
    db.migrate()  # a fresh install gets its schema from the first `user add`
    return db


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("password: ")
    if first != getpass.getpass("again: "):
        raise ConfigError("the two passwords differ; run the command again")
    return first


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


def _add(args: argparse.Namespace) -> int:
    from vigil.api.auth import hash_password
    from vigil.store import AuditLog, Role, UserRepo

    cameras = None if args.cameras is None else [c for c in args.cameras.split(",") if c]
    password_hash = hash_password(_password(args))
    db = _database(args)
    try:
        with db.session(immediate=True) as session:
            UserRepo(session).add(args.name, Role(args.role), password_hash, cameras=cameras)
        AuditLog(db).append(_actor(), "user.create", args.name,
                            details={"role": args.role, "cameras": cameras})  # fmt: skip
    finally:
        db.close()
    print(f"user {args.name!r} added as {args.role}")
    return 0


def _list(args: argparse.Namespace) -> int:
    from vigil.store import UserRepo

    db = _database(args)
    try:
        with db.session() as session:
            for user in UserRepo(session).list():
                scope = "all cameras" if user.cameras is None else ",".join(user.cameras)
                state = "disabled" if user.disabled else "enabled"
                print(f"{user.name}\t{user.role.value}\t{state}\t{scope}")
    finally:
        db.close()
    return 0


def _set_disabled(args: argparse.Namespace, disabled: bool) -> int:
    from vigil.store import AuditLog, TokenRepo, UserRepo

    db = _database(args)
    try:
        with db.session(immediate=True) as session:
            users = UserRepo(session)
            users.lock()
            if disabled:
                _keep_an_admin(users, args.name)
            row = users.set_disabled(args.name, disabled)
            if disabled:
                TokenRepo(session).revoke_user(row.id)
        AuditLog(db).append(_actor(), "user.update", args.name, details={"disabled": disabled})
    finally:
        db.close()
    print(f"user {args.name!r} {'disabled' if disabled else 'enabled'}")
    return 0


def _keep_an_admin(users: UserRepo, name: str) -> None:
    if users.is_last_admin(name):
        raise ConfigError(f"{name!r} is the last enabled admin; make another user admin first "
                          "(vigil user role NAME admin), or nobody could manage users")  # fmt: skip


def _disable(args: argparse.Namespace) -> int:
    return _set_disabled(args, True)


def _enable(args: argparse.Namespace) -> int:
    return _set_disabled(args, False)


def _role(args: argparse.Namespace) -> int:
    from vigil.store import AuditLog, Role, UserRepo

    db = _database(args)
    try:
        with db.session(immediate=True) as session:
            users = UserRepo(session)
            users.lock()
            if Role(args.role) != Role.ADMIN:
                _keep_an_admin(users, args.name)
            users.set_role(args.name, Role(args.role))
        AuditLog(db).append(_actor(), "user.update", args.name, details={"role": args.role})
    finally:
        db.close()
    print(f"user {args.name!r} is now {args.role}")
    return 0
