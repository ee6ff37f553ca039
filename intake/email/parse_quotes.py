"""The reply itself: quoted history, attribution lines and signature stripped for display.

Only ``reply_text`` is stripped; ``text`` keeps everything, so nothing a heuristic removes
here is lost. Recognized, in English and Spanish:

- quoted lines starting with ">" (RFC 3676 §4.5 quote depth);
- attributions ("On … wrote:", "El … escribió:"), also wrapped over two lines;
- Outlook-style history: "-----Original Message-----" / "-----Mensaje original-----",
  forwarded-message separators, and the header block "From:/De:" followed by
  "Sent:/Enviado:/Date:/Fecha:" that Outlook puts above the quoted mail;
- the signature after the "-- " delimiter line (RFC 3676 §4.3; also "--", since many
  clients strip the trailing space) and a trailing "Sent from my …" line.
"""

from __future__ import annotations

import re

_ATTRIBUTION = re.compile(
    r"^\s*(?:On\s.{1,400}\swrote|El\s.{1,400}\sescribi[óo])\s*:\s*$", re.IGNORECASE
)
_ATTRIBUTION_START = re.compile(r"^\s*(?:On|El)\s", re.IGNORECASE)
_SEPARATOR = re.compile(
    r"^\s*-{2,}\s*(?:original message|mensaje original|forwarded message|"
    r"mensaje reenviado|message d'origine)\s*-{2,}\s*$"
    r"|^\s*(?:begin forwarded message|inicio del mensaje reenviado)\s*:\s*$",
    re.IGNORECASE,
)
_HEADER_FROM = re.compile(r"^\s*\*?(?:From|De)\s*:\*?\s", re.IGNORECASE)
_HEADER_NEXT = re.compile(
    r"^\s*\*?(?:Sent|Enviado(?: el)?|Date|Fecha|To|Para|Subject|Asunto)\s*:", re.IGNORECASE
)
_UNDERSCORES = re.compile(r"^\s*_{10,}\s*$")
_MOBILE_SIGNATURE = re.compile(
    r"^\s*(?:Sent from my|Enviado desde mi|Get Outlook for|Obtener Outlook para)\b",
    re.IGNORECASE,
)
_BLANK_RUNS = re.compile(r"\n{3,}")


def _is_quoted(line: str) -> bool:
    return line.lstrip().startswith(">")


def _attribution_length(lines: list[str], i: int) -> int:
    """How many lines an attribution starting at line ``i`` takes: 0, 1 or 2."""
    line = lines[i]
    if not _ATTRIBUTION_START.match(line):
        return 0
    if _ATTRIBUTION.match(line):
        return 1
    if i + 1 < len(lines) and _ATTRIBUTION.match(line.rstrip() + " " + lines[i + 1].strip()):
        return 2  # long attributions are wrapped by the client
    return 0


def _header_block_starts(lines: list[str], i: int) -> bool:
    if not _HEADER_FROM.match(lines[i]):
        return False
    following = [line for line in lines[i + 1 : i + 5] if line.strip()][:3]
    return any(_HEADER_NEXT.match(line) for line in following)


def _next_content(lines: list[str], i: int) -> str | None:
    return next((line for line in lines[i:] if line.strip()), None)


def strip_reply(text: str) -> str | None:
    """The new part of a reply, or None when nothing but quotes and signature remains."""
    lines = text.split("\n")
    kept: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if _SEPARATOR.match(line) or _header_block_starts(lines, i):
            if kept and _UNDERSCORES.match(kept[-1]):
                kept.pop()  # Outlook's rule above the header block
            break
        length = _attribution_length(lines, i)
        if length:
            following = _next_content(lines, i + length)
            if following is None or not _is_quoted(following):
                break  # the history follows unquoted: none of it is the reply
            i += length  # bottom or inline posting: replies may follow the quote
            continue
        if not _is_quoted(line):
            kept.append(line)
        i += 1
    for j, line in enumerate(kept):
        if line.rstrip("\r") in ("-- ", "--"):
            kept = kept[:j]
            break
    while kept and not kept[-1].strip():
        kept.pop()
    if kept and _MOBILE_SIGNATURE.match(kept[-1]):
        kept.pop()
    reply = _BLANK_RUNS.sub("\n\n", "\n".join(line.rstrip() for line in kept)).strip("\n")
    return reply if reply.strip() else None
