"""Raw 8-bit (and ISO-2022) header bytes in legacy charsets: read in the charset the message
declares elsewhere, else by detection; never as Windows-1252 mojibake or with U+FFFD."""

from __future__ import annotations

import base64
from typing import NamedTuple

import pytest

from intake.email import mime_charsets
from intake.email.parse import ParsedEmail, ParseLimits, parse_email

OWN = "ventanilla.localdomain"


class Legacy(NamedTuple):
    label: str  # as mail declares it
    codec: str  # how the test writes the bytes
    name: str
    subject: str


LEGACY = [
    Legacy("gb2312", "gb2312", "王女士", "订单退款申请"),
    Legacy("gbk", "gbk", "张先生", "关于发票的问题"),
    Legacy("shift_jis", "shift_jis", "山田太郎", "請求書について"),
    Legacy("iso-2022-jp", "iso-2022-jp", "佐藤花子", "注文のキャンセル"),
    Legacy("koi8-r", "koi8-r", "Мария Иванова", "Не работает интернет"),
    Legacy("windows-1250", "cp1250", "Jiří Novák", "Reklamace zásilky"),
    Legacy("windows-1251", "cp1251", "Иван Петров", "Проблема с заказом"),
    Legacy("windows-1252", "cp1252", "François Müller", "Commande numéro 12"),
    Legacy("windows-1253", "cp1253", "Γιώργος Παπαδόπουλος", "Παραγγελία"),
    Legacy("windows-1254", "cp1254", "Mehmet Öztürk", "Fatura hakkında"),
    Legacy("windows-1255", "cp1255", "משה כהן", "הזמנה חדשה"),
    Legacy("windows-1256", "cp1256", "أحمد حسن", "مشكلة في الفاتورة"),
    Legacy("windows-1257", "cp1257", "Jānis Bērziņš", "Rēķins par martu"),
]
IDS = [case.label for case in LEGACY]


def parse(raw: bytes) -> ParsedEmail:
    return parse_email(raw, ParseLimits(), OWN)


def message(*fields: bytes, body: bytes = b"Hola.\r\n") -> bytes:
    """A message exactly as a legacy mailer writes it: header bytes in its own charset."""
    return b"\r\n".join((*fields, b"Message-ID: <m1@mail.example.com>")) + b"\r\n\r\n" + body


def raw_fields(case: Legacy, address: str = "cliente@example.com") -> tuple[bytes, bytes]:
    """From with a raw display name, and a raw Subject, in the case's charset."""
    name = case.name.encode(case.codec)
    return (
        b"From: " + name + b" <" + address.encode() + b">",
        b"Subject: " + case.subject.encode(case.codec),
    )


def encoded_word(text: str, label: str, codec: str) -> bytes:
    """An RFC 2047 B-encoded word."""
    return b"=?" + label.encode() + b"?B?" + base64.b64encode(text.encode(codec)) + b"?="


def assert_read(parsed: ParsedEmail, case: Legacy) -> None:
    assert (parsed.sender.name, parsed.subject) == (case.name, case.subject)
    assert parsed.sender.email == "cliente@example.com"


# --- the charset declared elsewhere ----------------------------------------------------


@pytest.mark.parametrize("case", LEGACY, ids=IDS)
def test_raw_header_in_the_charset_of_the_body(case: Legacy) -> None:
    parsed = parse(
        message(
            *raw_fields(case),
            b"Content-Type: text/plain; charset=" + case.label.encode(),
            body=case.subject.encode(case.codec) + b"\r\n",
        )
    )
    assert_read(parsed, case)
    assert parsed.text.strip() == case.subject


@pytest.mark.parametrize("case", LEGACY, ids=IDS)
def test_raw_header_in_the_charset_of_a_part(case: Legacy) -> None:
    body = (
        b"--sep\r\nContent-Type: text/plain; charset=" + case.label.encode() + b"\r\n\r\n"
        b"Adjunto la factura.\r\n"
        b"--sep\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment\r\n\r\n"
        b"%PDF-1.4\r\n--sep--\r\n"
    )
    fields = (*raw_fields(case), b'Content-Type: multipart/mixed; boundary="sep"')
    assert_read(parse(message(*fields, body=body)), case)


