"""Three hot spots of the stdlib mail parser (``email.feedparser``), made cheaper.

They are put in ``email.feedparser``'s namespace by ``configure(True)``, which the parser
processes call when they start (``[intake] fast_mime_parser``, on by default; importing
this module changes nothing), and only when the stdlib code is the one this was written
for, so a Python whose feedparser differs is left alone. ``configure(False)`` puts the
stdlib's own back. ``tests/email/test_feedparser_fast.py`` checks that each gives the
stdlib's own answers; the parse tests run with them on, and with them off when
``VENTANILLA_TEST_FAST_MIME_PARSER=off``.

- **End-of-payload search.** The parser trims the line break a part's payload ends with
  using ``NLCRE_eol.search(payload)``, a pattern anchored at the end of the string
  (``\\Z``) but run as a search, which tries every position from the start. For the last
  part of every multipart (usually the largest attachment) that is a scan of the whole
  decoded payload: measured at a fifth of the parse time of the benchmark mail. A match
  can only begin at one of the last two characters, so starting the same search there
  gives the same match.

- **Boundary lines.** For every multipart the parser compiles a new regular expression:
  the boundary as a literal, then a fixed tail (``--``, blanks, a line break). Boundaries
  are unique per mail, so the ``re`` cache never helps, and the compile measured ~90 µs, a
  seventh of the parse of the benchmark mail. The parser sees instead an ``re`` whose
  ``compile`` recognizes that one pattern and answers with ``BoundaryLine``: the
  boundary checked as a prefix, then one tail pattern compiled once for all.

- **Line by line.** The parser reads every line of every part through its line buffer's
  ``__next__``, which calls ``readline``, which asks each enclosing multipart's boundary
  matcher whether the line ends the part: three to four Python calls per line, for the
  ~400 lines of base64 in a 30 KB attachment. ``LinesForFeedparser`` answers a line that
  cannot be a boundary (it does not start with ``--``, as every separator does) in one
  call, and leaves every other line, and any other kind of end-of-part test, to
  ``readline``. Measured at a fifth of the parse time of the benchmark mail.
"""

from __future__ import annotations

import email.feedparser
import re
from typing import Any

_STDLIB_EOL = r"(\r\n|\r|\n)\Z"
# What feedparser compiles per multipart: _BOUNDARY_HEAD + re.escape(separator) + _BOUNDARY_TAIL
_BOUNDARY_HEAD = "(?P<sep>"
_BOUNDARY_TAIL = r")(?P<end>--)?(?P<ws>[ \t]*)(?P<linesep>\r\n|\r|\n)?$"
_AFTER_SEPARATOR = re.compile(_BOUNDARY_TAIL[1:])
_ESCAPED_CHAR = re.compile(r"\\(.)", re.DOTALL)  # re.escape puts "\" before each special char
_COMMENT = re.compile(r"#[^\n]*")


class EndOfStringSearch:
    """``pattern.search(s)`` for a pattern that can only match within the last two
    characters of ``s``."""

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.pattern = pattern

    def search(self, text: str) -> re.Match[str] | None:
        return self.pattern.search(text, max(0, len(text) - 2))


class BoundaryLine:
    """``match(line)`` of feedparser's boundary pattern for one separator: the match of
    the tail, whose groups ``end``, ``ws`` and ``linesep`` are the ones feedparser reads."""

    __slots__ = ("_after", "separator")

    def __init__(self, separator: str) -> None:
        self.separator = separator
        self._after = len(separator)

    def match(self, line: str) -> re.Match[str] | None:
        if line.startswith(self.separator):
            return _AFTER_SEPARATOR.match(line, self._after)
        return None


class LinesForFeedparser(email.feedparser.BufferedSubFile):  # type: ignore[name-defined,misc]
    """feedparser's line buffer, with a short way through ``__next__`` while every
    end-of-part test in force is a ``BoundaryLine`` whose separator starts with ``--``."""

    def __init__(self) -> None:
        super().__init__()
        self._other_tests = 0  # end-of-part tests that may match a line not starting with --

    def push_eof_matcher(self, pred: Any) -> None:
        self._other_tests += not _dashed_boundary(pred)
        super().push_eof_matcher(pred)

    def pop_eof_matcher(self) -> Any:
        pred = super().pop_eof_matcher()
        self._other_tests -= not _dashed_boundary(pred)
        return pred

    def __next__(self) -> str:
        lines = self._lines
        if lines and not self._other_tests:
            line: str = lines[0]
            if line and not line.startswith("--"):  # no boundary: readline would return it
                return lines.popleft()  # type: ignore[no-any-return]
        line = self.readline()
        if line == "":
            raise StopIteration
        return line


