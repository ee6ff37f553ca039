"""Loop and bounce detection: automatic-mail headers and delivery status notifications."""

from __future__ import annotations

import pytest

from intake.email.parse import ParsedEmail, ParseLimits, parse_email

OWN = "ventanilla.localdomain"


def parse(*headers: str, body: str = "Hola.\r\n", content_type: str | None = None) -> ParsedEmail:
    lines = ["From: Ana <ana@example.com>", "To: soporte@example.com", *headers]
    if not any(h.lower().startswith("message-id:") for h in headers):
        lines.append("Message-ID: <m1@mail.example.com>")
    if content_type:
        lines.append(f"Content-Type: {content_type}")
    raw = ("\r\n".join(lines) + "\r\n\r\n" + body).encode("utf-8")
    return parse_email(raw, ParseLimits(), OWN)


def test_an_ordinary_mail_is_not_automatic() -> None:
    parsed = parse("Subject: Ayuda")
    assert not parsed.auto_submitted
    assert parsed.auto_reason is None
    assert parse("Auto-Submitted: no").auto_submitted is False  # RFC 3834: "no" is human


@pytest.mark.parametrize(
    "header,reason",
    [
        ("Auto-Submitted: auto-replied", "Auto-Submitted: auto-replied"),
        (
            "Auto-Submitted: Auto-Generated; owner-email=x@example.com",
            "Auto-Submitted: auto-generated",
        ),
        ("Precedence: bulk", "Precedence: bulk"),
        ("Precedence: junk", "Precedence: junk"),
        ("Precedence: list", "Precedence: list"),
        ("X-Autoreply: yes", "X-Autoreply"),
        ("X-Autorespond: Vacation", "X-Autorespond"),
        ("X-Auto-Response-Suppress: All", "X-Auto-Response-Suppress"),
        ("X-Auto-Response-Suppress: OOF", "X-Auto-Response-Suppress"),
        ("List-Id: Clientes <clientes.lists.example.com>", "List-Id"),
        ("List-Unsubscribe: <mailto:leave@example.com>", "List-Unsubscribe"),
        ("Return-Path: <>", "empty Return-Path"),
        ("Return-Path: < >", "empty Return-Path"),
    ],
)
def test_automatic_headers(header: str, reason: str) -> None:
    parsed = parse(header)
    assert parsed.auto_submitted
    assert parsed.auto_reason == reason


def test_precedence_first_class_is_not_automatic() -> None:
    assert not parse("Precedence: first-class").auto_submitted


@pytest.mark.parametrize("sender", ["MAILER-DAEMON@mx.example.com", "postmaster@example.org"])
def test_mailer_daemon_and_postmaster_senders(sender: str) -> None:
    raw = f"From: {sender}\r\nMessage-ID: <b@x>\r\n\r\nUndeliverable\r\n".encode()
    parsed = parse_email(raw, ParseLimits(), OWN)
    assert parsed.auto_submitted
    assert parsed.auto_reason == f"sender {sender.split('@')[0].lower()}"


def test_our_own_message_id_coming_back_is_a_loop() -> None:
    parsed = parse(f"Message-ID: <0123456789abcdef01234567@{OWN}>")
    assert parsed.auto_submitted
    assert parsed.auto_reason == "own Message-ID"


def test_a_customer_reply_to_our_mail_is_not_automatic() -> None:
    # In-Reply-To naming one of our Message-IDs is how every customer reply threads.
    parsed = parse(f"In-Reply-To: <0123456789abcdef01234567@{OWN}>")
    assert not parsed.auto_submitted
    assert parsed.in_reply_to == (f"0123456789abcdef01234567@{OWN}",)


DSN = """--rep
Content-Type: text/plain; charset=us-ascii

This is the mail system. Your message could not be delivered.

--rep
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.com
Arrival-Date: Mon, 3 Jun 2024 10:00:00 +0200

Final-Recipient: rfc822; ana@example.com
Original-Recipient: rfc822;ana@example.com
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 user unknown

Final-Recipient: rfc822; luis@example.com
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 user unknown

Final-Recipient: rfc822; eva@example.com
Action: delayed
Status: 4.4.7
Diagnostic-Code: smtp; 451 4.4.7 try later

--rep
Content-Type: text/rfc822-headers

From: soporte@ventanilla.localdomain
To: ana@example.com
Subject: [CAS-000123] Recibimos su solicitud
Message-ID: <abc@ventanilla.localdomain>

--rep--
"""


def test_delivery_status_notification() -> None:
    parsed = parse(
        "Subject: Undelivered Mail Returned to Sender",
        "Message-ID: <dsn1@mx.example.com>",
        "In-Reply-To: <thread@example.com>",
        body=DSN.replace("\n", "\r\n"),
        content_type='multipart/report; report-type=delivery-status; boundary="rep"',
    )
    assert parsed.auto_submitted
    assert parsed.auto_reason == "delivery status notification"
    assert "abc@ventanilla.localdomain" in parsed.reports_on
    assert "thread@example.com" in parsed.reports_on  # the DSN's own threading headers
    assert parsed.report_error is not None
    assert "failed 5.1.1 smtp; 550 5.1.1 user unknown (ana@example.com, luis@example.com)" in (
        parsed.report_error
    )
    assert "delayed 4.4.7" in parsed.report_error
    assert "could not be delivered" in parsed.text  # the human-readable part is the body


def test_delay_only_report_names_no_failed_message() -> None:
    delayed = DSN.replace("Action: failed", "Action: delayed")
    parsed = parse(
        body=delayed,
        content_type='multipart/report; report-type=delivery-status; boundary="rep"',
    )
    assert parsed.auto_reason == "delivery status notification"
    assert parsed.reports_on == ()  # nothing was lost, so no notification is marked failed
    assert parsed.report_error is not None and parsed.report_error.startswith("delayed")


def test_dsn_with_the_whole_returned_message() -> None:
    body = (
        "--r\nContent-Type: text/plain\n\nFailed.\n"
        "--r\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx\n\n"
        "Final-Recipient: rfc822; x@example.com\nAction: failed\nStatus: 5.0.0\n\n"
        "--r\nContent-Type: message/rfc822\n\nMessage-ID: <orig@ventanilla.localdomain>\n"
        "Subject: hola\n\ncuerpo\n--r--\n"
    )
    parsed = parse(
        body=body, content_type="multipart/report; report-type=delivery-status; boundary=r"
    )
    assert parsed.reports_on == ("orig@ventanilla.localdomain",)
    assert parsed.report_error == "failed 5.0.0 (x@example.com)"


def test_read_receipt_is_automatic_but_no_bounce() -> None:
    body = (
        "--r\nContent-Type: text/plain\n\nDisplayed.\n"
        "--r\nContent-Type: message/disposition-notification\n\n"
        "Final-Recipient: rfc822; x@example.com\nDisposition: manual-action/MDN-sent-manually;"
        " displayed\n--r--\n"
    )
    parsed = parse(
        body=body, content_type="multipart/report; report-type=disposition-notification; boundary=r"
    )
    assert parsed.auto_reason == "disposition notification"
    assert parsed.reports_on == ()
