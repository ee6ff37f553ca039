"""IntakeSMTP's MAIL/RCPT address parsing gives aiosmtpd's own results, input for input."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest
from aiosmtpd.smtp import SMTP

from intake.email import smtp_protocol
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


def test_plain_paths_read_by_pattern_as_the_stdlib_reads_them() -> None:
    """Random MAIL/RCPT arguments built from the characters that matter (atext, dots,
    angle brackets, blanks, comments, quotes, non-ASCII): the same answer either way."""
    rng = random.Random(5)
    atoms = ["ana", "b", "x-y", "a+b", "o'k", "_", "#", "ñ", '"q r"', "(c)", ""]
    glue = [".", "..", "@", "@@", "", " "]
    tails = ["", " ", "  ", "\t", " SIZE=10", "  BODY=8BITMIME SIZE=2", " (c) SIZE=1", "x", " \n"]
    tails += ["(c)", "\t\u00a0x", " \x0b(c)", "\n", " a (b)"]
    for _ in range(3000):
        local = rng.choice(glue[:1] * 3 + glue).join(rng.choices(atoms, k=rng.randint(1, 3)))
        domain = ".".join(rng.choices(atoms, k=rng.randint(1, 3)))
        argument = f"<{local}@{domain}>{rng.choice(tails)}"
        if rng.random() < 0.1:
            argument = rng.choice([" ", "<", ""]) + argument[1:]
        assert smtp_protocol.parse_path(argument) == smtp_protocol.parse_path_fully(argument), (
            argument
        )


def test_plain_paths_skip_the_stdlib_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(_value: str) -> None:
        raise AssertionError("the stdlib parser was called")

    monkeypatch.setattr(smtp_protocol, "get_angle_addr", refuse)
    smtp_protocol.parse_path.cache_clear()
    try:
        assert smtp_protocol.parse_path("<Ana.Perez+x@sub.example.org> SIZE=9") == (
            "Ana.Perez+x@sub.example.org",
            "SIZE=9",
        )
    finally:
        smtp_protocol.parse_path.cache_clear()