@pytest.mark.parametrize("case", LEGACY, ids=IDS)
def test_raw_header_in_the_charset_of_an_encoded_word_elsewhere(case: Legacy) -> None:
    # The mailer encoded the Cc name (RFC 2047) but wrote From and Subject raw.
    cc = b"Cc: " + encoded_word(case.name, case.label, case.codec) + b" <jefe@example.com>"
    assert_read(parse(message(*raw_fields(case), cc)), case)


# --- nothing declared: detection -------------------------------------------------------


@pytest.mark.parametrize("case", LEGACY, ids=IDS)
def test_raw_header_with_no_charset_anywhere_is_detected(case: Legacy) -> None:
    parsed = parse(message(*raw_fields(case), b"To: soporte@example.com"))
    assert_read(parsed, case)
    assert "\ufffd" not in parsed.subject + parsed.sender.name


def test_the_senders_country_domain_settles_what_the_bytes_alone_do_not() -> None:
    # Windows-1250 reads these Turkish bytes too ("Ţifremi"); a .tr address tips it.
    fields = ("Zeynep Kaya".encode("cp1254"), "Şifremi unuttum".encode("cp1254"))
    generic = parse(message(b"From: " + fields[0] + b" <z@example.com>", b"Subject: " + fields[1]))
    turkish = parse(
        message(b"From: " + fields[0] + b" <z@example.com.tr>", b"Subject: " + fields[1])
    )
    assert generic.subject != "Şifremi unuttum"
    assert turkish.subject == "Şifremi unuttum"


def test_chinese_without_kana_is_not_read_as_japanese() -> None:
    # These GB2312 bytes are valid EUC-JP kanji too, and the detector alone says EUC-JP.
    case = Legacy("gb2312", "gb2312", "王女士", "订单退款申请")
    raw = message(*raw_fields(case))
    assert_read(parse(raw), case)
    japanese = Legacy("euc-jp", "euc-jp", "山田太郎", "請求書について")  # kana: stays EUC-JP
    assert_read(parse(message(*raw_fields(japanese))), japanese)


# --- UTF-8 first, and a declaration that cannot be the one -----------------------------


def test_valid_utf8_is_utf8_whatever_else_is_declared() -> None:
    raw = message(
        "From: Иван Петров <cliente@example.com>".encode(),
        "Subject: 订单退款申请".encode(),
        b"Content-Type: text/plain; charset=gb2312",
    )
    parsed = parse(raw)
    assert (parsed.sender.name, parsed.subject) == ("Иван Петров", "订单退款申请")


def test_a_single_byte_label_gives_way_to_a_multi_byte_reading() -> None:
    # Latin-1 reads any bytes, so a body labelled iso-8859-1 proves nothing about a raw
    # GBK subject; the detector's GB18030 reading wins. Latin-1 text stays Latin-1.
    latin = b"Content-Type: text/plain; charset=iso-8859-1"
    case = Legacy("gbk", "gbk", "张先生", "关于发票的问题")
    assert_read(parse(message(*raw_fields(case), latin)), case)
    spanish = Legacy("iso-8859-1", "latin-1", "José Pérez", "Facturación de marzo")
    assert_read(parse(message(*raw_fields(spanish), latin)), spanish)


def test_a_label_that_reads_the_bytes_as_control_characters_is_passed_over() -> None:
    # Outlook's curly quotes and dashes are Windows-1252; the body says ISO-8859-1, where
    # those bytes are C1 controls, so the subject is read in the detected Windows-1252.
    subject = "Re: “Pedido 123” – urgente €"
    raw = message(
        b"From: cliente@example.com",
        b"Subject: " + subject.encode("cp1252"),
        b"Content-Type: text/plain; charset=iso-8859-1",
    )
    assert parse(raw).subject == subject


