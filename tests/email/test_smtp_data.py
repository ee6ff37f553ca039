"""read_data: the DATA payload in large reads, checked against a line-at-a-time reading of
the same bytes (RFC 5321 §4.5.2) under every way the bytes can arrive, and on loopback
against the real server: dot-stuffing, commands pipelined after the end, long lines."""

from __future__ import annotations

import asyncio
import itertools
import random

import pytest

from config.app import Services
from intake.email.smtp_data import END, DataPayload, has_line_over, pending_match, read_data
from storage.models import Inbound
from tests.email.test_smtp_support import GOOD, Dialog, mail, running

LINE_LIMIT = 1001


def by_lines(stream: bytes, size_limit: int | None) -> tuple[DataPayload, bytes]:
    """The reference: lines up to CRLF, a lone "." ends, a leading "." is dropped; and
    what follows the end, left for the next command."""
    lines: list[bytes] = []
    at = 0
    while True:
        end = stream.index(b"\r\n", at) + 2
        line, at = stream[at:end], end
        if line == b".\r\n":
            break
        lines.append(line)
    size = sum(map(len, lines))
    if size_limit and size > size_limit:
        return DataPayload(b"", too_big=True), stream[at:]
    if any(len(line) > LINE_LIMIT for line in lines):
        return DataPayload(b"", too_long=True), stream[at:]
    return DataPayload(b"".join(line[1:] if line[:1] == b"." else line for line in lines)), (
        stream[at:]
    )


async def feed_and_read(
    stream: bytes, cuts: list[int], size_limit: int | None, reader_limit: int
) -> tuple[DataPayload, bytes]:
    """Feed ``stream`` in pieces cut at ``cuts`` while read_data runs; what it returns
    and what it left in the reader."""
    reader = asyncio.StreamReader(limit=reader_limit)
    reading = asyncio.create_task(read_data(reader, size_limit, LINE_LIMIT))
    edges = [0, *sorted(cuts), len(stream)]
    for start, stop in itertools.pairwise(edges):
        reader.feed_data(stream[start:stop])
        await asyncio.sleep(0)  # let the reader look at each piece on its own
    reader.feed_eof()
    payload = await reading
    return payload, await reader.read()


def random_data(rng: random.Random) -> bytes:
    """Lines made to stress the marker: dots alone, leading, trailing, doubled; empty
    lines; CR and LF on their own inside lines; sometimes a line over the limit."""
    pieces = [b".", b"..", b"", b"a", b"\r", b"\n", b".\r", b"x.", b"\n.", b"hola. ", b"=2E"]
    lines = []
    for _ in range(rng.randrange(0, 12)):
        line = b"".join(rng.choice(pieces) for _ in range(rng.randrange(0, 5)))
        if rng.random() < 0.05:
            line += b"y" * rng.randrange(990, 1100)
        lines.append(line.replace(b"\r\n", b"\r"))  # a CRLF inside would split the line
    stuffed = b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n" for line in lines)
    return stuffed + b".\r\n"


async def test_matches_line_by_line_reading_however_the_bytes_arrive() -> None:
    rng = random.Random(5321)
    for _ in range(1500):
        stream = random_data(rng) + rng.choice([b"", b"QUIT\r\n", b"MAIL FROM:<a@b>\r\n", b"."])
        cuts = [rng.randrange(len(stream) + 1) for _ in range(rng.randrange(0, 6))]
        size_limit = rng.choice([None, None, 20, 200, 1050])
        reader_limit = rng.choice([8, 64, 1001, 2**16])
        got = await feed_and_read(stream, cuts, size_limit, reader_limit)
        assert got == by_lines(stream, size_limit), (stream, cuts, size_limit, reader_limit)


@pytest.mark.parametrize(
    ("stream", "content"),
    [
        (b".\r\n", b""),  # no line at all
        (b"\r\n.\r\n", b"\r\n"),  # smtplib's form of an empty message
        (b"..\r\n.\r\n", b".\r\n"),
        (b"...\r\n.\r\n", b"..\r\n"),
        (b"a\r\n.\r\n", b"a\r\n"),
        (b"a.\r\n.\r\n", b"a.\r\n"),
        (b"a\r\n..\r\n.\r\n", b"a\r\n.\r\n"),  # a stuffed lone dot is not the end
        (b"a\r\n.b\r\n.\r\n", b"a\r\nb\r\n"),  # any leading dot goes, stuffed or not
        (b"a\r.\r\n.\r\n", b"a\r.\r\n"),  # a bare CR does not end a line
        (b"a\n.\r\n.\r\n", b"a\n.\r\n"),  # nor does a bare LF
    ],
)
async def test_the_edges_of_the_end_marker(stream: bytes, content: bytes) -> None:
    for cut in range(len(stream) + 1):
        payload, rest = await feed_and_read(stream + b"NOOP\r\n", [cut], None, 1001)
        assert (payload, rest) == (DataPayload(content), b"NOOP\r\n"), cut


