"""Telegram loop protection: a bot, an echo of a text we sent to the chat, or a chat
sending more than its share a minute is recorded without an acknowledgement."""

from __future__ import annotations

from datetime import UTC, datetime

from telegram import Chat, Message, User

from config.app import Services
from intake.telegram_loops import ChatLoopGuard
from storage.models import Notification

CHAT = 42


def said(text: str, *, bot: bool = False, chat: int = CHAT) -> Message:
    return Message(
        message_id=1,
        date=datetime.now(UTC),
        chat=Chat(chat, Chat.PRIVATE),
        from_user=User(chat, "Ana", bot),
        text=text,
    )


async def test_an_echo_of_our_own_text_is_not_acknowledged(services: Services) -> None:
    async with services.db.session() as session, session.begin():
        session.add(
            Notification(
                channel="telegram",
                trigger="auto",
                template="ack_telegram",
                recipient=str(CHAT),
                subject="Caso CAS-000001: consulta recibida",
                body="Hola Ana, recibimos su mensaje\ny abrimos el caso CAS-000001.",
            )
        )
    guard = ChatLoopGuard(services.db, per_minute=0)
    sent = await guard.sent_texts([CHAT, 7])
    echo = (
        "Caso CAS-000001: consulta recibida\n"
        "Hola Ana, recibimos su mensaje y abrimos el caso CAS-000001."
    )
    assert guard.reason(said(echo), sent) == (
        "repeats a message we sent to this chat (loop protection)"
    )
    body_only = "hola ana, recibimos su mensaje   y abrimos el caso CAS-000001."
    assert guard.reason(said(body_only), sent) is not None  # case and spacing folded
    assert guard.reason(said("Gracias, sigo sin servicio"), sent) is None
    assert guard.reason(said(echo, chat=7), sent) is None  # sent to another chat


async def test_a_chat_over_its_messages_a_minute_and_bots_are_not_acknowledged(
    services: Services,
) -> None:
    now = [1000.0]
    guard = ChatLoopGuard(services.db, per_minute=3, clock=lambda: now[0])
    answers = [guard.reason(said(f"mensaje {n}"), {}) for n in range(5)]
    assert answers[:3] == [None, None, None]
    assert answers[3] == "more than 3 messages a minute from this chat (loop protection)"
    assert guard.reason(said("otro chat", chat=43), {}) is None
    now[0] += 61
    assert guard.reason(said("un minuto después"), {}) is None
    assert guard.reason(said("hola", bot=True, chat=44), {}) == "sent by a bot (loop protection)"
