"""What the ``ventanilla log`` commands select and for whom: the filter options (one per
parameter of the log's filters), a saved filter named by ``--filter`` with the options
given beside it overriding its values (as the API's ``filter=NAME``), and the user the
command acts for.

The operator at the server's shell acts as an admin, but saved filters and resends belong
to a user: ``--user NAME``, by default the login name, must exist (``ventanilla token
create`` creates users). Every bad value is a ``UsageError`` naming the option as typed.
"""

from __future__ import annotations

import argparse
import getpass
from typing import Any

from config.app import Services
from storage.auth import Principal, user_by_name
from storage.log_filters import FILTER_PARAMS, LogFilters, merged_params, parse_filters
from storage.log_queries import get_saved_filter
from storage.paging import QueryError

# The option that sets each parameter, for error messages.
OPTIONS = {
    "sent": "--sent/--not-sent",
    "resend_of": "--resend-of",
    "q": "--search",
}


class UsageError(Exception):
    """A bad option or selection; the message names the option and the command exits 2."""


def option_of(param: str) -> str:
    return OPTIONS.get(param, "--" + param.replace("_", "-"))


def usage(exc: QueryError) -> UsageError:
    return UsageError(f"{option_of(exc.param)}: {exc}")


def add_user_option(parser: argparse.ArgumentParser, *, default: Any = None) -> None:
    parser.add_argument(
        "--user", default=default, metavar="NAME",
        help="the user to act as: owner of saved filters, named on resends "
        "(default: your login name)",
    )  # fmt: skip


def add_filter_options(parser: argparse.ArgumentParser, *, saved: bool = True) -> None:
    """One option per filter parameter; ``saved``: also ``--filter NAME``. Values are
    checked by the log's own parser, so the CLI refuses exactly what the API refuses."""
    group = parser.add_argument_group("filters")
    group.add_argument(
        "--channel",
        action="append",
        help="email, sms, push or telegram (repeatable or comma-separated)",
    )
    group.add_argument(
        "--status",
        action="append",
        help="pending, sending, sent, failed, dead or suppressed (repeatable or comma-separated)",
    )
    sent = group.add_mutually_exclusive_group()
    sent.add_argument(
        "--sent", dest="sent", action="store_const", const="true", help="only messages sent"
    )
    sent.add_argument(
        "--not-sent",
        dest="sent",
        action="store_const",
        const="false",
        help="only messages not (yet) sent",
    )
    group.add_argument("--trigger", help="auto or manual")
    group.add_argument("--template", help="the template's name, e.g. ack_email")
    group.add_argument("--since", metavar="DATE", help="from this ISO date or date-time on")
    group.add_argument(
        "--until", metavar="DATE", help="up to this ISO date-time (exclusive) or date (inclusive)"
    )
    group.add_argument(
        "--time", help="which time --since, --until and the order use: created (default) or sent"
    )
    group.add_argument("--case", metavar="NUMBER", help="a case number, e.g. CAS-000123")
    group.add_argument("--customer", metavar="ID", help="a customer's id")
    group.add_argument("--recipient", help="the exact address, number or chat id")
    group.add_argument("--provider", help="the sender it went through, e.g. twilio")
    group.add_argument("--resend-of", metavar="ID", help="resends of this notification")
    group.add_argument(
        "-q", "--search", dest="q", metavar="TEXT", help="words in the recipient, subject or text"
    )
    if saved:
        group.add_argument(
            "--filter",
            metavar="NAME",
            help="one of your saved filters; options given beside it override its values",
        )


def given_params(args: argparse.Namespace) -> dict[str, str]:
    """The filter parameters the options set (repeated options comma-joined)."""
    params: dict[str, str] = {}
    for name in FILTER_PARAMS:
        value = getattr(args, name, None)
        if isinstance(value, list):
            params[name] = ",".join(value)
        elif value is not None:
            params[name] = str(value)
    return params


async def acting_user(services: Services, args: argparse.Namespace) -> Principal:
    name = getattr(args, "user", None) or getpass.getuser()
    user = await services.db.read(user_by_name, name)
    if user is None:
        raise UsageError(
            f"--user: there is no user {name!r}; create one with "
            f"`ventanilla token create --name {name} --role ops`, or pass --user NAME"
        )
    return user


async def selected_filters(
    services: Services, args: argparse.Namespace, user: Principal | None = None
) -> LogFilters:
    """The filters the options (and ``--filter NAME``) select."""
    saved_params = None
    name = getattr(args, "filter", None)
    if name:
        owner = user or await acting_user(services, args)
        saved = await services.db.read(get_saved_filter, user_id=owner.user_id, name=name)
        if saved is None:
            raise UsageError(
                f"--filter: {owner.name} has no saved filter named {name!r} "
                "(see `ventanilla log filters`)"
            )
        saved_params = saved.params
    try:
        return parse_filters(merged_params(saved_params, given_params(args)))
    except QueryError as exc:
        raise usage(exc) from None
