"""A stray line before the header section (a forwarding client's separator, an mbox
envelope line, an empty or garbage line, a byte order mark) does not turn the headers
into body text; text that merely mentions a header stays text."""

from __future__ import annotations

import hashlib

import pytest

from intake.email.parse import ParsedEmail, ParseLimits, header_start, parse_email

OWN = "ventanilla.localdomain"
HEADERS = (
    b"From: Ana P\xc3\xa9rez <ana@example.com>\r\n"
    b"To: soporte@example.com\r\n"
    b"Subject: =?utf-8?Q?No_llega_el_pedido?=\r\n"
    b"Date: Tue, 5 Mar 2019 18:03:06 +0100\r\n"
    b"Message-ID: <pedido-1@example.com>\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"El pedido 123 no ha llegado.\r\n"
)


def parse(raw: bytes) -> ParsedEmail:
    return parse_email(raw, ParseLimits(), OWN)


def assert_headers_read(parsed: ParsedEmail) -> None:
    assert (parsed.sender.name, parsed.sender.email) == ("Ana Pérez", "ana@example.com")
    assert parsed.subject == "No llega el pedido"
    assert parsed.message_id == "pedido-1@example.com"
    assert parsed.to == ("soporte@example.com",)
    assert parsed.date is not None
    assert parsed.text == "El pedido 123 no ha llegado."


@pytest.mark.parametrize(
    "before",
    [
        b"---- Original message ----\r\n",
        b"-----Original Message-----\r\n",
        b"Begin forwarded message:\r\n",
        b"\r\n",
        b">From ana@example.com Tue Mar  5 18:03:06 2019\r\n",
        b"\x00\x07garbage \xff\xfe\r\n",
        b"\r\n---------- Forwarded message ---------\r\n",
        b"\xef\xbb\xbf",  # a UTF-8 byte order mark, as some Windows tools save .eml files
    ],
    ids=["android", "outlook", "apple", "empty", "quoted-mbox", "garbage", "two", "bom"],
)
def test_stray_line_before_the_headers_is_skipped(before: bytes) -> None:
    raw = before + HEADERS
    assert header_start(raw) == len(before)
    assert_headers_read(parse(raw))


def test_lf_and_cr_line_ends_too() -> None:
    assert_headers_read(parse(b"---- Original message ----\n" + HEADERS.replace(b"\r\n", b"\n")))
    assert_headers_read(parse(b"\r" + HEADERS.replace(b"\r\n", b"\r")))


def test_mbox_envelope_line_is_read_as_such() -> None:
    envelope = b"From ana@example.com Tue Mar  5 18:03:06 2019\r\n"
    assert header_start(envelope + HEADERS) == 0  # the stdlib parser's own case
    assert_headers_read(parse(envelope + HEADERS))
    assert_headers_read(parse(b"\r\n" + envelope + HEADERS))  # not its case: line two


def test_hash_of_a_mail_without_message_id_covers_the_bytes_as_received() -> None:
    # The raw bytes are stored untouched; the fallback id is their hash, stray line and all.
    headers = HEADERS.replace(b"Message-ID: <pedido-1@example.com>\r\n", b"")
    raw = b"---- Original message ----\r\n" + headers
    parsed = parse(raw)
    assert parsed.message_id == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert parsed.subject == "No llega el pedido"


def test_a_well_formed_mail_starts_at_zero() -> None:
    assert header_start(HEADERS) == 0
    assert header_start(b" folded first line\r\n" + HEADERS) == 0  # the parser's to handle


@pytest.mark.parametrize(
    "raw",
    [
        # Text that quotes a header block but does not end it with an empty line.
        b"Hola,\r\nFrom: ana@example.com\r\nSubject: pedido\r\nsigue el texto\r\n",
        # Only one message field after the first line: prose, not a header section.
        b"Hola,\r\nNota: el pedido 123\r\n\r\nGracias\r\n",
        # More stray lines than a separator takes.
        b"uno\r\ndos\r\ntres\r\ncuatro\r\nFrom: ana@example.com\r\nSubject: x\r\n\r\nHola\r\n",
        # A first line longer than RFC 5322 allows is content, not a separator.
        b"x" * 1200 + b"\r\nFrom: ana@example.com\r\nSubject: x\r\n\r\nHola\r\n",
    ],
    ids=["no-empty-line", "one-field", "too-many-lines", "long-line"],
)
def test_text_that_is_not_a_header_section_stays_text(raw: bytes) -> None:
    assert header_start(raw) == 0
    parsed = parse(raw)
    assert parsed.sender.email is None
    assert parsed.text.startswith(raw[:3].decode())
