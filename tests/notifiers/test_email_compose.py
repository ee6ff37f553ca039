"""What the email composer puts on the wire, read back with the standard parser: encoded
names and subjects, threading headers, parts, attachment names, and the SMTPUTF8 path for
an internationalized mailbox."""

from __future__ import annotations

from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import pytest

from notifiers.base import FileRef, Outgoing, PermanentError
from notifiers.email_compose import compose


def outgoing(recipient: str = "ana@example.com", **kw: object) -> Outgoing:
    fields: dict[str, object] = {
        "notification_id": 7, "channel": "email", "provider": "email",
        "recipient": recipient, "subject": "[CAS-000123] Recibimos su consulta: Sin conexión",
        "text": "Hola Ana,\nRecibimos su consulta.\n", "html": "<p>Hola <b>Ana</b></p>",
        "headers": {"Message-ID": "<n7@soporte.example.com>", "In-Reply-To": "<a@cliente>",
                    "References": "<z@cliente> <a@cliente>", "Auto-Submitted": "auto-replied",
                    "X-Other": "not passed"},
        **kw,
    }  # fmt: skip
    return Outgoing(**fields)  # type: ignore[arg-type]


def parsed(data: bytes) -> EmailMessage:
    found = message_from_bytes(data, policy=default)
    assert isinstance(found, EmailMessage)
    return found


def test_headers_parts_and_attachments_read_back(tmp_path: Path) -> None:
    report = tmp_path / "f"
    report.write_bytes(b"%PDF-1.4 " + bytes(range(256)))
    files = (FileRef(report, "informe técnico.pdf", "application/pdf"),)
    composed = compose("Soporte Técnico <soporte@example.com>", "soporte.example.com",
                       outgoing(attachments=files))  # fmt: skip
    assert (composed.sender, composed.utf8) == ("soporte@example.com", False)
    assert composed.message_id == "n7@soporte.example.com"
    assert all(len(line) <= 998 for line in composed.data.split(b"\r\n"))
    mail = parsed(composed.data)
    assert mail["From"] == "Soporte Técnico <soporte@example.com>"
    assert mail["Subject"] == "[CAS-000123] Recibimos su consulta: Sin conexión"
    assert (mail["In-Reply-To"], mail["References"]) == ("<a@cliente>", "<z@cliente> <a@cliente>")
    assert mail["Auto-Submitted"] == "auto-replied" and mail["X-Other"] is None
    assert mail.get_body(("plain",)).get_content() == "Hola Ana,\nRecibimos su consulta.\n"
    assert "<b>Ana</b>" in mail.get_body(("html",)).get_content()
    [part] = mail.iter_attachments()
    assert part.get_filename() == "informe técnico.pdf"
    assert part.get_content() == report.read_bytes()


def test_a_message_id_is_made_when_none_is_given() -> None:
    composed = compose("soporte@example.com", "soporte.example.com",
                       outgoing(headers={}, html=None))  # fmt: skip
    assert composed.message_id.endswith("@soporte.example.com")
    mail = parsed(composed.data)
    assert mail["Message-ID"] == f"<{composed.message_id}>"
    assert mail.get_content_type() == "text/plain"


def test_an_internationalized_mailbox_needs_smtputf8() -> None:
    composed = compose("soporte@example.com", "x", outgoing("josé@correo.example"))
    assert composed.utf8 and parsed(composed.data)["To"] == "josé@correo.example"


def test_a_missing_attachment_is_a_permanent_failure(tmp_path: Path) -> None:
    gone = (FileRef(tmp_path / "nope", "a.txt", "text/plain"),)
    with pytest.raises(PermanentError, match="not in the attachment store"):
        compose("soporte@example.com", "x", outgoing(attachments=gone))
