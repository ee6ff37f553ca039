"""Two hot spots of the stdlib mail parser (``email.feedparser``), made cheaper.

Both are replaced in ``email.feedparser``'s namespace once, at import, in every process
that parses mail; each only when the stdlib code is the one this was written for, so a
Python whose feedparser differs is left alone. ``tests/email/test_feedparser_fast.py``
checks that each gives the stdlib's own answers.

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


def install() -> bool:
    """Put both in place; False (and nothing changed) when the stdlib's feedparser is not
    the one this was written for."""
    namespace = vars(email.feedparser)  # private names: not in the type stubs
    current_eol, current_re = namespace.get("NLCRE_eol"), namespace.get("re")
    if isinstance(current_eol, EndOfStringSearch) and isinstance(current_re, ReForFeedparser):
        return True
    if not isinstance(current_eol, re.Pattern) or current_eol.pattern != _STDLIB_EOL:
        return False
    if current_re is not re or not _compiles_boundaries_as_expected():
        return False
    namespace["NLCRE_eol"] = EndOfStringSearch(current_eol)
    namespace["re"] = ReForFeedparser()
    return True


def _compiles_boundaries_as_expected() -> bool:
    """Whether feedparser's source builds the boundary pattern from the pieces above."""
    import inspect

    try:
        source = inspect.getsource(getattr(email.feedparser.FeedParser, "_parsegen"))  # noqa: B009
    except (OSError, TypeError):  # no source shipped: cannot tell, so do not touch
        return False
    compact = "".join(source.split())
    expected = "re.compile('" + _BOUNDARY_HEAD + "'+re.escape(separator)+r'" + _BOUNDARY_TAIL + "')"
    return "".join(expected.split()) in compact and compact.count("re.compile(") == 1


install()
