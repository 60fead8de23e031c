"""``vigil user add|list|disable|enable|role|password|token``: manage who may log in.

There is no default password: the first admin comes from ``vigil user add NAME --role admin``
(or the setup page). Passwords are read from a prompt (twice) or, for scripts, from standard
input with ``--password-stdin``; never from the command line, where ``ps`` would show them.
Every change is written to the hash-chained audit log as ``cli:<OS user>``. A new password
or disabling ends the user's sessions and API tokens. ``token list`` shows API tokens (never
the tokens themselves) and ``token revoke ID`` ends one.
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
    add.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of standard input",
    )
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
    password = actions.add_parser("password", help="set a user's password (ends their "
                                  "sessions and API tokens)")  # fmt: skip
    password.add_argument("name")
    password.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of standard input",
    )
    password.set_defaults(handler=_set_password)
    token = actions.add_parser("token", help="list or revoke API tokens")
    token_actions = token.add_subparsers(dest="token_action", metavar="ACTION", required=True)
    listing = token_actions.add_parser("list", help="list API tokens (id, user, name, dates)")
    listing.add_argument("--user", metavar="NAME", help="only this user's tokens")
    listing.set_defaults(handler=_token_list)
    revoke = token_actions.add_parser("revoke", help="revoke an API token by its id")
    revoke.add_argument("id", type=int)
    revoke.set_defaults(handler=_token_revoke)


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


def _set_password(args: argparse.Namespace) -> int:
    from vigil.api.auth import hash_password
    from vigil.store import AuditLog, TokenRepo, UserRepo

    password_hash = hash_password(_password(args))
    db = _database(args)
    try:
        with db.session(immediate=True) as session:
            row = UserRepo(session).set_password_hash(args.name, password_hash)
            ended = TokenRepo(session).revoke_user(row.id)
        AuditLog(db).append(_actor(), "user.update", args.name, details={"password": "changed"})
    finally:
        db.close()
    print(f"password of {args.name!r} changed; {ended} session(s)/token(s) ended")
    return 0


def _when(value: float | None) -> str:
    from datetime import UTC, datetime

    if value is None:
        return "-"
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _token_list(args: argparse.Namespace) -> int:
    from vigil.store import TokenRepo, UserRepo

    db = _database(args)
    try:
        with db.session() as session:
            user_id = None
            if args.user:
                user = UserRepo(session).get(args.user)
                if user is None:
                    raise ConfigError(f"no user named {args.user!r}; list users with "
                                      "`vigil user list`")  # fmt: skip
                user_id = user.id
            rows = TokenRepo(session).api_tokens(user_id)
    finally:
        db.close()
    print("id\tuser\tname\tcreated\texpires\tlast used")
    for row, user_name in rows:
        print(f"{row.id}\t{user_name}\t{row.name or '-'}\t{_when(row.created)}\t"
              f"{_when(row.expires)}\t{_when(row.last_used)}")  # fmt: skip
    return 0


def _token_revoke(args: argparse.Namespace) -> int:
    from vigil.store import AuditLog, TokenKind, TokenRepo, UserRepo

    db = _database(args)
    try:
        with db.session(immediate=True) as session:
            tokens = TokenRepo(session)
            row = tokens.get(args.id)
            if row is None or row.kind != TokenKind.API:
                raise ConfigError(f"no API token with id {args.id}; list them with "
                                  "`vigil user token list`")  # fmt: skip
            owner = UserRepo(session).get_by_id(row.user_id)
            tokens.revoke_id(args.id)
        AuditLog(db).append(_actor(), "token.revoke", owner.name if owner else str(row.user_id),
                            details={"id": args.id, "name": row.name})  # fmt: skip
    finally:
        db.close()
    print(f"token {args.id} revoked")
    return 0
