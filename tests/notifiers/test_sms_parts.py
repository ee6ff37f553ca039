"""The pieces SMS delivery is built from: parts counted per encoding (and stored on the
row when it is enqueued), E.164 numbers, provider signatures checked against the
providers' own published vectors, and Retry-After read both ways."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from notifiers.base import PermanentError
from notifiers.outbox import OutboundRequest, Outbox
from notifiers.sms_http import retry_after
from notifiers.sms_numbers import e164, recipient_number
from notifiers.sms_segments import is_gsm7, segments
from notifiers.sms_signatures import (
    twilio_signature,
    twilio_valid,
    vonage_signature,
    vonage_valid,
)
from notifiers.templates import TemplateRenderer


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("", 1),
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("€" * 80, 1),  # extension characters take two septets
        ("€" * 81, 2),
        ("a" * 152 + "€" + "a" * 152, 3),  # an escape pair is never split across parts
        ("á" * 70, 1),  # not GSM-7: UCS-2
        ("á" * 71, 2),
        ("á" * 134, 2),
        ("á" * 135, 3),
        ("a" * 159 + "😀", 3),  # one emoji makes the whole text UCS-2
        ("😀" * 35, 1),  # outside the BMP: two UTF-16 units each
        ("😀" * 36, 2),
        ("á" * 66 + "😀" + "á" * 66, 3),  # a surrogate pair is never split either
    ],
)
def test_segments(text: str, parts: int) -> None:
    assert segments(text) == parts


def test_gsm7_alphabet() -> None:
    assert is_gsm7("Ñandu ü ¿¡ @£$¥ èéùìòÇ ØøÅåÆæßÉ ΔΦΓΛΩΠΨΣΘΞ [] {} € ~ ^ | \\ \n")
    assert not is_gsm7("Ñandú")  # ú is not in the alphabet
    assert not is_gsm7("\x1b")  # ESC is part of the encoding, not text


def test_the_outbox_stores_the_parts_of_an_sms_as_sent(tmp_path: Path) -> None:
    (tmp_path / "es").mkdir()
    (tmp_path / "es" / "aviso_sms.txt.j2").write_text("{{ texto }}\n", encoding="utf-8")
    (tmp_path / "es" / "aviso_email.txt.j2").write_text("{{ texto }}\n", encoding="utf-8")
    outbox = Outbox(TemplateRenderer(tmp_path))
    now = datetime.now(UTC)

    def row_segments(channel: str, text: str) -> int | None:
        request = OutboundRequest(channel, f"aviso_{channel}", "es", "+5491155550123",
                                  {"texto": text})  # fmt: skip
        value: int | None = outbox.row(request, now)["segments"]
        return value

    # The renderer ends bodies with a line break; the count is of the text as sent.
    assert row_segments("sms", "a" * 160) == 1
    assert row_segments("sms", "a" * 161) == 2
    assert row_segments("sms", "Su número es CAS-000001 " * 3) == 2
    assert row_segments("email", "a" * 500) is None


def test_numbers_become_e164_in_the_default_region() -> None:
    assert e164("011 15-5555-0123", "AR") == "+5491155550123"
    assert e164("+34 612 345 678", "AR") == "+34612345678"
    assert e164("612 345 678", "es") == "+34612345678"
    assert e164("12", "AR") is None
    assert e164("no es un número", "AR") is None
    with pytest.raises(PermanentError, match="not a valid phone number"):
        recipient_number("12", "AR")


def test_twilio_signatures_match_twilios_published_vectors() -> None:
    # twilio-python's request validator tests (auth token "12345").
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = {"CallSid": "CA1234567890ABCDE", "Digits": "1234", "From": "+14158675309",
              "To": "+18005551212", "Caller": "+14158675309"}  # fmt: skip
    assert twilio_signature(url, params.items(), "12345") == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    repeated = [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234")]
    assert twilio_signature(url, repeated, "12345") == "IK+Dwps556ElfBT0I3Rgjkr1wJU="
    assert twilio_valid(url, params.items(), "12345", "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
    assert not twilio_valid(url, params.items(), "12345", "RSOYDt4T1cUTdK1PDd93/VVr8B8")
    assert not twilio_valid(url, params.items(), "12345", None)
    assert not twilio_valid(url, params.items(), "", "RSOYDt4T1cUTdK1PDd93/VVr8B8=")


def test_vonage_signatures() -> None:
    # vonage-python-sdk's signature test (md5hash, secret "secret").
    params = {"a": "1", "b": "2", "timestamp": "1461605396"}
    assert vonage_signature(params, "secret", "md5hash") == "6af838ef94998832dbfc29020b564830"
    assert vonage_valid({**params, "sig": "6AF838EF94998832DBFC29020B564830"}, "secret", "md5hash")
    assert not vonage_valid(params, "secret", "md5hash")  # no sig
    # HMAC methods key the hash with the secret; "&" and "=" in values become "_".
    tricky = {"text": "a=b&c", "timestamp": "1461605396"}
    signed = vonage_signature(tricky, "secret", "sha512")
    assert signed == vonage_signature({"text": "a_b_c", "timestamp": "1461605396"}, "secret",
                                      "sha512")  # fmt: skip
    assert len(signed) == 128 and vonage_valid({**tricky, "sig": signed}, "secret", "sha512")
    assert not vonage_valid({**tricky, "sig": signed}, "secret", "sha256")
    with pytest.raises(ValueError, match="unknown signature method"):
        vonage_signature(params, "secret", "crc32")


def test_retry_after_in_seconds_or_as_a_date() -> None:
    now = datetime(2024, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert retry_after("120", now) == 120
    assert retry_after("Mon, 01 Jan 2024 12:05:00 GMT", now) == 300
    assert retry_after("Mon, 01 Jan 2024 11:00:00 GMT", now) == 0
    assert retry_after("soon", now) is None
    assert retry_after(None, now) is None
