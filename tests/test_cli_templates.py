"""``ventanilla templates preview`` against real cases (nothing sent), and broken templates
where an operator meets them: ``config check``, the daemon's start, and a SIGHUP reload
that keeps the working templates (SQLite writer process, and PostgreSQL)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select

from config import cli
from config.app import Services
from config.daemon import Daemon
from config.settings import DEFAULT_CONFIG, Settings
from config.systemd import SystemdNotifier
from notifiers import templates as templates_module
from notifiers.templates import TemplateRenderer
from storage.models import Notification
from storage.queries import get_case
from tests.conftest import make_settings
from tests.test_cli_ops import accept


@pytest.fixture
def templates_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the shipped templates that every renderer of this process loads."""
    folder = tmp_path / "templates"
    shutil.copytree(templates_module.TEMPLATE_DIR, folder)
    monkeypatch.setattr(templates_module, "TEMPLATE_DIR", folder)
    return folder


@pytest.fixture
def settings(templates_dir: Path, tmp_path: Path, db_url: str) -> Settings:
    return make_settings(tmp_path, db_url)


async def preview(services: Services, *argv: str) -> tuple[int, str]:
    args = cli.build_parser().parse_args(["templates", "preview", *argv])
    out = io.StringIO()
    code: int = await args.handler(services, args, out)
    return code, out.getvalue()


async def notifications(services: Services) -> int:
    async with services.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(Notification)) or 0)


# --- preview ------------------------------------------------------------------------------


async def test_preview_renders_an_email_against_a_case_and_sends_nothing(
    services: Services,
) -> None:
    number = (await accept(services)).case_number
    assert number
    queued = await notifications(services)
    code, output = await preview(services, "ack_email", "--case", number)
    assert code == 0, output
    assert f"== ack_email (es) for case {number}" in output
    assert f"subject: [{number}] Recibimos su consulta: No tengo Internet" in output
    assert "html part: yes (" in output and "<!DOCTYPE html>" not in output
    assert "Hola Ana Pérez:" in output
    assert "(Tengo un problema grave con el servicio)" in output  # as customers see it
    assert await notifications(services) == queued  # a preview queues nothing

    code, output = await preview(services, "ack", "--channel", "email", "--case", number,
                                 "--language", "en", "--html")  # fmt: skip
    assert code == 0
    assert f"subject: [{number}] We received your request" in output
    assert "-- html --" in output and '<html lang="en">' in output


async def test_a_notice_without_a_channel_is_shown_on_each_of_its_channels(
    services: Services,
) -> None:
    number = (await accept(services)).case_number
    assert number
    code, output = await preview(services, "assigned", "--case", number)
    assert code == 0, output
    shown = [line.split()[1] for line in output.splitlines() if line.startswith("== ")]
    assert shown == ["assigned_email", "assigned_push", "assigned_telegram", "assigned_sms"]
    assert "length: title " in output and "/65, body " in output  # push
    assert "SMS segment(s)" in output  # sms
    assert "Desde ayer no tengo conexión." in output  # the case's description


async def test_preview_of_a_reply_uses_the_given_text_and_json(services: Services) -> None:
    number = (await accept(services)).case_number
    assert number
    code, output = await preview(services, "reply_sms", "--case", number,
                                 "--text", "Ya reiniciamos su puerto.")  # fmt: skip
    assert code == 0
    assert f"Caso {number}: Ya reiniciamos su puerto." in output
    assert "1 SMS segment(s)" in output
    code, output = await preview(services, "reply", "--case", number, "--json", "--text", "Hecho")
    assert code == 0
    items = json.loads(output)["items"]
    assert [i["template"] for i in items] == ["reply_email", "reply_sms", "reply_telegram"]
    assert items[0]["subject"] == f"Re: [{number}] No tengo Internet"
    assert items[0]["html"] and "Hecho" in items[0]["html"] and items[1]["html"] is None


async def test_preview_of_a_status_change_shows_the_status_before(services: Services) -> None:
    number = (await accept(services)).case_number
    assert number
    code, output = await cli_update(services, number, "--status", "Cerrada")
    assert code == 0, output
    code, output = await preview(services, "status_email", "--case", number)
    assert code == 0
    assert "pasó de «Abierta» a «Cerrada»" in output
    assert "Si el problema persiste" in output  # a closed-kind status


