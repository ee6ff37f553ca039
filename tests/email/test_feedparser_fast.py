"""The feedparser replacements give the stdlib's own answers (the end-only search on every
kind of ending, the boundary matcher on every kind of boundary line, whole parses on the
corpus and on generated mail); they are what the mail parser uses once installed, never
installed by an import, switched off and on by ``configure``, and a parser process
installs them or not as ``[intake] fast_mime_parser`` says, and the pool logs which."""

from __future__ import annotations

import email
import email.feedparser
import itertools
import logging
import random
import re
import subprocess
import sys
from collections.abc import Iterator
from email import policy
from email.message import Message
from pathlib import Path
from typing import Any

import pytest

from config.app import open_services
from intake.email import feedparser_fast
from intake.email.feedparser_fast import (
    BoundaryLine,
    EndOfStringSearch,
    LinesForFeedparser,
    ReForFeedparser,
)
from tests.conftest import make_settings
from tests.email.conftest import FAST
from tests.email.test_parse_corpus import corpus_files

REPO = Path(__file__).resolve().parents[2]

STDLIB = re.compile(r"(\r\n|\r|\n)\Z")
STDLIB_LINES: Any = LinesForFeedparser.__base__
# The names in feedparser's namespace that feedparser_fast replaces, as the stdlib has them
STDLIB_NAMESPACE = {"re": re, "NLCRE_eol": STDLIB, "BufferedSubFile": STDLIB_LINES}


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
    assert feedparser_fast.configure(True) == "active"
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
    assert feedparser_fast.configure(True) == "active"
    fast = list(shape(email.message_from_bytes(raw, policy=policy.default)))
    assert feedparser_fast.configure(False) == "off"
    stdlib = list(shape(email.message_from_bytes(raw, policy=policy.default)))
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
    feedparser_fast.configure(True)
    assert isinstance(vars(email.feedparser)["re"], ReForFeedparser)


def test_the_parser_reads_lines_through_the_short_way() -> None:
    feedparser_fast.configure(True)
    assert vars(email.feedparser)["BufferedSubFile"] is LinesForFeedparser
    assert isinstance(email.feedparser.FeedParser()._input, LinesForFeedparser)


def replay(buffer: Any, steps: list[tuple[str, Any]]) -> list[Any]:
    """What a line buffer answers to a sequence of the parser's calls."""
    seen: list[Any] = []
    for op, arg in steps:
        if op == "push":
            buffer.push(arg)
        elif op == "eof":
            buffer.push_eof_matcher(arg)
        elif op == "pop":
            buffer.pop_eof_matcher()
        elif op == "unread":
            buffer.unreadline(arg)
        elif op == "close":
            buffer.close()
        elif op == "readline":
            seen.append(buffer.readline())
        else:  # a for loop over the buffer, for at most `arg` lines
            seen.append(list(itertools.islice(buffer, arg)))
    return seen


def test_line_buffer_answers_like_the_stdlib_one() -> None:
    """Random calls in the parser's vocabulary: boundary tests (with and without the
    leading dashes), a blank-line test (message/delivery-status uses one), nested tests
    pushed and popped, partial lines, pushed-back lines, reads before and after close."""
    rng = random.Random(11)
    words = ["--b\n", "--b--\n", "--c\r\n", "--bx\n", "-b\n", "\n", "\r\n", "x\n", "ab", "--", "-"]
    words += ["QUJD" * 19 + "\r\n", "--b  \r", "plain text\r\n"]
    tests = [
        lambda: ReForFeedparser().compile(stdlib_boundary("--b").pattern).match,
        lambda: ReForFeedparser().compile(stdlib_boundary("--c").pattern).match,
        lambda: BoundaryLine("b").match,  # a separator without the dashes
        lambda: vars(email.feedparser)["NLCRE"].match,
    ]
    for _ in range(3000):
        steps: list[tuple[str, Any]] = []
        depth = 0
        for _ in range(rng.randint(1, 25)):
            roll = rng.random()
            if roll < 0.35:
                steps.append(("push", "".join(rng.choices(words, k=rng.randint(1, 6)))))
            elif roll < 0.5:
                steps.append(("eof", rng.choice(tests)()))
                depth += 1
            elif roll < 0.58 and depth:
                steps.append(("pop", None))
                depth -= 1
            elif roll < 0.63:
                steps.append(("unread", rng.choice([*words, ""])))
            elif roll < 0.66:
                steps.append(("close", None))
            elif roll < 0.8:
                steps.append(("readline", None))
            else:
                steps.append(("iterate", rng.randint(1, 8)))
        assert replay(LinesForFeedparser(), steps) == replay(STDLIB_LINES(), steps), steps


