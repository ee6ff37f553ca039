"""IntakeSMTP's MAIL/RCPT address parsing gives aiosmtpd's own results, input for input."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from aiosmtpd.smtp import SMTP

from intake.email.smtp_protocol import IntakeSMTP

ARGUMENTS = [
    "",
    "<>",
    "<ana@example.org>",
    "<ana@example.org> SIZE=1000 BODY=8BITMIME",
    "ana@example.org",
    "ana@example.org SIZE=10",
    "  <ana@example.org>",
    "<Ana.Perez+soporte@sub.example.org>",
    '<"ana perez"@example.org>',
    "<@relay.example.org:ana@example.org>",
    "<ñandú@ejemplo.com.ar> SMTPUTF8",
    "<ana@[192.0.2.1]>",
    "<ana>",
    "<ana@>",
    "<@example.org>",
    "ana@@example.org",
    "<ana@example.org",
    "not an address at all",
    "<" + "a" * 70 + "@example.org>",
]


@pytest.mark.parametrize("local_part_limit", [0, 64])
@pytest.mark.parametrize("argument", ARGUMENTS)
def test_same_result_as_aiosmtpd(argument: str, local_part_limit: int) -> None:
    session = SimpleNamespace(local_part_limit=local_part_limit)
    assert IntakeSMTP._getaddr(session, argument) == SMTP._getaddr(session, argument)  # type: ignore[arg-type]
