"""``ventanilla users create|passwd``: the people who sign in to the web console.

The password is asked twice on the terminal (never echoed), or read as one line from
standard input with ``--password-stdin`` for scripts. It is hashed here (argon2, in a
thread) and only the hash goes through the write path (``SetPassword``). Exit codes: 0
done, 1 a refused password or an unknown user or technician, 2 bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from typing import Any, TextIO

from config.app import Services
from console.passwords import Passwords, WeakPassword, check_strength
from storage.console_sessions import CONSOLE_ROLES, SetPassword
from storage.operations import OperationRefused


def read_password(from_stdin: bool) -> str:
    """One line of standard input, or the password typed twice at the terminal."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise WeakPassword("no terminal to ask for the password on; pipe it with --password-stdin")
    first = getpass.getpass("New password: ")
    check_strength(first)  # say so now, not after typing it twice
    if getpass.getpass("Repeat it: ") != first:
        raise WeakPassword("the two passwords differ; nothing was changed")
    return first


async def set_password(
    services: Services, args: argparse.Namespace, out: TextIO, role: str | None
) -> int:
    try:
        password = await asyncio.to_thread(read_password, args.password_stdin)
        password_hash = await Passwords().hash(password)
    except WeakPassword as exc:
        print(f"refused: {exc}", file=out)
        return 1
    technician = getattr(args, "technician", None)
    try:
        user = await services.writes.submit(
            SetPassword(args.name, password_hash, role=role, technician_id=technician)
        )
    except OperationRefused as exc:
        print(f"{exc.field or 'refused'}: {exc}", file=out)
        return 2 if exc.kind == "invalid" else 1
    done = "created" if user.created else "updated; its console sessions were closed"
    technician_note = f", technician {user.technician_id}" if user.technician_id else ""
    print(f"user {user.name} (role {user.role}{technician_note}) {done}", file=out)
    return 0


async def cmd_users_create(services: Services, args: argparse.Namespace, out: TextIO) -> int:
    return await set_password(services, args, out, args.role)


async def cmd_users_passwd(services: Services, args: argparse.Namespace, out: TextIO) -> int:
    return await set_password(services, args, out, None)


def add_users_parsers(subparsers: Any) -> None:
    users = subparsers.add_parser("users", help="people who sign in to the web console")
    users_sub = users.add_subparsers(dest="users_cmd", required=True)
    create = users_sub.add_parser(
        "create", help="create a console user (or give an existing one a role and password)"
    )
    create.add_argument("name", help="the name typed at sign-in")
    create.add_argument("--role", required=True, choices=CONSOLE_ROLES)
    create.add_argument(
        "--technician",
        type=int,
        metavar="ID",
        help="the catalog technician this user is (an agent sees only their cases)",
    )
    create.set_defaults(handler=cmd_users_create)
    passwd = users_sub.add_parser("passwd", help="set a console user's password")
    passwd.add_argument("name")
    passwd.set_defaults(handler=cmd_users_passwd)
    for command in (create, passwd):
        command.add_argument(
            "--password-stdin",
            action="store_true",
            help="read the password as one line of standard input instead of asking",
        )
