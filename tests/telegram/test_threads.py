"""Which case a Telegram message continues when the chat window does not decide it
(``[cases] chat_window_hours = 0`` here): Telegram's reply to an earlier message continues
that message's case, an edit continues its original's, and anything else opens a case."""

from __future__ import annotations

import pytest

from config.app import Services
from tests.telegram.bot_api import FakeBotApi
from tests.telegram.support import cases, eventually, messages, parts_of, running


@pytest.fixture
def telegram_env() -> dict[str, str]:
    return {"VENTANILLA_CASES__CHAT_WINDOW_HOURS": "0"}


async def test_a_reply_continues_the_case_of_the_message_it_answers(
    services: Services, fake: tuple[FakeBotApi, str]
) -> None:
    api, _ = fake
    first = api.text("El módem no enciende")
    async with running(parts_of(services)):
        await eventually(lambda: not api.pending and api.confirmed is not None)
        api.text("Otra consulta: quiero cambiar de plan")
        await eventually(lambda: not api.pending)
        api.text("Ahora enciende pero sin luz de internet", reply_to_message=first["message"])
        api.edit(first, "El módem no enciende desde ayer")
        await eventually(lambda: not api.pending)
    opened, other = await cases(services)
    by_text = {m.text: m.case_id for m in await messages(services)}
    assert by_text["Otra consulta: quiero cambiar de plan"] == other.id
    assert by_text["Ahora enciende pero sin luz de internet"] == opened.id
    assert by_text["El módem no enciende desde ayer"] == opened.id
