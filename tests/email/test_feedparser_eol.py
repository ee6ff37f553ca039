"""The end-only search gives the stdlib pattern's own answer on every kind of ending, and
is what the mail parser uses once intake.email.parse is imported."""

from __future__ import annotations

import email.feedparser
import itertools
import re

import intake.email.parse  # noqa: F401  (installs the end-only search)
from intake.email.feedparser_eol import EndOfStringSearch

STDLIB = re.compile(r"(\r\n|\r|\n)\Z")


def test_same_match_as_the_full_search_on_every_ending() -> None:
    fast = EndOfStringSearch(STDLIB)
    alphabet = ["\r", "\n", "x", "\r\n"]
    texts = [""]
    for size in range(1, 5):
        texts += ["".join(p) for p in itertools.product(alphabet, repeat=size)]
    texts += ["y" * 100_000 + ending for ending in ("", "\r\n", "\n", "\r", "\n\r", "\r\n\r\n")]
    for text in texts:
        full, end_only = STDLIB.search(text), fast.search(text)
        assert (full and (full.span(), full.group(0))) == (
            end_only and (end_only.span(), end_only.group(0))
        ), repr(text[-6:])


def test_the_parser_uses_it() -> None:
    assert isinstance(vars(email.feedparser)["NLCRE_eol"], EndOfStringSearch)
    message = email.message_from_string(
        "Content-Type: multipart/mixed; boundary=b\n\n--b\n\nuno\n\n--b\n\ndos\r\n--b--\n"
    )
    first, second = message.get_payload()
    assert (first.get_payload(), second.get_payload()) == ("uno\n", "dos")
