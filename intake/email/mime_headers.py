"""Header text: RFC 2047 encoded words, address lists, Message-IDs and dates.

Every function here takes the raw header string as the compat32 parser keeps it (8-bit bytes
carried as surrogate escapes, which intake.email.mime_charsets reads) and never raises: real
mail declares charsets Python has never heard of, splits multi-byte characters across encoded
words and puts addresses where display names belong, and a support inbox must still read it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from email.message import Message
from email.utils import parsedate_to_datetime

from intake.email.mime_charsets import HeaderCharsets, decode_bytes


def clean_text(value: str, charsets: HeaderCharsets | None = None) -> str:
    """Bytes the parser kept as surrogate escapes decoded, and NUL removed (PostgreSQL text
    cannot hold it). Display text (names, subjects, file names) passes its message's
    ``charsets``, which read legacy 8-bit and ISO-2022 bytes; other values are read as
    RFC 6532 UTF-8, else Windows-1252."""
    if charsets is not None:
        value = charsets.text(value)
    elif not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            value = decode_bytes(value.encode("utf-8", "surrogateescape"), None)
    return value.replace("\x00", "") if "\x00" in value else value


def unfold(value: str) -> str:
    """RFC 5322 §2.2.3 unfolding: drop the line breaks, keep the whitespace after them."""
    return value.replace("\r", "").replace("\n", "")


_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([QqBb])\?([^?\s]*)\?=")


def _word_bytes(encoding: str, text: str) -> bytes | None:
    try:
        if encoding in "Bb":
            return base64.b64decode(text + "=" * (-len(text) % 4))
        return binascii.a2b_qp(text.encode("utf-8"), header=True)
    except (binascii.Error, ValueError):
        return None


def decode_words(value: str) -> str:
    """Decode RFC 2047 encoded words in an already unfolded header value.

    Whitespace between two adjacent encoded words is dropped (RFC 2047 §6.2), and adjacent
    words in the same charset are decoded together because mailers split multi-byte
    characters across them.
    """
    if "=?" not in value:
        return value
    out: list[str] = []
    run: bytearray = bytearray()
    run_charset: str | None = None
    pos = 0
    for match in _ENCODED_WORD.finditer(value):
        between = value[pos : match.start()]
        data = _word_bytes(match.group(2), match.group(3))
        if data is None:  # undecodable word: keep it as it was written
            if run:
                out.append(decode_bytes(bytes(run), run_charset))
                run, run_charset = bytearray(), None
            out.append(between + match.group(0))
            pos = match.end()
            continue
        charset = match.group(1).lower()
        adjacent = bool(run) and (not between or between.isspace())
        if adjacent and charset == run_charset:
            run += data
        else:
            if run:
                out.append(decode_bytes(bytes(run), run_charset))
            if not adjacent:
                out.append(between)
            run, run_charset = bytearray(data), charset
        pos = match.end()
    if run:
        out.append(decode_bytes(bytes(run), run_charset))
    out.append(value[pos:])
    return "".join(out)


def decode_header(raw: str, charsets: HeaderCharsets | None = None) -> str:
    """A header value as readable text: unfolded, 8-bit bytes and encoded words decoded."""
    return clean_text(decode_words(clean_text(unfold(raw), charsets)))


def one_line(value: str, limit: int) -> str:
    """Whitespace runs folded to one space, cut to ``limit`` characters."""
    return " ".join(value.split())[:limit]


class HeaderMap:
    """The header fields of one message part, looked up case-insensitively, raw values."""

    __slots__ = ("_fields",)

    def __init__(self, items: Iterable[tuple[str, object]]) -> None:
        fields: dict[str, list[str]] = {}
        for name, value in items:
            fields.setdefault(name.strip().lower(), []).append(str(value))
        self._fields = fields

    @classmethod
    def of(cls, part: Message) -> HeaderMap:
        return cls(part.raw_items())

    def __contains__(self, name: str) -> bool:
        return name in self._fields

    def __len__(self) -> int:
        return len(self._fields)

    def first(self, name: str) -> str | None:
        values = self._fields.get(name)
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        return self._fields.get(name, [])


# --- addresses -------------------------------------------------------------------------


def _split_top_level(value: str, separators: str) -> list[str]:
    """Split on separators outside quoted strings, comments and angle brackets."""
    if not any(ch in value for ch in '"(\\') and "<@" not in value:  # the usual case
        for separator in separators[1:]:
            value = value.replace(separator, separators[0])
        return value.split(separators[0])
    items: list[str] = []
    start = 0
    quoted = escaped = False
    comment = angle = 0
    for i, ch in enumerate(value):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif quoted:
            quoted = ch != '"'
        elif ch == '"':
            quoted = True
        elif ch == "(":
            comment += 1
        elif ch == ")" and comment:
            comment -= 1
        elif comment:
            continue
        elif ch == "<":
            angle += 1
        elif ch == ">" and angle:
            angle -= 1
        elif ch in separators and not angle:
            items.append(value[start:i])
            start = i + 1
    items.append(value[start:])
    return items


def _strip_comments(value: str) -> tuple[str, str]:
    """(value with RFC 5322 comments replaced by a space, the first non-empty comment)."""
    if "(" not in value:
        return value, ""
    out: list[str] = []
    comments: list[str] = []
    current: list[str] = []
    depth = 0
    quoted = escaped = False
    for ch in value:
        if escaped:
            (current if depth else out).append(ch)
            escaped = False
        elif ch == "\\" and (quoted or depth):
            escaped = True
            if not depth:
                out.append(ch)  # _unquote resolves escapes inside quoted strings
        elif depth:
            if ch == ")":
                depth -= 1
                if not depth:
                    comments.append("".join(current))
                    current = []
                    out.append(" ")
                    continue
            elif ch == "(":
                depth += 1
            current.append(ch)
        elif ch == "(" and not quoted:
            depth = 1
        else:
            quoted = quoted != (ch == '"')
            out.append(ch)
    comments.append("".join(current))  # an unclosed comment still names someone
    return "".join(out), next((c.strip() for c in comments if c.strip()), "")


def _unquote(name: str) -> str:
    name = name.strip()
    if len(name) >= 2 and name[0] == name[-1] == '"':
        name = re.sub(r"\\(.)", r"\1", name[1:-1])
    return name.strip()


def _address_spec(value: str) -> str:
    spec = "".join(value.split()).strip("<>")
    if ":" in spec and spec.startswith("@"):  # obsolete source route, RFC 5322 §4.4
        spec = spec.rsplit(":", 1)[1]
    return spec.lower() if "@" in spec and "<" not in spec and ">" not in spec else ""


def parse_addresses(
    raw: str | None, charsets: HeaderCharsets | None = None
) -> list[tuple[str, str]]:
    """(display name, lower-cased address) pairs of an address-list header.

    Hand-written rather than email.utils.getaddresses: a display name that is itself an
    address (``alice@example.com <bob@example.com>``), old ``addr (Name)`` comments, groups
    (RFC 5322 §3.4) and unquoted commas inside encoded words all occur in real mail, and the
    angle-bracket address must win in each case. An entry without an address has "" there.
    """
    if not raw:
        return []
    # Raw bytes are read before the value is split: a Shift_JIS or Big5 character may
    # carry a backslash or quote byte inside it.
    value = clean_text(unfold(raw), charsets)
    result: list[tuple[str, str]] = []
    for item in _split_top_level(value, ",;"):
        head = _split_top_level(item, ":")
        if len(head) > 1 and "@" not in head[0] and "<" not in head[0]:
            item = ":".join(head[1:])  # "group name: a@b, c@d;" keeps the members
        text, comment = _strip_comments(item)
        if not text.strip() and not comment:
            continue
        if "<" in text:
            before, _, rest = text.rpartition("<")
            email = _address_spec(rest.split(">", 1)[0])
            name = _unquote(before)
        else:
            email = _address_spec(text)
            name = "" if email else _unquote(text)
        name = name or comment
        result.append((clean_text(decode_words(name)).strip(), email))
    return result


def address_list(raws: Iterable[str]) -> tuple[str, ...]:
    """Every address in these header values, lower-cased, in order, without repeats."""
    seen: dict[str, None] = {}
    for raw in raws:
        for _, email in parse_addresses(raw):
            if email:
                seen.setdefault(email, None)
    return tuple(seen)


# --- Message-IDs and dates -------------------------------------------------------------

_ANGLE_ID = re.compile(r"<([^<>]*)>")
# Ids are external keys in indexed columns; a longer one is stored by its hash, computed the
# same way wherever it appears so a reply still finds the message it names.
MAX_ID_LENGTH = 250


def normalize_id(value: str) -> str:
    ident = "".join(clean_text(value).split())
    if len(ident) > MAX_ID_LENGTH:
        return "sha256:" + hashlib.sha256(ident.encode("utf-8", "replace")).hexdigest()
    return ident


def message_ids(raw: str | None) -> list[str]:
    """The ids in a Message-ID, In-Reply-To or References value, without angle brackets."""
    if not raw:
        return []
    value = unfold(raw)
    found = _ANGLE_ID.findall(value)
    if not found:  # brackets forgotten: take what looks like an id
        found = [word for word in _strip_comments(value)[0].split() if "@" in word]
    return [ident for ident in (normalize_id(f) for f in found) if ident]


def parse_date(raw: str | None) -> datetime | None:
    """The Date header as an aware datetime, or None when it cannot be read."""
    if not raw:
        return None
    try:
        parsed = parsedate_to_datetime(clean_text(unfold(raw)).strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:  # "-0000": UTC, local zone unknown (RFC 5322 §3.3)
        parsed = parsed.replace(tzinfo=UTC)
    return parsed
