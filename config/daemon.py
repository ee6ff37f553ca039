"""``ventanilla serve``: builds every part and runs them in one asyncio TaskGroup.

A part that fails stops the whole daemon with one clear log line and a non-zero exit.
SIGTERM/SIGINT drain gracefully: the HTTP listener stops taking connections, in-flight
requests get ``shutdown_timeout_seconds`` to finish, then the intake writer commits what is
queued. SIGHUP reloads the catalog and templates (templates only when every one compiles:
a broken template keeps the previous ones and is logged with its file and line, as it
stops the daemon at start). systemd hears READY=1, STOPPING=1 and
watchdog pings.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from typing import NoReturn

from aiohttp import web

from config.app import Services, build_http_app, open_services
from config.email_parts import build_email_parts
from config.outbound_parts import build_dispatcher, build_resend_jobs, watch_outbox
from config.scheduled_parts import build_scheduled_parts
from config.settings import Settings
from config.systemd import SystemdNotifier
from config.telegram_parts import build_telegram_parts
from notifiers.templates import TemplateError

log = logging.getLogger("ventanilla.daemon")


class PartFailed(Exception):
    """A long-running part stopped on its own; the daemon must stop too."""


class Daemon:
    def __init__(self, settings: Settings, notifier: SystemdNotifier | None = None) -> None:
        self.settings = settings
        self.notifier = notifier or SystemdNotifier()
        self._stop = asyncio.Event()

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self) -> int:
        try:
            services = await open_services(self.settings, migrate_in_child=True)
        except Exception as exc:
            log.error("cannot start: storage preparation failed: %s", exc)
            return 1
        try:
            if services.renderer.problems:
                for problem in services.renderer.problems:
                    log.error("cannot start: template %s", problem)
                return 1
            return await self._serve(services)
        finally:
            await services.close()

    async def _serve(self, services: Services) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        loop.add_signal_handler(
            signal.SIGHUP, lambda: asyncio.ensure_future(self._reload(services))
        )
        http = self.settings.http
        telegram = build_telegram_parts(
            self.settings, services.writer, services.attachments, services.db
        )
        app = build_http_app(services)
        app.add_routes(telegram.routes())  # POST /webhooks/telegram in webhook mode
        services.readiness.update(telegram.readiness())
        runner = web.AppRunner(
            app,
            handle_signals=False,
            shutdown_timeout=self.settings.daemon.shutdown_timeout_seconds,
            access_log=logging.getLogger("aiohttp.access"),
        )
        services.readiness["write_path"] = _writer_check(services)
        try:
            email = build_email_parts(
                self.settings,
                services.email,
                services.email.mailboxes,
                services.db,
                services.writes,
                services.registry,
            )
        except ValueError as exc:
            log.error("cannot start: %s", exc)
            return 1
        services.readiness.update(email.readiness())
        if email.smtp is not None or email.pollers:
            try:
                await services.start_parser_pool()
            except Exception as exc:
                log.error("cannot start: the parser processes failed to start: %s", exc)
                return 1
        try:
            await services.start_writer_process()
        except Exception as exc:
            log.error("cannot start: the writer process failed to open the database: %s", exc)
            return 1
        dispatcher = (
            build_dispatcher(self.settings, services) if self.settings.dispatch.enabled else None
        )
        resend_jobs = build_resend_jobs(services)
        scheduled = build_scheduled_parts(self.settings, services)
        exit_code = 0
        try:
            async with asyncio.TaskGroup() as group:
                writer = group.create_task(self._part("write path", services.writes.run()))
                await services.writes.wait_started()
                catalog_watch = group.create_task(self._watch_catalog(services))
                if http.enabled:
                    await runner.setup()
                    site = web.TCPSite(runner, http.host, http.port, reuse_address=True)
                    await site.start()
                    self._announce(runner)
                if email.smtp is not None:
                    await email.smtp.start()
                pollers = [
                    group.create_task(self._part(f"IMAP account {name}", poller.run()))
                    for name, poller in email.pollers.items()
                ]
                # Runs until stopped, also after a rejected token (reported by /readyz).
                chat = (
                    group.create_task(self._part("telegram", telegram.run()))
                    if telegram.active
                    else None
                )
                dispatching: list[asyncio.Task[None]] = []
                if dispatcher is not None:
                    await dispatcher.start_notifiers()
                    dispatching = [
                        group.create_task(self._part("dispatcher", dispatcher.run())),
                        group.create_task(watch_outbox(services, dispatcher)),
                    ]
                resending = group.create_task(self._part("resend jobs", resend_jobs.run()))
                housekeeping = [
                    group.create_task(self._part(name, runner.run()))
                    for name, runner in scheduled.runners.items()
                ]
                await scheduled.scheduler.start()
                gc.freeze()  # long-lived objects out of full collections: see writer_process
                self.notifier.ready("accepting messages")
                watchdog = group.create_task(self._watchdog())
                await self._stop.wait()
                log.info("stopping: draining in-flight work")
                self.notifier.stopping()
                # Order matters: stop taking requests and mail and let in-flight ones
                # finish (they are waiting on the writer), then let the writer commit
                # what is queued. IMAP pollers stop between messages: what they fetched
                # but did not commit stays in the mailbox for next time.
                for poller in pollers:
                    poller.cancel()
                await scheduled.stop()  # a retention batch in flight still commits
                for task in housekeeping:
                    await task
                await runner.cleanup()
                if chat is not None:
                    # After the HTTP server, whose webhook requests in flight still need
                    # the bot; the polled batch in hand commits and its offset is confirmed.
                    await telegram.stop()
                    await chat
                if email.smtp is not None:
                    await email.smtp.stop()
                # A job's progress is durable: its step in flight ends, the rest waits for
                # the next start.
                await resend_jobs.stop()
                await resending
                if dispatcher is not None:
                    # Sends in flight finish and are recorded; rows claimed but not yet
                    # sent go back to pending, through the write path still running.
                    await dispatcher.stop()
                    await dispatching[0]
                    dispatching[1].cancel()
                    await dispatcher.stop_notifiers()
                await services.writes.close()
                await writer
                watchdog.cancel()
                catalog_watch.cancel()
        except* PartFailed as group_exc:
            for failure in group_exc.exceptions:
                log.error("stopping: %s", failure)
            exit_code = 1
        except* ValueError as start_exc:  # e.g. an unreadable TLS certificate
            for bad in start_exc.exceptions:
                log.error("cannot start: %s", bad)
            exit_code = 1
        except* OSError as listen_exc:
            for error in listen_exc.exceptions:
                log.error("cannot listen: %s", error)
            exit_code = 1
        if exit_code:
            with contextlib.suppress(Exception):
                await runner.cleanup()
        else:
            log.info("stopped")
        return exit_code

    async def _part(self, name: str, coro: object) -> None:
        """Run one long-lived part; its ending on its own (not by stop) is a failure."""
        try:
            await coro  # type: ignore[misc]
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise PartFailed(f"{name} failed: {type(exc).__name__}: {exc}") from exc
        if not self._stop.is_set():
            raise PartFailed(f"{name} stopped unexpectedly")

    async def _watchdog(self) -> NoReturn:
        interval = self.notifier.watchdog_seconds
        while True:
            if interval and self.settings.daemon.watchdog:
                self.notifier.watchdog()
                await asyncio.sleep(interval / 3)
            else:
                await asyncio.sleep(3600)

    async def _watch_catalog(self, services: Services) -> NoReturn:
        """Pick up catalog edits made by another daemon on the same database (this one's
        own edits refresh the cache at once)."""
        while True:
            await asyncio.sleep(self.settings.daemon.catalog_poll_seconds)
            try:
                if await services.catalog.refresh_if_changed():
                    log.info("catalog changed: reloaded")
            except Exception as exc:  # the database may be down for a while
                log.warning("catalog check failed: %s", exc)

    async def _reload(self, services: Services) -> None:
        self.notifier.reloading()
        try:
            await services.catalog.refresh()
            log.info("reloaded the catalog")
        except Exception as exc:
            log.error("reload failed, keeping the previous catalog: %s", exc)
        try:
            # Compiled in a thread and swapped in only when every template is good.
            await asyncio.to_thread(services.renderer.reload)
        except TemplateError as exc:
            for problem in exc.problems:
                log.error("reload failed, keeping the previous templates: %s", problem)
        else:
            try:
                if services.writes.process is not None:
                    await services.writes.process.restart()  # its own copy of the templates
                log.info("reloaded templates")
            except Exception as exc:
                log.error("reload: the writer process did not restart: %s", exc)
        self.notifier.ready("reloaded")

    def _announce(self, runner: web.AppRunner) -> None:
        for address in runner.addresses:
            host, port = address[0], address[1]
            base = f"http://{host}:{port}"
            log.info(
                "listening on %s — web form %s/form, API %s/api/v1/, console %s/console/log, "
                "metrics %s/metrics",
                base,
                base,
                base,
                base,
                base,
            )


def _writer_check(services: Services):  # type: ignore[no-untyped-def]
    async def check() -> tuple[bool, dict[str, object]]:
        running = services.writes.running
        detail: dict[str, object] = {"running": running}
        if services.writes.process is not None:
            detail["process"] = services.writes.process.state()
        return running, detail

    return check
