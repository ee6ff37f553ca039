"""parse_email on small handmade messages: headers, charsets, sender, ids, bodies."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone

import pytest

from intake.email.parse import EmailParseError, ParsedEmail, ParseLimits, parse_email

OWN = "ventanilla.localdomain"


def mail(*headers: str, body: bytes | str = "Hola.\n", content_type: str | None = None) -> bytes:
    """Raw message bytes exactly as written (CRLF line ends, as on the wire)."""
    lines = list(headers)
    if not any(h.lower().startswith("message-id:") for h in headers):
        lines.append("Message-ID: <m1@mail.example.com>")
    if content_type:
        lines.append(f"Content-Type: {content_type}")
    head = "\r\n".join(lines).encode("utf-8") + b"\r\n\r\n"
    data = body.encode("utf-8") if isinstance(body, str) else body
    return head + data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def parse(raw: bytes, limits: ParseLimits | None = None) -> ParsedEmail:
    return parse_email(raw, limits or ParseLimits(), OWN)


# --- headers and charsets --------------------------------------------------------------


def test_rfc2047_utf8_base64_and_q_and_latin1() -> None:
    parsed = parse(
        mail(
            "From: =?UTF-8?B?QW5hIFDDqXJleg==?= <Ana@Example.COM>",
            "Subject: =?UTF-8?Q?Facturaci=C3=B3n_de_marzo?= =?ISO-8859-1?Q?_-_se=F1or?=",
        )
    )
    assert parsed.sender.name == "Ana Pérez"
    assert parsed.sender.email == "ana@example.com"
    assert parsed.subject == "Facturación de marzo - señor"


def test_multibyte_character_split_across_encoded_words() -> None:
    # "ñ" is C3 B1 in UTF-8; some mailers cut it between two words.
    parsed = parse(mail("Subject: =?utf-8?Q?Espa=C3?= =?utf-8?Q?=B1a?="))
    assert parsed.subject == "España"


def test_unknown_charset_does_not_raise() -> None:
    parsed = parse(
        mail(
            "From: x@example.com",
            "Subject: =?x-unknown?Q?caf=E9?=",
            content_type="text/plain; charset=x-unknown",
            body=b"caf\xe9 con leche\n",
        )
    )
    assert parsed.subject == "café"
    assert parsed.text.strip() == "café con leche"


def test_wrong_declared_charset_falls_back() -> None:
    # Declared US-ASCII, really UTF-8 (a common lie); and declared UTF-8, really Latin-1.
    parsed = parse(mail(content_type="text/plain; charset=us-ascii", body="año\n".encode()))
    assert parsed.text.strip() == "año"
    parsed = parse(mail(content_type='text/plain; charset="utf-8"', body=b"a\xf1o\n"))
    assert parsed.text.strip() in ("a\ufffdo", "año")
    assert "\x00" not in parsed.text


def test_raw_8bit_headers_are_read_as_utf8_or_latin1() -> None:
    raw = b"From: Jos\xc3\xa9 <jose@example.com>\r\nSubject: se\xf1al\r\n\r\nx\r\n"
    parsed = parse(raw)
    assert parsed.sender.name == "José"
    assert parsed.subject == "señal"


def test_subject_is_one_line_and_bounded() -> None:
    parsed = parse(mail("Subject: Uno\r\n  dos\t tres"))
    assert parsed.subject == "Uno dos tres"
    parsed = parse(mail("Subject: " + "palabra " * 300))
    assert len(parsed.subject) == 1000


def test_date_is_aware_or_none() -> None:
    parsed = parse(mail("Date: Tue, 5 Mar 2019 18:03:06 +0100"))
    assert parsed.date == datetime(2019, 3, 5, 18, 3, 6, tzinfo=timezone(timedelta(hours=1)))
    assert parse(mail("Date: Mon, 1 Jan 2024 10:00:00 -0000")).date == datetime(
        2024, 1, 1, 10, tzinfo=UTC
    )
    assert parse(mail("Date: ayer por la tarde")).date is None
    assert parse(mail("Subject: x")).date is None


# --- sender and recipients -------------------------------------------------------------


def test_sender_prefers_reply_to_then_from_sender_return_path() -> None:
    both = mail("From: Web <noreply@forms.example>", "Reply-To: Ana <ana@example.com>")
    assert parse(both).sender.email == "ana@example.com"
    assert parse(both).sender.name == "Ana"
    ours = mail("From: Ana <ana@example.com>", f"Reply-To: soporte@{OWN}")
    assert parse(ours).sender.email == "ana@example.com"  # our own Reply-To is skipped
    assert parse(mail("Sender: Bot <bot@example.com>")).sender.email == "bot@example.com"
    assert parse(mail("Return-Path: <rp@example.com>")).sender.email == "rp@example.com"
    nobody = parse(mail("Subject: sin remitente"))
    assert nobody.sender.email is None


def test_bare_reply_to_keeps_the_from_name_of_the_same_person() -> None:
    parsed = parse(mail("From: Ana Pérez <ana@example.com>", "Reply-To: ana@example.com"))
    assert (parsed.sender.name, parsed.sender.email) == ("Ana Pérez", "ana@example.com")


def test_to_and_cc_lists_are_lower_cased_and_deduplicated() -> None:
    parsed = parse(
        mail(
            'To: "Soporte, Nivel 1" <Soporte@Example.com>, otro@example.com',
            "Cc: Jefe <JEFE@example.com>, soporte@example.com",
            "Cc: jefe@example.com, equipo: a@example.com, b@example.com;",
        )
    )
    assert parsed.to == ("soporte@example.com", "otro@example.com")
    assert parsed.cc == (
        "jefe@example.com",
        "soporte@example.com",
        "a@example.com",
        "b@example.com",
    )


def test_old_style_comment_names_the_sender() -> None:
    parsed = parse(mail("From: ana@example.com (Ana Pérez)"))
    assert (parsed.sender.name, parsed.sender.email) == ("Ana Pérez", "ana@example.com")


# --- ids -------------------------------------------------------------------------------


def test_message_id_without_brackets_and_whitespace() -> None:
    assert parse(mail("Message-ID:  < abc@example.com >")).message_id == "abc@example.com"


def test_missing_message_id_uses_a_stable_hash_of_the_bytes() -> None:
    raw = b"From: a@example.com\r\nSubject: sin id\r\n\r\nHola\r\n"
    first, second = parse(raw), parse(raw)
    assert first.message_id == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert first.message_id == second.message_id
    empty = b"From: a@example.com\r\nMessage-ID: \r\n\r\nHola\r\n"
    assert parse(empty).message_id.startswith("sha256:")


def test_in_reply_to_then_references_newest_first_deduplicated() -> None:
    parsed = parse(
        mail(
            "In-Reply-To: <c@x.example>",
            "References: <a@x.example> <b@x.example>\r\n <c@x.example>",
        )
    )
    assert parsed.in_reply_to == ("c@x.example", "b@x.example", "a@x.example")


def test_overlong_id_is_hashed_the_same_way_everywhere() -> None:
    long_id = "x" * 400 + "@example.com"
    first = parse(mail(f"Message-ID: <{long_id}>"))
    reply = parse(mail("Message-ID: <r@example.com>", f"In-Reply-To: <{long_id}>"))
    assert first.message_id.startswith("sha256:")
    assert reply.in_reply_to == (first.message_id,)


# --- bodies ----------------------------------------------------------------------------

HTML_ONLY = """<html><head><title>Aviso</title><style>p {color: red}</style>
<script>alert('x')</script></head>
<body><h1>Pedido 123</h1><p>Hola,<br>el pedido <b>no</b> llegó.</p>
<ul><li>Caja rota</li><li>Falta una pieza</li></ul>
<a href="javascript:alert(1)" onclick="steal()">clic</a></body></html>
"""


def test_html_only_mail_becomes_readable_text_and_sanitized_html() -> None:
    parsed = parse(mail(content_type="text/html; charset=utf-8", body=HTML_ONLY))
    assert "Pedido 123" in parsed.text
    assert "el pedido no llegó." in parsed.text
    assert "Caja rota" in parsed.text and "Falta una pieza" in parsed.text
    assert "alert" not in parsed.text and "color" not in parsed.text
    assert "<" not in parsed.text
    assert parsed.html is not None
    assert "<script" not in parsed.html and "onclick" not in parsed.html
    assert "javascript:" not in parsed.html
    assert "<b>no</b>" in parsed.html


def test_alternative_prefers_plain_text_and_keeps_html() -> None:
    body = (
        "--b\nContent-Type: text/plain; charset=utf-8\n\nTexto plano del cliente.\n"
        "--b\nContent-Type: text/html; charset=utf-8\n\n<p>Texto <i>plano</i> del cliente.</p>\n"
        "--b--\n"
    )
    parsed = parse(mail(content_type='multipart/alternative; boundary="b"', body=body))
    assert parsed.text == "Texto plano del cliente."
    assert parsed.html is not None and "<i>plano</i>" in parsed.html


def test_alternative_whose_html_says_more_keeps_both() -> None:
    body = (
        "--b\nContent-Type: text/plain\n\n\n"
        "--b\nContent-Type: text/html\n\n<p>El router se reinicia cada cinco minutos</p>\n"
        "--b--\n"
    )
    parsed = parse(mail(content_type='multipart/alternative; boundary="b"', body=body))
    assert parsed.text == "El router se reinicia cada cinco minutos"


def test_format_flowed_is_unwrapped() -> None:
    body = "Una l\u00ednea larga \nque sigue aqu\u00ed.\n>> cita \n>> larga\n-- \nFirma\n"
    parsed = parse(mail(content_type="text/plain; charset=utf-8; format=flowed", body=body))
    assert parsed.text.splitlines() == [
        "Una línea larga que sigue aquí.",
        ">> cita larga",
        "-- ",
        "Firma",
    ]


def test_headerless_text_parses_but_binary_is_not_mail() -> None:
    parsed = parse(b"Just some text\nwithout headers\n")
    assert parsed.text.startswith("Just some text")
    with pytest.raises(EmailParseError):
        parse(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(EmailParseError):
        parse(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100)
    with pytest.raises(EmailParseError):
        parse(b"  \r\n")


def test_nul_bytes_never_reach_the_text() -> None:
    parsed = parse(mail("Subject: a\x00b", body=b"uno\x00dos\n"))
    assert parsed.text.strip() == "unodos"
    assert "\x00" not in parsed.subject