def test_pending_match_is_the_longest_start_of_the_marker() -> None:
    tails = (b"", b"x", b"\r", b"x\r\n", b"\r\n.", b"\r\n.\r", b"\n.\r")
    assert [pending_match(t) for t in tails] == [0, 0, 1, 2, 3, 4, 1]
    assert pending_match(END) == 2  # a whole marker ends in its own CRLF


async def test_large_mail_is_read_whole_with_aiosmtpds_reader_limit() -> None:
    body = b"".join(b"line %06d of a long mail\r\n" % i for i in range(20000))
    stream = body + b".\r\n"
    cuts = list(range(0, len(stream), 4096))
    payload, rest = await feed_and_read(stream, cuts, None, LINE_LIMIT)
    assert payload == DataPayload(body)
    assert rest == b""
    too_big, _ = await feed_and_read(stream, cuts, len(body) - 1, LINE_LIMIT)
    assert too_big == DataPayload(b"", too_big=True)
    exact, _ = await feed_and_read(stream, cuts, len(body), LINE_LIMIT)
    assert exact == DataPayload(body)


async def test_stream_ending_before_the_marker_raises() -> None:
    reader = asyncio.StreamReader(limit=LINE_LIMIT)
    reader.feed_data(b"Subject: cut\r\n\r\nbody\r\n")
    reader.feed_eof()
    with pytest.raises(asyncio.IncompleteReadError):
        await read_data(reader, None, LINE_LIMIT)


# --- on loopback, against the server --------------------------------------------------------


async def at_data(port: int | None) -> tuple[Dialog, str]:
    """A raw session through EHLO, MAIL and one RCPT; the reply to DATA."""
    dialog, _ = await Dialog.open(port)
    await dialog.send("EHLO cliente.example.org")
    await dialog.send("MAIL FROM:<ana@example.org>")
    await dialog.send(f"RCPT TO:<{GOOD}>")
    return dialog, await dialog.send("DATA")


async def test_dot_stuffed_lines_arrive_as_written(services: Services) -> None:
    body = ".\n..\n.firma\nfin.\n"
    content = mail(body=body)
    assert b"\r\n.\r\n" in content and b"\r\n..\r\n" in content
    async with running(services) as smtp:
        dialog, go_ahead = await at_data(smtp.port)
        assert go_ahead.startswith("354")
        await dialog.data(content)
        reply = await dialog.reply()
        await dialog.close()
    assert reply.startswith("250 2.0.0 Stored as inbound #")
    inbound_id = int(reply.split("#")[1].split(",")[0])
    async with services.db.session() as session:
        row = await session.get(Inbound, inbound_id)
    assert row is not None and row.raw == content


async def test_commands_pipelined_after_the_end_are_answered(services: Services) -> None:
    async with running(services) as smtp:
        dialog, go_ahead = await at_data(smtp.port)
        assert go_ahead.startswith("354")
        # RFC 2920: the end of data and what follows may come in one segment.
        dialog.writer.write(mail() + b".\r\nNOOP\r\nQUIT\r\n")
        replies = [await dialog.reply() for _ in range(3)]
        await dialog.close()
    assert [r[:3] for r in replies] == ["250", "250", "221"]


async def test_line_over_the_limit_is_refused_after_the_data(services: Services) -> None:
    long_line = b"x" * 1000 + b"\r\n"  # 1,002 octets with its CRLF (RFC 5321 §4.5.3.1.6)
    async with running(services) as smtp:
        dialog, _ = await at_data(smtp.port)
        dialog.writer.write(b"Subject: largo\r\n\r\n" + long_line + b".\r\n")
        refused = await dialog.reply()
        after = await dialog.send("NOOP")  # the session goes on
        await dialog.close()
    assert refused.startswith("500 ")
    assert after.startswith("250")


def test_long_line_check_matches_splitting_into_lines() -> None:
    """has_line_over against the plain definition, with lines on both sides of the limit,
    CR and LF alone inside lines, CRLFs at the edges of each search window, and a last
    line with or without its CRLF."""
    rng = random.Random(11)
    for longest in (1, 2, 3, 7, 998):
        sizes = [0, 1, longest - 1, longest, longest + 1, longest + 2, 2 * longest]
        for _ in range(400):
            lines = []
            for _ in range(rng.randrange(0, 8)):
                size = max(0, rng.choice(sizes) + rng.randrange(-1, 2))
                lines.append(bytes(rng.choice(b"ab\r\n.") for _ in range(size)).replace(
                    b"\r\n", b"\n\r"
                ))  # fmt: skip
            data = b"\r\n".join(lines) + rng.choice([b"", b"\r\n"])
            expected = max(map(len, data.split(b"\r\n"))) > longest
            assert has_line_over(data, longest) is expected, (longest, data)
