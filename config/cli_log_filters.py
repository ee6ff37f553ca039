"""``ventanilla log filters``: the saved filters of the user the CLI acts for. List them
(``--all``: every user's), save the filter options under a name, delete one by name.

They are the filters the API and the console keep ("Mis filtros"), written through the
same operations (``storage.saved_filters``); ``log list`` and ``log resend`` take one with
``--filter NAME``.
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Mapping
from typing import Any, TextIO

from tabulate import tabulate

from config.app import Services
from config.cli_log_select import UsageError, acting_user, given_params, option_of, usage
from config.cli_output import json_out, when
from console.log_schemas import saved_filter
from storage.log_filters import FILTER_PARAMS, parse_filters
from storage.log_queries import get_saved_filter, list_saved_filters
from storage.operations import OperationRefused
from storage.paging import QueryError
from storage.saved_filters import DeleteFilter, SaveFilter


def as_options(params: Mapping[str, Any]) -> str:
    """A filter's params as the options that select the same rows, in the options' order
    (a JSONB column keeps no order of its own)."""
    words: list[str] = []
    for name in sorted(params, key=lambda p: FILTER_PARAMS.index(p) if p in FILTER_PARAMS else 99):
        value = params[name]
        if name == "sent":
            words.append("--sent" if str(value) == "true" else "--not-sent")
        else:
            words += [option_of(name), shlex.quote(str(value))]
    return " ".join(words) or "(the whole log)"


async def cmd_log_filters(services: Services, args: argparse.Namespace, out: TextIO) -> int:
    owner = None
    if not args.all:
        try:
            owner = await acting_user(services, args)
        except UsageError as exc:
            print(exc, file=out)
            return 2
    rows = await services.db.read(list_saved_filters, owner.user_id if owner else None)
    if args.json:
        json_out({"items": [saved_filter(r) for r in rows], "next_cursor": None}, out)
        return 0
    if not rows:
        print(f"{owner.name} has no saved filters" if owner else "no saved filters", file=out)
        return 0
    table = [[r.name, r.user, as_options(r.params), when(r.created_at)] for r in rows]
    print(tabulate(table, headers=["name", "user", "selects", "created"]), file=out)
    return 0


async def cmd_log_filters_save(services: Services, args: argparse.Namespace, out: TextIO) -> int:
    name = args.name.strip()
    try:
        user = await acting_user(services, args)
        try:
            params = parse_filters(given_params(args)).params()
        except QueryError as exc:
            raise usage(exc) from None
    except UsageError as exc:
        print(exc, file=out)
        return 2
    existing = await services.db.read(get_saved_filter, user_id=user.user_id, name=name)
    if existing is not None and not args.replace:
        print(f"{user.name} already has a filter named {name!r}: --replace overwrites it",
              file=out)  # fmt: skip
        return 1
    # The operator at the server's shell acts as an admin.
    op = SaveFilter(user.user_id, name, params, existing.id if existing else None, admin=True)
    try:
        filter_id: int = await services.writes.submit(op)
    except OperationRefused as exc:
        print(f"refused: {exc.field + ': ' if exc.field else ''}{exc.message}", file=out)
        return 2 if exc.kind == "invalid" else 1
    row = await services.db.read(get_saved_filter, filter_id=filter_id)
    assert row is not None
    if args.json:
        json_out(saved_filter(row), out)
        return 0
    done = "replaced" if existing else "saved"
    print(f"{done} filter {row.name!r} of {row.user}: {as_options(row.params)}", file=out)
    return 0


async def cmd_log_filters_delete(services: Services, args: argparse.Namespace, out: TextIO) -> int:
    name = args.name.strip()
    try:
        user = await acting_user(services, args)
    except UsageError as exc:
        print(exc, file=out)
        return 2
    row = await services.db.read(get_saved_filter, user_id=user.user_id, name=name)
    if row is None:
        print(f"{user.name} has no saved filter named {name!r}", file=out)
        return 1
    try:
        await services.writes.submit(DeleteFilter(user.user_id, row.id, admin=True))
    except OperationRefused as exc:  # deleted meanwhile
        print(f"refused: {exc.message}", file=out)
        return 1
    if args.json:
        json_out(saved_filter(row), out)
        return 0
    print(f"deleted filter {row.name!r} of {row.user}", file=out)
    return 0