def test_shift_jis_byte_5c_inside_a_quoted_name_is_no_escape() -> None:
    # "ソ" is 0x83 0x5C in Shift_JIS: the bytes are read before the name is unquoted.
    name = "ソフト開発部".encode("shift_jis")
    assert b"\\" in name
    parsed = parse(
        message(
            b'From: "' + name + b'" <cliente@example.com>',
            b"Subject: " + "表示できません".encode("shift_jis"),
        )
    )
    assert parsed.sender.name == "ソフト開発部"


def test_shift_jis_label_reads_the_windows_extensions() -> None:
    # Circled digits are NEC row 13, in Windows-31J but not in strict Shift_JIS.
    subject = encoded_word("【重要】①請求書", "shift_jis", "cp932")
    assert parse(message(b"Subject: " + subject)).subject == "【重要】①請求書"


# --- attachment names ------------------------------------------------------------------

ATTACHED = (
    b"--sep\r\nContent-Type: text/plain\r\n\r\nAdjunto.\r\n"
    b"--sep\r\nContent-Type: application/pdf%s\r\n%s\r\n\r\n%%PDF-1.4\r\n--sep--\r\n"
)


def with_attachment(subject: bytes, content_type: bytes, disposition: bytes) -> bytes:
    return message(
        b"From: cliente@example.com",
        b"Subject: " + subject,
        b'Content-Type: multipart/mixed; boundary="sep"',
        body=ATTACHED % (content_type, disposition),
    )


def test_raw_filename_in_content_disposition_uses_the_declared_charset() -> None:
    raw = with_attachment(
        encoded_word("发票", "gb2312", "gb2312"),
        b"",
        b'Content-Disposition: attachment; filename="' + "发票.pdf".encode("gb2312") + b'"',
    )
    assert [a.filename for a in parse(raw).attachments] == ["发票.pdf"]


def test_raw_utf8_filename_is_kept() -> None:
    raw = with_attachment(
        b"Factura",
        b"",
        b'Content-Disposition: attachment; filename="' + "Facturación año.pdf".encode() + b'"',
    )
    assert [a.filename for a in parse(raw).attachments] == ["Facturación año.pdf"]


def test_raw_name_parameter_in_content_type_is_detected() -> None:
    raw = with_attachment(
        "請求書をお送りします".encode("shift_jis"),
        b'; name="' + "請求書.pdf".encode("shift_jis") + b'"',
        b"Content-Disposition: attachment",
    )
    parsed = parse(raw)
    assert parsed.subject == "請求書をお送りします"
    assert [a.filename for a in parsed.attachments] == ["請求書.pdf"]


def test_forwarded_message_is_named_by_its_raw_subject() -> None:
    inner = b"From: a@example.jp\r\nSubject: " + "注文のキャンセル".encode("shift_jis")
    body = (
        b"--sep\r\nContent-Type: text/plain; charset=shift_jis\r\n\r\nFwd.\r\n"
        b"--sep\r\nContent-Type: message/rfc822\r\n\r\n" + inner + b"\r\n\r\nHola\r\n--sep--\r\n"
    )
    raw = message(
        b"From: b@example.jp", b'Content-Type: multipart/mixed; boundary="sep"', body=body
    )
    assert [a.filename for a in parse(raw).attachments] == ["注文のキャンセル.eml"]


# --- the hot path ----------------------------------------------------------------------


def test_ascii_and_utf8_headers_never_look_further(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(message: object) -> None:
        raise AssertionError("declared charsets or detection consulted")

    monkeypatch.setattr(mime_charsets, "_declared_codecs", refuse)
    monkeypatch.setattr(mime_charsets, "_detect", refuse)
    ascii_mail = message(b"From: Ana <ana@example.com>", b"Subject: =?utf-8?Q?se=C3=B1al?=")
    assert parse(ascii_mail).subject == "señal"
    utf8_mail = message("From: José <jose@example.com>".encode(), "Subject: señal".encode())
    assert parse(utf8_mail).sender.name == "José"
