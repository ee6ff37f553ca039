"""Attachments: hostile names, inline images, and the count / per-file / total limits."""

from __future__ import annotations

import base64

from intake.email.parse import ParsedEmail, ParseLimits, parse_email


def multipart(
    parts: list[str], subtype: str = "mixed", limits: ParseLimits | None = None
) -> ParsedEmail:
    body = "".join(f"--b\r\n{p}\r\n" for p in parts) + "--b--\r\n"
    raw = (
        "From: ana@example.com\r\nMessage-ID: <a@example.com>\r\n"
        f'Content-Type: multipart/{subtype}; boundary="b"\r\n\r\n{body}'
    ).encode()
    return parse_email(raw, limits or ParseLimits(), "ventanilla.localdomain")


def file_part(name: str, data: bytes, content_type: str = "application/octet-stream") -> str:
    encoded = base64.encodebytes(data).decode().replace("\n", "\r\n")
    return (
        f"Content-Type: {content_type}\r\nContent-Transfer-Encoding: base64\r\n"
        f'Content-Disposition: attachment; filename="{name}"\r\n\r\n{encoded}'
    )


TEXT = "Content-Type: text/plain; charset=utf-8\r\n\r\nAdjunto la factura."


def test_attachment_with_name_type_and_bytes() -> None:
    parsed = multipart([TEXT, file_part("factura.pdf", b"%PDF-1.4 data", "application/pdf")])
    assert parsed.text == "Adjunto la factura."
    (attachment,) = parsed.attachments
    assert attachment.filename == "factura.pdf"
    assert attachment.content_type == "application/pdf"
    assert attachment.data == b"%PDF-1.4 data"
    assert not attachment.inline
    assert parsed.dropped == ()


def test_hostile_file_names_are_sanitized() -> None:
    parsed = multipart(
        [
            TEXT,
            file_part("../../etc/passwd", b"x"),
            file_part("..\\\\..\\\\boot.ini", b"x"),
            file_part("a\x01b\x1fc\x7f.txt", b"x"),
            file_part("...", b"x"),
            file_part("=?utf-8?B?Li4vaW5mb3JtZS5wZGY=?=", b"x"),  # "../informe.pdf"
        ]
    )
    names = [a.filename for a in parsed.attachments]
    assert names[0] == "passwd"
    assert names[1] == "boot.ini"
    assert all(ch.isprintable() for ch in names[2])
    assert names[3] == "adjunto.bin"
    assert names[4] == "informe.pdf"
    assert all("/" not in n and "\\" not in n and not n.startswith(".") for n in names)


def test_rfc2231_file_name() -> None:
    part = (
        "Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n"
        "Content-Disposition: attachment; filename*=utf-8''a%C3%B1o%202024.pdf\r\n\r\neA=="
    )
    parsed = multipart([TEXT, part])
    assert parsed.attachments[0].filename == "año 2024.pdf"


def test_inline_image_with_content_id() -> None:
    html = 'Content-Type: text/html\r\n\r\n<p>Logo: <img src="cid:logo@x"></p>'
    image = (
        "Content-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n"
        "Content-ID: <logo@x>\r\n\r\niVBORw0KGgo="
    )
    parsed = multipart([html, image], subtype="related")
    (logo,) = parsed.attachments
    assert logo.inline
    assert logo.content_id == "logo@x"
    assert logo.content_type == "image/png"
    assert logo.filename == "adjunto.png"
    assert parsed.html is not None and 'src="cid:logo@x"' in parsed.html
    assert parsed.text == "Logo:"


def test_count_limit_drops_the_rest_with_reasons() -> None:
    parts = [TEXT] + [file_part(f"f{i}.bin", b"x") for i in range(5)]
    parsed = multipart(parts, limits=ParseLimits(max_attachments=3))
    assert [a.filename for a in parsed.attachments] == ["f0.bin", "f1.bin", "f2.bin"]
    assert len(parsed.dropped) == 2
    assert "f3.bin" in parsed.dropped[0] and "limit of 3 attachments" in parsed.dropped[0]
    assert parsed.text == "Adjunto la factura."  # the mail itself still parses


def test_per_file_limit() -> None:
    limits = ParseLimits(max_attachment_bytes=1000)
    parsed = multipart(
        [TEXT, file_part("grande.bin", b"x" * 5000), file_part("chico.bin", b"y" * 10)],
        limits=limits,
    )
    assert [a.filename for a in parsed.attachments] == ["chico.bin"]
    assert "grande.bin" in parsed.dropped[0] and "per-file limit of 1000" in parsed.dropped[0]
    assert "about 4" in parsed.dropped[0]  # judged from the encoded text, before decoding it


def test_per_file_limit_exact_edge_after_decoding() -> None:
    limits = ParseLimits(max_attachment_bytes=1000)
    parsed = multipart(
        [file_part("justo.bin", b"x" * 1000), file_part("pasado.bin", b"x" * 1001)],
        limits=limits,
    )
    assert [a.filename for a in parsed.attachments] == ["justo.bin"]
    assert len(parsed.dropped) == 1 and "pasado.bin" in parsed.dropped[0]


def test_total_limit() -> None:
    limits = ParseLimits(max_attachment_bytes=1000, max_total_attachment_bytes=2500)
    parts = [file_part(f"p{i}.bin", b"z" * 1000) for i in range(4)]
    parsed = multipart(parts, limits=limits)
    assert [a.filename for a in parsed.attachments] == ["p0.bin", "p1.bin"]
    assert len(parsed.dropped) == 2
    assert all("total limit of 2500" in reason for reason in parsed.dropped)


def test_forwarded_message_is_kept_as_an_eml_file() -> None:
    inner = (
        "Content-Type: message/rfc822\r\n\r\nSubject: Pedido 77\r\nFrom: b@example.com\r\n\r\nHola"
    )
    parsed = multipart([TEXT, inner])
    (eml,) = parsed.attachments
    assert eml.filename == "Pedido 77.eml"
    assert eml.content_type == "message/rfc822"
    assert b"Subject: Pedido 77" in eml.data and b"Hola" in eml.data


def test_named_inline_text_is_shown_and_kept() -> None:
    note = (
        'Content-Type: text/plain\r\nContent-Disposition: inline; filename="nota.txt"\r\n\r\nNota'
    )
    parsed = multipart([TEXT, note])
    assert parsed.text == "Adjunto la factura.\n\nNota"
    assert [a.filename for a in parsed.attachments] == ["nota.txt"]
