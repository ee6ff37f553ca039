"""Charsets: MIME labels to Python codecs, bytes to text, and raw 8-bit header bytes read.

Header fields are ASCII with other text in RFC 2047 encoded words (RFC 5322 §2.2), or UTF-8
as is (RFC 6532). Legacy mailers, and much bulk mail, still write GB2312, Shift_JIS, KOI8-R
or a Windows code page straight into Subject, From and attachment names, and ISO-2022-JP
(7-bit, but in escape sequences) likewise. ``HeaderCharsets`` reads such bytes the way a
person would: valid UTF-8 as UTF-8, else in a charset the message declares somewhere else,
else in the charset a detector finds in all of its undecodable header bytes together.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from email.message import Message
from functools import lru_cache

# Labels seen in the wild that Python does not know, or knows too narrowly: mail tagged
# gb2312 is routinely GBK, mail tagged shift_jis or euc-kr carries the Windows extensions
# (Windows-31J, Windows-949), and WHATWG's Encoding Standard maps these labels the same way.
_CHARSET_ALIASES = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "x-sjis": "cp932",
    "sjis": "cp932",
    "euc-kr": "cp949",
    "ks_c_5601-1987": "cp949",
    "iso-8859-8-i": "iso-8859-8",
    "windows-874": "cp874",
    "x-mac-roman": "mac-roman",
    "x-mac-cyrillic": "mac-cyrillic",
    "ansi_x3.4-1968": "ascii",
    "unicode-1-1-utf-7": "utf-7",
    "x-user-defined": "latin-1",
}
# Codecs Python calls text encodings that no mail can mean; they would only misdecode.
_NOT_MAIL_CODECS = frozenset(
    {"idna", "punycode", "unicode-escape", "raw-unicode-escape", "undefined", "mbcs", "oem"}
)
_SINGLE_BYTE_FAMILY = frozenset({"ascii", "latin-1", "iso8859-1", "cp1252"})
# Charsets in which a character takes more than one byte: reading bytes without an error in
# one of them says something. Any byte string reads in a single-byte charset.
_MULTI_BYTE = frozenset(
    {
        "gb18030", "gbk", "gb2312", "big5", "big5hkscs", "cp950", "cp932", "shift_jis",
        "shift_jis_2004", "shift_jisx0213", "euc_jp", "euc_jis_2004", "euc_jisx0213",
        "euc_kr", "cp949", "johab",
    }
)  # fmt: skip
# ISO-2022 text is 7-bit, its escape sequences name the character sets (RFC 1468, RFC 1554,
# RFC 1557); these codecs read the JIS, GB and KS sets those sequences designate.
_ISO_2022 = ("iso2022_jp_2", "iso2022_jp_ext", "iso2022_jp_3", "iso2022_kr")
_NOT_TEXT = frozenset({"Cc", "Cs", "Co", "Cn"})  # controls, surrogates, private use, unassigned
_WORD_CHARSET = re.compile(r"=\?([^?\s]+)\?[QqBb]\?")  # RFC 2047 §2
_PARAM_CHARSET = re.compile(r"\*(?:\d+\*)?=\s*\"?([\w.:-]+)'")  # RFC 2231 §4: name*=charset'
_KANA = re.compile("[\u3041-\u30ff]")  # hiragana and katakana
_ADDRESS_DOMAIN = re.compile(r"@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)")
_COUNTRY_LABEL = re.compile(r"[a-z]{2}|xn--[a-z0-9-]{1,59}")
_SENDER_FIELDS = ("from", "sender", "reply-to", "return-path")
MAX_SAMPLE = 16_384  # bytes of header text handed to the detector


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


def read_as(data: bytes, codec: str) -> str | None:
    """``data`` in ``codec`` when every byte decodes to a character text can hold (no
    controls, private-use or unassigned code points beyond ASCII), else None."""
    try:
        text = data.decode(codec)
    except (UnicodeError, LookupError, ValueError):
        return None
    if any(ch > "\x7f" and unicodedata.category(ch) in _NOT_TEXT for ch in text):
        return None  # e.g. Shift_JIS lead bytes read as Latin-1 are C1 controls
    return text


def _undecoded(value: str) -> bool:
    """Whether a header value still holds raw bytes (the parser's surrogate escapes)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


class HeaderCharsets:
    """How one message's raw 8-bit header bytes are read.

    Valid UTF-8 is UTF-8 (RFC 6532). Otherwise the charsets the message declares are tried
    in turn: its parts' Content-Type charsets, then those of its RFC 2047 encoded words and
    RFC 2231 parameters; a mailer that writes bytes raw in one header uses the charset it
    labels elsewhere. A multi-byte charset that reads the bytes cleanly is taken at once; a
    single-byte one reads anything, so a detector's multi-byte answer overrules it. With
    nothing declared, the detector (Mozilla's chardetng, made for short legacy text) reads
    all the message's undecodable header bytes together, with the sender's country-code
    domain as a hint, as browsers use a page's. The message is examined only when a field
    holds such bytes, so mail with ASCII or UTF-8 headers costs nothing more.
    """

    __slots__ = ("_declared", "_detected", "_message")

    def __init__(self, message: Message) -> None:
        self._message = message
        self._declared: tuple[str, ...] | None = None
        self._detected: tuple[str | None] | None = None  # (codec,) once worked out

    def text(self, value: str) -> str:
        """A raw header value (8-bit bytes as surrogate escapes) as text."""
        if value.isascii():
            if "\x1b" in value:  # ISO-2022 escape sequences
                return _read_iso_2022(value.encode("ascii")) or value
            return value
        if not _undecoded(value):
            return value
        return self.read(value.encode("utf-8", "surrogateescape"))

    def read(self, data: bytes) -> str:
        """Header bytes as text: UTF-8, a declared charset, a detected one, Windows-1252."""
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            pass
        for codec in self.declared():
            text = read_as(data, codec)
            if text is None:
                continue
            if codec not in _MULTI_BYTE:
                detected = self.detected()
                if detected in _MULTI_BYTE:
                    text = read_as(data, detected) or text
            return text
        detected = self.detected()
        text = read_as(data, detected) if detected else None
        return text if text is not None else decode_bytes(data, None)

    def declared(self) -> tuple[str, ...]:
        """The codecs of the charsets this message names, nearest the top first, without
        ASCII and UTF-8 (which are tried before any of them)."""
        if self._declared is None:
            self._declared = _declared_codecs(self._message)
        return self._declared

    def detected(self) -> str | None:
        """The codec the detector finds for the message's undecodable header bytes."""
        if self._detected is None:
            self._detected = (_detect(self._message),)
        return self._detected[0]


def _parts(message: Message) -> list[Message]:
    try:
        return list(message.walk())
    except Exception:  # a structure the walk cannot follow: the top part still counts
        return [message]


def _declared_codecs(message: Message) -> tuple[str, ...]:
    parts = _parts(message)
    labels: list[str | None] = []
    for part in parts:
        try:
            labels.append(part.get_content_charset())
        except Exception:
            continue
    for part in parts:
        for _, value in part.raw_items():
            text = str(value)
            if "=?" in text:
                labels += _WORD_CHARSET.findall(text)
            if "*=" in text:
                labels += _PARAM_CHARSET.findall(text)
    found = dict.fromkeys(codec_for(label) for label in labels)
    return tuple(c for c in found if c is not None and c not in ("ascii", "utf-8"))


def _detect(message: Message) -> str | None:
    import chardetng_py  # only mail that needs it pays for loading the detector

    sample = bytearray()
    for part in _parts(message):
        for _, value in part.raw_items():
            text = str(value)
            if text.isascii() or not _undecoded(text):
                continue
            data = text.encode("utf-8", "surrogateescape")
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:  # valid UTF-8 says nothing about the legacy charset
                sample += data + b"\n"
        if len(sample) >= MAX_SAMPLE:
            break
    if not sample:
        return None
    data = bytes(sample[:MAX_SAMPLE])
    try:
        guess = codec_for(str(chardetng_py.detect(data, tld=_sender_country(message))))
    except Exception:
        return None
    if guess == "euc_jp":
        # GB2312 and EUC-JP share their byte ranges, and a few Chinese characters (a name,
        # a short subject) read as valid kanji, while Japanese text is rarely without kana.
        # The detector was made for web pages; in mail raw 8-bit GB2312 headers are common
        # and raw EUC-JP ones rare (Japanese mail is ISO-2022-JP, RFC 1468).
        japanese = read_as(data, guess) or ""
        if not _KANA.search(japanese) and read_as(data, "gb18030") is not None:
            return "gb18030"
    return guess


def _sender_country(message: Message) -> bytes | None:
    """The country-code top-level domain of the sender's address, if it has one: a strong
    hint between legacy charsets that read the same bytes (GBK or EUC-JP, KOI8-R or
    Windows-1251). A generic domain (.com) says nothing."""
    fields = [(key.lower(), str(value)) for key, value in message.raw_items()]
    for name in _SENDER_FIELDS:
        for value in (value for key, value in fields if key == name):
            for domain in _ADDRESS_DOMAIN.findall(value):
                label: str = domain.rsplit(".", 1)[-1].lower()
                if _COUNTRY_LABEL.fullmatch(label):
                    return label.encode("ascii")
    return None


def _read_iso_2022(data: bytes) -> str | None:
    for codec in _ISO_2022:
        text = read_as(data, codec)
        if text is not None:
            return text
    return None
