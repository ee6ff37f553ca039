"""The ``ventanilla`` command: serve, db upgrade, config check and the operator commands."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from typing import TextIO

from config import event_loop
from config.settings import ConfigError, Settings, config_path_from, load_settings


def _load(args: argparse.Namespace, err: TextIO) -> Settings | None:
    path = config_path_from(args.config, os.environ)
    try:
        return load_settings(path, os.environ)
    except ConfigError as exc:
        print(f"configuration {path} has {len(exc.problems)} problem(s):", file=err)
        for problem in exc.problems:
            print(f"  {problem}", file=err)
        return None


def cmd_serve(settings: Settings, _args: argparse.Namespace, _out: TextIO) -> int:
    from config.daemon import Daemon
    from config.logs import setup_logging

    setup_logging(settings.daemon.log_level, settings.daemon.log_format)
    return event_loop.run(Daemon(settings).run())


def cmd_config_check(settings: Settings, _args: argparse.Namespace, out: TextIO) -> int:
    from config.email_parts import smtp_config
    from notifiers.templates import TemplateRenderer

    # Settings that only the parts themselves can judge (e.g. SMTP AUTH without TLS on
    # a public address) are checked the same way serve checks them.
    if settings.smtp.enabled:
        try:
            smtp_config(settings)
        except ValueError as exc:
            print(f"configuration {settings.config_path} has 1 problem(s):", file=sys.stderr)
            print(f"  {exc}", file=sys.stderr)
            return 1
    # Valid, but surely not meant: the daemon would run and take no mail at all.
    if settings.smtp.enabled and not settings.mailboxes:
        print(
            "warning: smtp.enabled is true but no [[mailboxes]] are configured: every "
            "recipient will be refused at RCPT (550 5.1.1); add a [[mailboxes]] table with "
            "the address (or @domain) to take mail for",
            file=sys.stderr,
        )
    # The templates are checked as serve and a reload check them: each one compiled and
    # tried, every problem with its file and line.
    problems = TemplateRenderer(default_language=settings.intake.default_language).check()
    if problems:
        print(f"templates have {len(problems)} problem(s):", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print(f"configuration {settings.config_path} is valid", file=out)
    return 0


def cmd_db_upgrade(settings: Settings, _args: argparse.Namespace, out: TextIO) -> int:
    from storage import migrate

    migrate.upgrade_sync(settings.database.url)

    async def seed() -> None:
        from config.app import prepare_database
        from storage.db import Database

        db = Database(settings.database.url)
        try:
            await prepare_database(settings, db)
        finally:
            await db.close()

    event_loop.run(seed())
    print(f"database is at revision {migrate.head_revision()}", file=out)
    return 0


OpsHandler = Callable[..., Awaitable[int]]


def run_ops(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    """Open the services and run the write path (every change goes through it, in the
    writer process on SQLite as in the daemon) around an ops command."""
    from config.app import open_services

    async def main() -> int:
        services = await open_services(settings)
        try:
            await services.start_writer_process()
        except BaseException:
            await services.close()
            raise
        writes = asyncio.create_task(services.writes.run())
        try:
            await services.writes.wait_started()
            handler: OpsHandler = args.handler
            result: int = await handler(services, args, out)
            return result
        finally:
            await services.writes.close()
            await writes
            await services.close()

    return event_loop.run(main())


def build_parser() -> argparse.ArgumentParser:
    from config import cli_ops

    parser = argparse.ArgumentParser(
        prog="ventanilla", description="Support intake daemon: every message becomes a case."
    )
    parser.add_argument("--config", help="config file (default: $VENTANILLA_CONFIG or example)")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("serve", help="run the daemon in the foreground").set_defaults(run=cmd_serve)

    db = sub.add_parser("db", help="database schema").add_subparsers(dest="db_cmd", required=True)
    db.add_parser("upgrade", help="migrate to the newest schema").set_defaults(run=cmd_db_upgrade)

    config = sub.add_parser("config", help="configuration")
    config_sub = config.add_subparsers(dest="config_cmd", required=True)
    config_sub.add_parser("check", help="validate and report every problem").set_defaults(
        run=cmd_config_check
    )

    cli_ops.add_ops_parsers(sub)
    from config import cli_catalog, cli_import, cli_templates, cli_users

    cli_import.add_import_parsers(sub)
    cli_catalog.add_catalog_parsers(sub)
    cli_templates.add_templates_parsers(sub)
    cli_users.add_users_parsers(sub)
    return parser


def main(argv: list[str] | None = None, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    # --config may stand anywhere (`ventanilla serve --config X`), so take it out first.
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    known, rest = pre.parse_known_args(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(rest)
    args.config = known.config
    settings = _load(args, err)
    if settings is None:
        return 1
    run = getattr(args, "run", None)
    if run is None:
        return run_ops(settings, args, out)
    result: int = run(settings, args, out)
    return result


if __name__ == "__main__":
    sys.exit(main())