async def cli_update(services: Services, number: str, *options: str) -> tuple[int, str]:
    args = cli.build_parser().parse_args(["cases", "update", number, *options])
    out = io.StringIO()
    code: int = await args.handler(services, args, out)
    return code, out.getvalue()


async def test_preview_refusals(services: Services) -> None:
    number = (await accept(services)).case_number
    assert number
    code, output = await preview(services, "farewell", "--case", number)
    assert code == 2 and "no template 'farewell'; templates: ack_email, ack_sms" in output
    code, output = await preview(services, "watch", "--channel", "sms", "--case", number)
    assert code == 2 and "no template 'watch_sms'" in output
    code, output = await preview(services, "ack_email", "--case", "CAS-999999")
    assert code == 1 and "no case CAS-999999" in output


async def test_preview_of_a_broken_template_says_where(
    services: Services, templates_dir: Path
) -> None:
    number = (await accept(services)).case_number
    assert number
    (templates_dir / "es" / "ack_sms.txt.j2").write_text("Caso {{ case_number }}\n{% if %}\n")
    services.renderer = TemplateRenderer(templates_dir)  # as a fresh CLI loads it
    code, output = await preview(services, "ack", "--case", number)
    assert code == 1
    assert f"ack_sms (es) does not render: {templates_dir / 'es' / 'ack_sms.txt.j2'}:2:" in output
    assert "== ack_email (es)" in output  # the others still shown


# --- broken templates: config check, start, reload ---------------------------------------


def test_config_check_names_the_broken_file_and_line(
    templates_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = io.StringIO()
    assert cli.main(["--config", str(DEFAULT_CONFIG), "config", "check"], out, io.StringIO()) == 0
    broken = templates_dir / "en" / "status_email.html.j2"
    broken.write_text("{% extends 'en/_email.html.j2' %}\n{% block content %}\n{{ status }\n")
    out = io.StringIO()
    assert cli.main(["--config", str(DEFAULT_CONFIG), "config", "check"], out, io.StringIO()) == 1
    err = capsys.readouterr().err
    assert "templates have 1 problem(s):" in err
    assert f"  {broken}:3: " in err
    assert "is valid" not in out.getvalue()


async def test_the_daemon_refuses_to_start_with_a_broken_template(
    templates_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broken = templates_dir / "es" / "assigned_push.subject.j2"
    broken.write_text("Caso {{ case_number }} {% endif %}\n")
    settings = make_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'start.db'}")
    with caplog.at_level(logging.ERROR):
        code = await asyncio.wait_for(Daemon(settings, SystemdNotifier({})).run(), 60)
    assert code == 1
    assert f"cannot start: template {broken}:1: " in caplog.text


async def test_a_reload_with_a_broken_template_keeps_the_working_ones(
    services: Services, templates_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    daemon = Daemon(services.settings, SystemdNotifier({}))
    process = services.writes.process
    pid = process.state()["pid"] if process is not None else None
    ack = templates_dir / "es" / "ack_email.txt.j2"
    ack.write_text("Nuevo acuse del caso {{ case_number }}\n{{ case_number | nope }}\n")
    with caplog.at_level(logging.INFO):
        await daemon._reload(services)
    assert f"reload failed, keeping the previous templates: {ack}:2: " in caplog.text
    assert "reloaded templates" not in caplog.text
    if process is not None:
        assert process.state()["pid"] == pid  # the writer process keeps its templates too
    first = (await accept(services, "uno@example.com")).case_number
    assert "Recibimos su mensaje" in await ack_body(services, first)

    caplog.clear()
    ack.write_text("Nuevo acuse del caso {{ case_number }}\n")
    with caplog.at_level(logging.INFO):
        await daemon._reload(services)
    assert "reloaded templates" in caplog.text
    rendered = services.renderer.render("ack_email", "es", {"case_number": "CAS-1", "title": "x"})
    assert rendered.body == "Nuevo acuse del caso CAS-1\n"
    if process is not None:
        # A fresh writer process, which loads the (shipped) templates itself.
        assert process.state()["pid"] != pid
    else:  # PostgreSQL: the write path renders with this very renderer
        second = (await accept(services, "dos@example.com")).case_number
        assert await ack_body(services, second) == f"Nuevo acuse del caso {second}\n"


async def ack_body(services: Services, number: str | None) -> str:
    assert number
    case = await services.db.read(get_case, number, timeline=False)
    assert case is not None
    async with services.db.session() as session:
        body = await session.scalar(
            select(Notification.body).where(Notification.case_id == case.row.id)
        )
    return str(body)
