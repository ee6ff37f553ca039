"""A parser process for the tests (``python -m tests.email.hanging_parser``): the real one,
except that a mail with ``X-Test-Parse: hang`` never finishes parsing (what a mail that
sends the parser into a loop does) and one with ``X-Test-Parse: slow`` takes a second."""

from __future__ import annotations

import time

from intake.email import prepare
from intake.email.parse import ParsedEmail, ParseLimits
from plumbing.child_process import serve

MODULE = "tests.email.hanging_parser"
HANG = b"X-Test-Parse: hang\r\n"
SLOW = b"X-Test-Parse: slow\r\n"

_parse_email = prepare.parse_email


def parse_email(raw: bytes, limits: ParseLimits, own_domain: str) -> ParsedEmail:
    if HANG in raw:
        while True:
            time.sleep(60)
    if SLOW in raw:
        time.sleep(1)
    return _parse_email(raw, limits, own_domain)


if __name__ == "__main__":
    prepare.parse_email = parse_email  # what parse_and_store calls
    serve(prepare._Parser)