def stdlib_state(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """feedparser's namespace as the stdlib ships it (restored after the test)."""
    namespace = vars(email.feedparser)
    for name, value in STDLIB_NAMESPACE.items():
        monkeypatch.setitem(namespace, name, value)
    return namespace


def test_install_replaces_all_three_on_the_stdlib_it_was_written_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    namespace = stdlib_state(monkeypatch)
    assert feedparser_fast.install()
    assert isinstance(namespace["re"], ReForFeedparser)
    assert isinstance(namespace["NLCRE_eol"], EndOfStringSearch)
    assert namespace["BufferedSubFile"] is LinesForFeedparser


def test_install_leaves_a_different_line_buffer_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    namespace = stdlib_state(monkeypatch)

    def __next__(self: Any) -> str:  # e.g. a later Python that reads lines another way
        line: str = self.readline()
        if not line:
            raise StopIteration
        return line

    monkeypatch.setattr(STDLIB_LINES, "__next__", __next__)
    assert not feedparser_fast.install()
    assert namespace["re"] is re and namespace["BufferedSubFile"] is STDLIB_LINES


def test_install_reports_a_different_line_buffer_as_unsupported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stdlib_state(monkeypatch)
    monkeypatch.setattr(STDLIB_LINES, "__next__", lambda self: self.readline())
    assert feedparser_fast.configure(True) == "unsupported"
    assert not feedparser_fast.active()


def test_switching_off_puts_the_stdlibs_own_back() -> None:
    namespace = vars(email.feedparser)
    feedparser_fast.configure(True)
    assert feedparser_fast.active()
    assert feedparser_fast.configure(False) == "off" and not feedparser_fast.active()
    assert namespace["re"] is re and namespace["BufferedSubFile"] is STDLIB_LINES
    assert namespace["NLCRE_eol"] == STDLIB and type(namespace["NLCRE_eol"]) is re.Pattern
    assert feedparser_fast.configure(False) == "off"  # twice changes nothing
    assert namespace["re"] is re


def test_importing_the_parser_installs_nothing() -> None:
    probe = (
        "import email.feedparser as f, re, intake.email.parse, intake.email.prepare, "
        "intake.email.feedparser_fast; "
        "print(f.re is re, type(f.NLCRE_eol).__name__, f.BufferedSubFile.__module__)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["True", "Pattern", "email.feedparser"]


@pytest.mark.parametrize("enabled", [True, False])
async def test_the_parser_processes_honour_the_switch_and_the_pool_logs_it(
    tmp_path: Path, enabled: bool, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(
        tmp_path,
        f"sqlite+aiosqlite:///{tmp_path / 'v.db'}",
        VENTANILLA_INTAKE__FAST_MIME_PARSER=str(enabled).lower(),
        VENTANILLA_INTAKE__PARSE_WORKERS="2",
    )
    services = await open_services(settings)
    try:
        with caplog.at_level(logging.INFO, logger="intake.email.parser_pool"):
            await services.start_parser_pool()
        pool = services.parser_pool
        assert pool is not None
        # What each process finds in its own email.feedparser (not what it was asked).
        states = {await child.call(("fast_mime_parser", None)) for child in pool._children if child}
        prepared = await services.email.prepare_one(
            b"From: a@example.com\r\nMessage-ID: <s@example.com>\r\n"
            b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nuno\r\n--b--\r\n"
        )
    finally:
        await services.close()
    assert states == {"active" if enabled else "off"} and pool.fast_mime_parser in states
    said = [r.getMessage() for r in caplog.records if "fast feedparser" in r.getMessage()]
    assert said == [
        "MIME parser processes: fast feedparser "
        + ("active" if enabled else "off ([intake] fast_mime_parser = false)")
    ]
    assert isinstance(prepared, tuple) and prepared[0].text.strip() == "uno"


def test_the_email_tests_parse_as_the_environment_says(fast_mime_parser: str) -> None:
    """VENTANILLA_TEST_FAST_MIME_PARSER=off runs these tests on the stdlib's parser."""
    assert fast_mime_parser == ("active" if FAST else "off")
    assert feedparser_fast.active() is FAST