def _dashed_boundary(pred: Any) -> bool:
    matcher = getattr(pred, "__self__", None)
    return isinstance(matcher, BoundaryLine) and matcher.separator.startswith("--")


class ReForFeedparser:
    """The ``re`` that feedparser sees: the real module, but for the boundary pattern."""

    def __getattr__(self, name: str) -> Any:
        return getattr(re, name)

    def compile(self, pattern: Any, flags: int = 0) -> Any:
        if (
            flags == 0
            and isinstance(pattern, str)
            and pattern.startswith(_BOUNDARY_HEAD)
            and pattern.endswith(_BOUNDARY_TAIL)
        ):
            escaped = pattern[len(_BOUNDARY_HEAD) : -len(_BOUNDARY_TAIL)]
            separator = _ESCAPED_CHAR.sub(r"\1", escaped)
            if re.escape(separator) == escaped:  # else not a plain escaped literal
                return BoundaryLine(separator)
        return re.compile(pattern, flags)


ACTIVE, OFF, UNSUPPORTED = "active", "off", "unsupported"


def configure(enabled: bool) -> str:
    """Install the replacements (``enabled``) or put the stdlib's own back; what is in
    force now: ``active``, ``off``, or ``unsupported`` (enabled, but this Python's
    feedparser is not the one they were written for)."""
    if not enabled:
        uninstall()
        return OFF
    return ACTIVE if install() else UNSUPPORTED


def active() -> bool:
    """Whether the parser uses the replacements now."""
    namespace = vars(email.feedparser)
    return (
        isinstance(namespace.get("NLCRE_eol"), EndOfStringSearch)
        and isinstance(namespace.get("re"), ReForFeedparser)
        and namespace.get("BufferedSubFile") is LinesForFeedparser
    )


def uninstall() -> None:
    """Put back whatever of the stdlib's objects ``install`` replaced."""
    namespace = vars(email.feedparser)
    eol = namespace.get("NLCRE_eol")
    if isinstance(eol, EndOfStringSearch):
        namespace["NLCRE_eol"] = eol.pattern
    if isinstance(namespace.get("re"), ReForFeedparser):
        namespace["re"] = re
    if namespace.get("BufferedSubFile") is LinesForFeedparser:
        namespace["BufferedSubFile"] = LinesForFeedparser.__base__


def install() -> bool:
    """Put all three in place; False (and nothing changed) when the stdlib's feedparser is
    not the one this was written for."""
    namespace = vars(email.feedparser)  # private names: not in the type stubs
    current_eol, current_re = namespace.get("NLCRE_eol"), namespace.get("re")
    if isinstance(current_eol, EndOfStringSearch) and isinstance(current_re, ReForFeedparser):
        return True
    if not isinstance(current_eol, re.Pattern) or current_eol.pattern != _STDLIB_EOL:
        return False
    if current_re is not re or not _compiles_boundaries_as_expected():
        return False
    lines = namespace.get("BufferedSubFile")
    if lines is not LinesForFeedparser.__base__ or not _reads_lines_as_expected():
        return False
    namespace["NLCRE_eol"] = EndOfStringSearch(current_eol)
    namespace["re"] = ReForFeedparser()
    namespace["BufferedSubFile"] = LinesForFeedparser
    return True


def _compact_source(function: Any) -> str | None:
    """The function's source without comments or whitespace; None when no source is
    shipped. (Comments are cut at any ``#``: the functions read here have none in strings.)"""
    import inspect

    try:
        source = inspect.getsource(function)
    except (OSError, TypeError):
        return None
    return "".join(_COMMENT.sub("", source).split())


def _compiles_boundaries_as_expected() -> bool:
    """Whether feedparser's source builds the boundary pattern from the pieces above."""
    compact = _compact_source(getattr(email.feedparser.FeedParser, "_parsegen"))  # noqa: B009
    if compact is None:  # cannot tell, so do not touch
        return False
    expected = "re.compile('" + _BOUNDARY_HEAD + "'+re.escape(separator)+r'" + _BOUNDARY_TAIL + "')"
    return "".join(expected.split()) in compact and compact.count("re.compile(") == 1


def _reads_lines_as_expected() -> bool:
    """Whether the line buffer keeps its lines and end-of-part tests where
    ``LinesForFeedparser`` looks, and ``__next__`` is ``readline`` until it answers ''."""
    buffer = LinesForFeedparser.__base__
    readline, step = _compact_source(buffer.readline), _compact_source(buffer.__next__)
    tests = "line=self._lines.popleft()forateofinreversed(self._eofstack):ifateof(line):"
    return (
        readline is not None
        and tests in readline
        and step == "def__next__(self):line=self.readline()ifline=='':raiseStopIterationreturnline"
    )
