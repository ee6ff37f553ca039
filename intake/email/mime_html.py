"""HTML bodies: sanitized for display with nh3, turned into readable text with inscriptis.

The sanitized HTML is what the console may show; the text is what agents search, rules
match and quoting is stripped from. Both run on untrusted input and never raise.
"""

from __future__ import annotations

import html as html_lib
import re
from functools import cache
from typing import Any

import nh3


@cache
def _inscriptis() -> tuple[Any, Any]:
    # Imported on first use: inscriptis and lxml cost the daemon's main process ~5 MB,
    # and there mail is parsed in the parser processes, never in the event loop's.
    from inscriptis import get_text  # type: ignore[import-untyped]
    from inscriptis.model.config import ParserConfig  # type: ignore[import-untyped]

    return get_text, ParserConfig(display_links=False, display_images=False)


@cache
def _cleaner() -> nh3.Cleaner:
    """Ammonia's defaults plus `dir` (right-to-left scripts need it to render correctly) and
    `cid:` URLs, so inline images (RFC 2392) can be mapped to stored attachments later.
    Built on first use, once per process."""
    return nh3.Cleaner(
        attributes={**nh3.ALLOWED_ATTRIBUTES, "*": {"dir", "lang", "title"}},
        url_schemes=nh3.ALLOWED_URL_SCHEMES | {"cid"},
        clean_content_tags={"script", "style", "head", "title"},
    )


_TAG = re.compile(r"<[^>]*>")
_START_TAG = re.compile(r"<([a-zA-Z][a-zA-Z0-9]*)")
# Elements that never hold others, or close themselves when a sibling starts.
_VOID = frozenset(
    [
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "param",
        "source",
        "track",
        "wbr",
        "p",
        "li",
        "td",
        "th",
        "tr",
        "option",
        "dt",
        "dd",
    ]
)
MAX_DEPTH = 1000
# Bodies beyond this are cut before sanitizing: bounds the work a hostile mail can cause.
MAX_HTML_CHARS = 2_000_000
_WORD = re.compile(r"\w{2,}")
_BLANK_RUNS = re.compile(r"\n{3,}")


def _too_deep(markup: str) -> bool:
    """Whether elements nest so deep that parsing would take quadratic time.

    HTML tree builders check the stack of open elements for many tags; a hostile body of
    100,000 unclosed <div>s costs the sanitizer half a minute. Counting start and end tags
    bounds the depth; the exact count (void elements never nest) runs only when needed.
    """
    if markup.count("<") - 2 * markup.count("</") <= MAX_DEPTH:
        return False
    opened = sum(1 for m in _START_TAG.finditer(markup) if m.group(1).lower() not in _VOID)
    return opened - markup.count("</") > MAX_DEPTH


def _stripped(markup: str) -> str:
    return html_lib.unescape(_TAG.sub(" ", markup))


def sanitize_html(markup: str) -> str:
    """Markup safe to show: no scripts, styles, event handlers or javascript: links."""
    markup = markup[:MAX_HTML_CHARS]
    if _too_deep(markup):
        return text_as_html(tidy_text(_stripped(markup)))
    try:
        return str(_cleaner().clean(markup))
    except Exception:  # the sanitizer is native code: fail closed to escaped text
        return text_as_html(markup)


def text_as_html(text: str) -> str:
    """A plain text part placed among HTML parts (multipart/mixed), kept verbatim."""
    return "<pre>" + html_lib.escape(text) + "</pre>"


def tidy_text(text: str) -> str:
    """Lines trimmed (layout tables pad them with spaces) and blank runs folded to one."""
    lines = [line.strip() for line in text.replace("\r\n", "\n").split("\n")]
    return _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip()


def html_to_text(markup: str) -> str:
    """Readable text of an HTML body: block layout kept, tags, scripts and styles gone."""
    if not markup.strip():
        return ""
    try:
        get_text, config = _inscriptis()
        text = tidy_text(str(get_text(markup, config)))
    except Exception:  # lxml refuses some documents outright
        text = ""
    if not text:  # refused, or nested deeper than libxml2's 255 levels: plain tag stripping
        text = tidy_text(_stripped(markup))
    return text


def words(text: str, limit: int = 50_000) -> set[str]:
    """Distinct lower-cased words (two letters or more) of the first ``limit`` characters."""
    return set(_WORD.findall(text[:limit].lower()))


def html_words(sanitized: str) -> set[str]:
    """Words of already sanitized markup (well-formed, so a tag regex is reliable)."""
    return words(_stripped(sanitized))


def adds_to(plain: str, sanitized: str) -> bool:
    """Whether an HTML alternative says clearly more than its plain-text sibling.

    RFC 2046 §5.1.4 alternatives carry the same content, but some clients send an empty or
    stale text/plain beside the real HTML; then the HTML's text must not be lost.
    """
    theirs = html_words(sanitized)
    if not theirs:
        return False
    ours = words(plain)
    if not ours:
        return True
    missing = len(theirs - ours)
    return missing > 2 and missing > 0.3 * len(theirs)
