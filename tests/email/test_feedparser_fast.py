"""The feedparser replacements give the stdlib's own answers (the end-only search on every
kind of ending, the boundary matcher on every kind of boundary line, whole parses on the
corpus and on generated mail), and are what the mail parser uses once
intake.email.parse is imported."""

from __future__ import annotations

import email
import email.feedparser
import itertools
import random
import re
import sys
from collections.abc import Iterator
from email import policy
from email.message import Message
from pathlib import Path
from typing import Any

import pytest

import intake.email.parse  # noqa: F401  (installs the replacements)
from intake.email.feedparser_fast import BoundaryLine, EndOfStringSearch, ReForFeedparser
from tests.email.test_parse_corpus import corpus_files

REPO = Path(__file__).resolve().parents[2]

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


def stdlib_boundary(separator: str) -> re.Pattern[str]:
    """The pattern feedparser compiles for a boundary (email/feedparser.py, _parsegen)."""
    return re.compile(
        "(?P<sep>" + re.escape(separator) + r")(?P<end>--)?(?P<ws>[ \t]*)(?P<linesep>\r\n|\r|\n)?$"
    )


def seen(match: re.Match[str] | None) -> Any:
    return match and (match.group("end"), match.group("ws"), match.group("linesep"))


def test_boundary_line_matches_like_the_stdlib_pattern() -> None:
    # RFC 2046 bchars, including the ones re.escape escapes, and a few that are not bchars
    bchars = "abcXYZ019'()+_,-./:=? *$^[]{}|\\&~#"
    rng = random.Random(7)
    separators = ["--b", "--" + bchars, "--==_x.y+z?", "--a b", "--"]
    separators += ["--" + "".join(rng.choice(bchars) for _ in range(rng.randint(1, 70)))
                   for _ in range(200)]  # fmt: skip
    tails = ["", "--", " ", "\t \t", "-", "---", "x", " x", "--x", "-- ", "--\t"]
    ends = ["", "\n", "\r\n", "\r", "\n\n", "\r\r\n", "\n\r"]
    for separator in separators:
        fast = ReForFeedparser().compile(stdlib_boundary(separator).pattern)
        assert isinstance(fast, BoundaryLine) and fast.separator == separator
        lines = [separator[:-1], "", "x" + separator, separator.upper()]
        lines += [separator + t + e for t in tails for e in ends]
        for line in lines:
            assert seen(fast.match(line)) == seen(stdlib_boundary(separator).match(line)), (
                separator,
                line,
            )


def test_other_patterns_compile_as_usual() -> None:
    fake_re = ReForFeedparser()
    for pattern, flags in [
        (r"(\r\n|\r|\n)", 0),
        (stdlib_boundary("--b").pattern, re.IGNORECASE),  # flags: not feedparser's
        ("(?P<sep>" + "a|b" + r")(?P<end>--)?(?P<ws>[ \t]*)(?P<linesep>\r\n|\r|\n)?$", 0),
    ]:
        assert isinstance(fake_re.compile(pattern, flags), re.Pattern)
    assert fake_re.escape("a.b") == re.escape("a.b")  # the rest is the real module


def shape(message: Message) -> Iterator[Any]:
    """Everything the parser decides about a message's structure, part by part."""
    for part in message.walk():
        payload = part.get_payload() if not part.is_multipart() else None
        yield (
            part.get_content_type(),
            part.get_boundary(),
            part.preamble,
            part.epilogue,
            payload,
            [type(d).__name__ for d in part.defects],
        )


def parse_both(raw: bytes) -> tuple[list[Any], list[Any]]:
    namespace = vars(email.feedparser)
    fast = list(shape(email.message_from_bytes(raw, policy=policy.default)))
    saved = namespace["re"], namespace["NLCRE_eol"]
    namespace["re"], namespace["NLCRE_eol"] = re, re.compile(r"(\r\n|\r|\n)\Z")
    try:
        stdlib = list(shape(email.message_from_bytes(raw, policy=policy.default)))
    finally:
        namespace["re"], namespace["NLCRE_eol"] = saved
    return fast, stdlib


@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: p.name)
def test_corpus_parses_the_same_as_with_the_stdlib(path: Path) -> None:
    fast, stdlib = parse_both(path.read_bytes())
    assert fast == stdlib


def test_generated_mail_parses_the_same_as_with_the_stdlib() -> None:
    sys.path.insert(0, str(REPO / "bench"))
    try:
        from mailgen import generate
    finally:
        sys.path.remove(str(REPO / "bench"))
    nested = (
        b"Content-Type: multipart/mixed; boundary=out\r\n\r\npre\r\n--out\r\n"
        b'Content-Type: multipart/alternative; boundary="in (1)"\r\n\r\n--in (1)\r\n\r\n'
        b"uno\r\n--in (1)  \r\n\r\ndos\r\n--in (1)--\r\n--out\r\n\r\ntres\r\n"
        b"--out--\r\nepilogue\r\n"
    )
    unclosed = b"Content-Type: multipart/mixed; boundary=u\n\n--u\n\nuno\n--ux\n"
    for raw in [*generate(300, seed=3), nested, unclosed]:
        fast, stdlib = parse_both(raw)
        assert fast == stdlib


def test_the_parser_uses_the_boundary_matcher() -> None:
    assert isinstance(vars(email.feedparser)["re"], ReForFeedparser)
