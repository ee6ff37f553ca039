"""The Telegram notifier against a loopback Bot API: what a message looks like when it
arrives, how each Bot API failure is translated, the token kept out of errors and logs,
and its registration from the settings."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from config.outbound_parts import build_notifiers
from config.settings import ConfigError
from notifiers.base import Outgoing, PermanentError, TransientError
from notifiers.telegram import MAX_TEXT, TelegramConfig, TelegramNotifier
from notifiers.templates import cut, utf16_len
from tests.conftest import make_settings
from tests.notifiers.telegram_api import TOKEN, BotApi, bot_api

# PTB's RetryAfter warns about its own attribute when it is raised (PTB 22.2+).
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:telegram")


def outgoing(text: str = "Hola", subject: str = "", recipient: str = "555001") -> Outgoing:
    return Outgoing(1, "telegram", "telegram", recipient, subject, text)


@asynccontextmanager
async def notifier(
    api: BotApi | None = None, token: str = TOKEN, wait: float = 5.0
) -> AsyncIterator[tuple[TelegramNotifier, BotApi]]:
    async with bot_api(api) as (served, url):
        sender = TelegramNotifier(TelegramConfig(token, url, timeout_seconds=wait))
        await sender.start()
        try:
            yield sender, served
        finally:
            await sender.stop()


async def test_a_plain_message_is_sent_as_text_with_its_message_id() -> None:
    async with notifier() as (sender, api):
        delivered = await sender.send(outgoing("Su caso CAS-000001 <ya> está & abierto"))
    assert api.calls == ["getMe", "sendMessage"]
    [form] = api.received
    assert form["chat_id"] == "555001"
    assert form["text"] == "Su caso CAS-000001 <ya> está & abierto"  # plain: nothing escaped
    assert "parse_mode" not in form
    assert delivered.provider_message_id == "101" and delivered.code == "200"


async def test_a_subject_is_a_bold_first_line_and_everything_is_escaped() -> None:
    async with notifier() as (sender, api):
        await sender.send(outgoing("Escribió: <b>hola</b> & adiós", subject="Caso <CAS-1>"))
    [form] = api.received
    assert form["parse_mode"] == "HTML"
    assert form["text"] == (
        "<b>Caso &lt;CAS-1&gt;</b>\nEscribió: &lt;b&gt;hola&lt;/b&gt; &amp; adiós"
    )


async def test_text_beyond_the_bot_api_limit_is_cut_not_refused() -> None:
    long = "ñ" * 5000 + "😀" * 10
    async with notifier() as (sender, api):
        await sender.send(outgoing(long, subject="Asunto"))
    [form] = api.received
    visible = form["text"].removeprefix("<b>Asunto</b>\n")
    assert visible.endswith("…")
    assert utf16_len("Asunto\n" + visible) <= MAX_TEXT
    # Astral characters count twice and are never split.
    assert cut("a😀😀", 4) == "a😀…" and cut("a😀😀", 3) == "a…"


@pytest.mark.parametrize(
    ("answer", "code", "gone"),
    [("blocked", "403", True), ("chat_not_found", "400", True), ("too_long", "400", False)],
)
async def test_refusals_are_permanent_and_a_lost_chat_is_gone(
    answer: str, code: str, gone: bool
) -> None:
    async with notifier(BotApi(answers=[answer])) as (sender, _api):
        with pytest.raises(PermanentError) as info:
            await sender.send(outgoing())
    assert (info.value.code, info.value.gone) == (code, gone)
    assert info.value.response and info.value.response in str(info.value)


async def test_flood_control_is_transient_with_the_wait_telegram_asked_for() -> None:
    async with notifier(BotApi(answers=["flood"])) as (sender, _api):
        with pytest.raises(TransientError) as info:
            await sender.send(outgoing())
    assert info.value.retry_after == 7.0 and info.value.code == "429"


async def test_a_server_error_and_a_timeout_are_transient() -> None:
    async with notifier(BotApi(answers=["error_500", "hang"]), wait=0.5) as (sender, _api):
        with pytest.raises(TransientError) as error:
            await sender.send(outgoing())
        with pytest.raises(TransientError) as timeout:
            await asyncio.wait_for(sender.send(outgoing()), 10)
    assert "Internal Server Error" in str(error.value) and error.value.retry_after is None
    assert timeout.value.code == "timeout"


async def test_a_migrated_group_gets_the_message_at_its_new_id() -> None:
    async with notifier(BotApi(answers=["migrated"])) as (sender, api):
        delivered = await sender.send(outgoing(recipient="-4001"))
    [form] = api.received
    assert form["chat_id"] == "-1009876543210"
    assert delivered.response and "moved to -1009876543210" in delivered.response


async def test_a_rejected_token_fails_with_a_reason_and_never_shows_the_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    wrong = "999:wrong-token-value"
    with caplog.at_level(logging.DEBUG):
        async with notifier(token=wrong) as (sender, api):
            with pytest.raises(PermanentError) as info:
                await sender.send(outgoing())
    assert api.calls == ["getMe", "sendMessage"]  # started all the same
    assert "rejected the bot token ([telegram] token)" in str(info.value)
    assert info.value.code == "401" and not info.value.gone
    ours = "\n".join(  # every record but the fake server's own access log
        r.getMessage() for r in caplog.records if r.name != "aiohttp.access"
    )
    assert "rejected the bot token" in ours  # said at start
    assert wrong not in ours and wrong not in repr(info.value.response)
    assert "/bot<token>/sendMessage" in ours  # httpx's request line, redacted


async def test_an_unreachable_bot_api_at_start_is_not_fatal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with bot_api() as (_api, url):
        pass  # the port is free again: nothing listens there
    sender = TelegramNotifier(TelegramConfig(TOKEN, url, timeout_seconds=1))
    with caplog.at_level(logging.WARNING):
        await sender.start()
    try:
        assert "did not answer at start" in caplog.text
        with pytest.raises(TransientError):
            await sender.send(outgoing())
    finally:
        await sender.stop()
    assert TOKEN not in caplog.text


def test_registered_under_telegram_when_enabled(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'v.db'}"
    assert "telegram" not in build_notifiers(make_settings(tmp_path, url))
    settings = make_settings(
        tmp_path,
        url,
        VENTANILLA_TELEGRAM__ENABLED="true",
        VENTANILLA_TELEGRAM__TOKEN=TOKEN,
        VENTANILLA_TELEGRAM__API_BASE_URL="http://127.0.0.1:9/",
        VENTANILLA_TELEGRAM__CONCURRENCY="3",
    )
    sender = build_notifiers(settings)["telegram"]
    assert isinstance(sender, TelegramNotifier)
    assert (sender.channel, sender.name, sender.concurrency) == ("telegram", "telegram", 3)
    assert sender.bot.base_url == f"http://127.0.0.1:9/bot{TOKEN}"


def test_enabled_without_a_token_is_a_config_error(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'v.db'}"
    with pytest.raises(ConfigError) as info:
        make_settings(tmp_path, url, VENTANILLA_TELEGRAM__ENABLED="true")
    [problem] = info.value.problems
    assert problem.key == "telegram" and "token or token_file" in problem.message
    (tmp_path / "bot.token").write_text(TOKEN + "\n")
    settings = make_settings(
        tmp_path,
        url,
        VENTANILLA_TELEGRAM__ENABLED="true",
        VENTANILLA_TELEGRAM__TOKEN_FILE=str(tmp_path / "bot.token"),
    )
    assert settings.telegram.token == TOKEN
