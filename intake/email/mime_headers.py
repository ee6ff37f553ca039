"""Header text: charsets, RFC 2047 encoded words, address lists, Message-IDs and dates.

Every function here takes the raw header string as the compat32 parser keeps it (8-bit bytes
carried as surrogate escapes) and never raises: real mail declares charsets Python has never
heard of, splits multi-byte characters across encoded words and puts addresses where display
names belong, and a support inbox must still read it.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import hashlib
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from email.message import Message
from email.utils import parsedate_to_datetime
from functools import lru_cache

# Labels seen in the wild that Python does not know, or knows too narrowly: mail tagged
# gb2312 is routinely GBK, and WHATWG's Encoding Standard maps these labels the same way.
_CHARSET_ALIASES = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "ks_c_5601-1987": "cp949",
    "iso-8859-8-i": "iso-8859-8",
    "windows-874": "cp874",
    "x-sjis": "shift_jis",
    "x-mac-roman": "mac-roman",
    "ansi_x3.4-1968": "ascii",
    "unicode-1-1-utf-7": "utf-7",
    "x-user-defined": "latin-1",
}
# Codecs Python calls text encodings that no mail can mean; they would only misdecode.
_NOT_MAIL_CODECS = frozenset(
    {"idna", "punycode", "unicode-escape", "raw-unicode-escape", "undefined", "mbcs", "oem"}
)
_SINGLE_BYTE_FAMILY = frozenset({"ascii", "latin-1", "iso8859-1", "cp1252"})


@lru_cache(maxsize=512)
def codec_for(charset: str | None) -> str | None:
    """The Python codec for a MIME charset label, or None when it is unknown or unusable."""
    if not charset:
        return None
    name = charset.strip().strip("\"'").lower().split("*", 1)[0]  # RFC 2231 §5 language tag
    if name.startswith("3d"):  # charset=3Dutf-8: a quoted-printable encoder ran over a header
        name = name[2:]
    name = _CHARSET_ALIASES.get(name, name)
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError):
        return None
    if not getattr(info, "_is_text_encoding", True) or info.name in _NOT_MAIL_CODECS:
        return None
    return info.name


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Text from bytes in a declared charset; falls back instead of raising.

    Order: the declared charset strictly, then UTF-8 (labels are often wrong, UTF-8 is
    self-checking), then for a missing, unknown or single-byte label Windows-1252 and
    Latin-1 (which never fails); a declared multi-byte charset keeps its own decoding with
    replacement characters for the few bad bytes.
    """
    codec = codec_for(charset)
    for candidate in (codec, "utf-8"):
        if candidate is None:
            continue
        try:
            return data.decode(candidate)
        except (UnicodeError, LookupError, ValueError):
            continue
    if codec is None or codec in _SINGLE_BYTE_FAMILY:
        try:
            return data.decode("cp1252")
        except UnicodeError:
            return data.decode("latin-1")
    try:
        return data.decode(codec, "replace")
    except (UnicodeError, LookupError, ValueError):
        return data.decode("latin-1")


def clean_text(value: str) -> str:
    """Bytes the parser kept as surrogate escapes decoded (RFC 6532 UTF-8 headers, else
    Windows-1252), and NUL removed (PostgreSQL text cannot hold it)."""
    if not value.isascii():
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


def decode_header(raw: str) -> str:
    """A header value as readable text: unfolded, 8-bit bytes and encoded words decoded."""
    return clean_text(decode_words(clean_text(unfold(raw))))


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


def parse_addresses(raw: str | None) -> list[tuple[str, str]]:
    """(display name, lower-cased address) pairs of an address-list header.

    Hand-written rather than email.utils.getaddresses: a display name that is itself an
    address (``alice@example.com <bob@example.com>``), old ``addr (Name)`` comments, groups
    (RFC 5322 §3.4) and unquoted commas inside encoded words all occur in real mail, and the
    angle-bracket address must win in each case. An entry without an address has "" there.
    """
    if not raw:
        return []
    value = clean_text(unfold(raw))
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
