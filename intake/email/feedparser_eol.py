"""The stdlib mail parser's end-of-line search, made to look at the end only.

``email.feedparser`` trims the line break a part's payload ends with using
``NLCRE_eol.search(payload)``, a pattern anchored at the end of the string (``\\Z``) but
run as a search, which tries every position from the start. For the last part of every
multipart (usually the largest attachment) that is a scan of the whole decoded payload:
measured at a fifth of the parse time of the benchmark mail. A match can only begin at
one of the last two characters, so starting the same search there gives the same match
(``tests/email/test_feedparser_eol.py`` checks that on every kind of ending).

The pattern object is replaced in ``email.feedparser``'s namespace once, at import, in the
processes that parse mail; a Python whose feedparser has another pattern is left alone.
"""

from __future__ import annotations

import email.feedparser
import re

_STDLIB_PATTERN = r"(\r\n|\r|\n)\Z"


class EndOfStringSearch:
    """``pattern.search(s)`` for a pattern that can only match within the last two
    characters of ``s``."""

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.pattern = pattern

    def search(self, text: str) -> re.Match[str] | None:
        return self.pattern.search(text, max(0, len(text) - 2))


def install() -> bool:
    """Put the end-only search in place; False when the stdlib's pattern is not the one
    this was written for (then nothing changes)."""
    namespace = vars(email.feedparser)  # a private name: not in the type stubs
    current = namespace.get("NLCRE_eol")
    if isinstance(current, EndOfStringSearch):
        return True
    if not isinstance(current, re.Pattern) or current.pattern != _STDLIB_PATTERN:
        return False
    namespace["NLCRE_eol"] = EndOfStringSearch(current)
    return True


install()
