"""The DATA payload read off the stream in a few large reads (RFC 5321 §4.1.1.4, §4.5.2).

aiosmtpd reads DATA one line at a time: an await, a check and a copy per line, some 500 of
them for a 36 KB mail, which measured as most of its server's CPU per message. Here the
end-of-data marker (CRLF "." CRLF) is searched for in whatever has arrived, the
dot-stuffing is undone with one replace, and aiosmtpd's limits still apply: more than the
size limit is discarded as it arrives and answered 552, a line longer than the line limit
is answered 500, both only after the end of data (RFC 5321 §4.2.5).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

# The marker as it follows the last line's own CRLF; the data starts as if after a CRLF,
# so a lone "." as the first line ends an empty message.
END = b"\r\n.\r\n"
_LAST_LINE = len(b".\r\n")


@dataclass(frozen=True, slots=True)
class DataPayload:
    content: bytes  # dot-stuffing undone; empty when a limit was exceeded
    too_big: bool = False  # more than the size limit
    too_long: bool = False  # a line longer than the line limit


def has_line_over(data: bytes, longest: int) -> bool:
    """Whether a line of ``data`` (lines end with CRLF; the last may not) is longer than
    ``longest`` octets. Jumps from line start to the last CRLF within reach: one search per
    ``longest`` octets, not one object per line as a split would make (~500 per mail)."""
    start, size = 0, len(data)
    while size - start > longest:
        last = data.rfind(b"\r\n", start, start + longest + 2)
        if last == -1:
            return True  # the line from ``start`` runs past ``longest`` octets
        start = last + 2  # every line that starts before here ends within reach
    return False


def pending_match(tail: bytes) -> int:
    """How many bytes at the end of ``tail`` could begin the end-of-data marker."""
    for size in range(len(END) - 1, 0, -1):
        if tail.endswith(END[:size]):
            return size
    return 0


async def read_data(
    reader: asyncio.StreamReader, size_limit: int | None, line_limit: int
) -> DataPayload:
    """Read up to and including the end-of-data marker. Raises IncompleteReadError when
    the stream ends first (the client went away: nothing to answer)."""
    pieces: list[bytes] = []
    size = 0  # bytes of data before the final ".\r\n", as SIZE counts them
    too_big = False
    tail = b"\r\n"
    while True:
        matched = pending_match(tail)
        if matched:
            # Part of the marker may already be read: the next few bytes decide. Fewer
            # than the rest of the marker cannot end the data, so this never over-reads.
            piece = await reader.readexactly(len(END) - matched)
        else:
            try:
                piece = await reader.readuntil(END)
            except asyncio.LimitOverrunError as exc:
                # No marker within the reader's limit (aiosmtpd sets it to the line length)
                # or the marker lies further on: take what surely precedes it and go on.
                piece = await reader.readexactly(exc.consumed)
        size += len(piece)
        if not too_big:
            if size_limit and size - _LAST_LINE > size_limit:
                too_big = True  # discarded from here on, but read to the end
                pieces.clear()
            else:
                pieces.append(piece)
        tail = (tail + piece[-len(END) :])[-len(END) :]
        if tail == END:
            break
    if too_big:
        return DataPayload(b"", too_big=True)
    stuffed = b"".join(pieces)[:-_LAST_LINE]
    if has_line_over(stuffed, line_limit - 2):
        return DataPayload(b"", too_long=True)
    # RFC 5321 §4.5.2: a line that begins with "." had one more prepended by the sender.
    content = stuffed.replace(b"\r\n.", b"\r\n")
    return DataPayload(content[1:] if stuffed.startswith(b".") else content)
