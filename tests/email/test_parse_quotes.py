"""reply_text: quoted history and signatures stripped (English, Spanish, Outlook)."""

from __future__ import annotations

from intake.email.parse import ParseLimits, parse_email
from intake.email.parse_quotes import strip_reply


def test_quoted_lines_and_english_attribution() -> None:
    text = (
        "Thanks, it works now.\n\n"
        "On Mon, Jun 3, 2024 at 10:00 AM Soporte <soporte@example.com> wrote:\n"
        "> Please restart the router.\n> \n> Regards\n"
    )
    assert strip_reply(text) == "Thanks, it works now."


def test_spanish_attribution_wrapped_over_two_lines() -> None:
    text = (
        "Sigue sin funcionar.\n\n"
        "El lun, 3 jun 2024 a las 10:00, Soporte Técnico (<soporte@example.com>)\n"
        "escribió:\n"
        "> ¿Reinició el equipo?\n"
    )
    assert strip_reply(text) == "Sigue sin funcionar."


def test_inline_answers_between_quotes_are_kept() -> None:
    text = (
        "On Tue, Ana wrote:\n"
        "> ¿Cuál es su número de cliente?\n"
        "12345\n"
        "> ¿Desde cuándo falla?\n"
        "Desde ayer.\n"
    )
    assert strip_reply(text) == "12345\nDesde ayer."


def test_outlook_original_message_block() -> None:
    text = (
        "Adjunto la captura.\n\n"
        "-----Original Message-----\n"
        "From: Soporte <soporte@example.com>\n"
        "Sent: Monday, June 3, 2024 10:00 AM\n"
        "Subject: RE: Caso\n\nTexto anterior\n"
    )
    assert strip_reply(text) == "Adjunto la captura."


def test_outlook_spanish_header_block_with_rule() -> None:
    text = (
        "Gracias por la respuesta.\n\n"
        "________________________________\n"
        "De: Soporte <soporte@example.com>\n"
        "Enviado: lunes, 3 de junio de 2024 10:00\n"
        "Para: Ana <ana@example.com>\n"
        "Asunto: [CAS-000123] Recibimos su solicitud\n\n"
        "Texto anterior\n"
    )
    assert strip_reply(text) == "Gracias por la respuesta."


def test_mensaje_original_separator() -> None:
    text = "Listo.\n\n-----Mensaje original-----\nDe: x\nTexto\n"
    assert strip_reply(text) == "Listo."


def test_signature_delimiter_rfc3676() -> None:
    text = "No tengo servicio.\n\n-- \nAna Pérez\nTel. 555 1234\n"
    assert strip_reply(text) == "No tengo servicio."
    assert strip_reply("Hola\n--\nFirma\n") == "Hola"  # trailing space lost by the client


def test_mobile_signature_line() -> None:
    assert strip_reply("Ya llegó.\n\nEnviado desde mi iPhone\n") == "Ya llegó."
    assert strip_reply("Got it.\n\nSent from my Android\n") == "Got it."


def test_only_quotes_gives_none() -> None:
    assert strip_reply("> quoted only\n> more\n") is None
    assert strip_reply("") is None


def test_text_without_history_is_unchanged() -> None:
    text = "Línea uno\n\nLínea dos"
    assert strip_reply(text) == text


def test_text_keeps_everything_reply_text_does_not() -> None:
    raw = (
        b"From: ana@example.com\r\nMessage-ID: <q@example.com>\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
        b"Respuesta nueva.\r\n\r\nOn Mon, Bob wrote:\r\n> cita\r\n-- \r\nAna\r\n"
    )
    parsed = parse_email(raw, ParseLimits())
    assert parsed.reply_text == "Respuesta nueva."
    assert "> cita" in parsed.text and "Ana" in parsed.text
