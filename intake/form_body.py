"""Reading a web form post within its limits: JSON, urlencoded, or multipart part by part.

Every refusal is a ``PostRefused``: the JSON answer for scripts, the words a customer reads
on the form page instead (``Notice``), and the text fields read before the refusal, so a
browser gets its form back with the customer's input rather than an error document.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from aiohttp import BodyPartReader, web

from intake.forms import (
    FIELDS_MAX_BYTES,
    Rejected,
    parse_json_object,
    read_body,
    too_large,
    unsupported_media,
)

MAX_PARTS = 100  # form fields plus files: far more than the form has, few enough to be cheap
CHUNK = 64 * 1024
KB = 1024
MB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class BodyLimits:
    max_attachment_bytes: int
    max_attachments: int
    max_total_attachment_bytes: int


@dataclass(frozen=True, slots=True)
class Upload:
    filename: str
    content_type: str
    data: bytes


@dataclass
class Posted:
    """A post as read: its fields, the raw bytes to keep (None for multipart), its files."""

    fields: dict[str, object]
    raw: bytes | None
    is_json: bool
    uploads: list[Upload] = field(default_factory=list)
    files_seen: bool = False  # a file part came, kept or not


@dataclass(frozen=True, slots=True)
class Notice:
    """What the form page tells the customer: ``key`` names the words in
    ``templates/<lang>/text.html``; ``value`` fills their ``%s`` (a size, a count, seconds)."""

    key: str
    value: str = ""


UNREADABLE = Notice("unreadable")
FIELDS_TOO_LARGE = Notice("fields_too_large")


class PostRefused(Exception):
    """A post that cannot be taken, with what a browser needs to show its form again."""

    def __init__(self, rejected: Rejected, notice: Notice) -> None:
        super().__init__(rejected.message)
        self.rejected = rejected
        self.notice = notice
        self.fields: dict[str, object] = {}  # the text fields read before the refusal
        self.had_files = False  # files came with it (never kept: the customer attaches again)

    def keep(self, posted: Posted) -> PostRefused:
        """Carry what was read of the post before the refusal."""
        self.fields, self.had_files = posted.fields, posted.files_seen
        return self


def human_size(size: int) -> str:
    """A limit as people read it, rounded down so that it never promises too much."""
    if size >= MB:
        return f"{size // MB} MB"
    if size >= KB:
        return f"{size // KB} KB"
    return f"{size} B"


class FormBodyReader:
    def __init__(self, limits: BodyLimits) -> None:
        self.limits = limits

    async def read(self, request: web.Request, *, keep_fields: bool) -> Posted:
        """The whole post, or ``PostRefused``.

        A body refused for its Content-Length alone is not read at all, unless
        ``keep_fields`` (a browser is waiting for its form back): then the text fields
        that precede the files are read first, bounded as always.
        """
        ctype = request.content_type
        if ctype == "application/json":
            try:
                body = await read_body(request, FIELDS_MAX_BYTES)
                return Posted(dict(parse_json_object(body)), body, is_json=True)
            except Rejected as exc:
                notice = FIELDS_TOO_LARGE if exc.status == 413 else UNREADABLE
                raise PostRefused(exc, notice) from None
        if ctype == "application/x-www-form-urlencoded":
            return await self._read_urlencoded(request, keep_fields)
        if ctype == "multipart/form-data":
            return await self._read_multipart(request, keep_fields)
        accepted = "application/x-www-form-urlencoded, multipart/form-data or application/json"
        raise PostRefused(unsupported_media(accepted), UNREADABLE)

    async def read_fields(self, request: web.Request) -> Posted:
        """For a browser post refused before it was read (the rate limit, a body too
        large): its text fields, bounded as always, and whether files followed them;
        never the files themselves, and never a refusal of its own."""
        posted = Posted({}, None, is_json=False)
        if request.content_type == "multipart/form-data":
            with contextlib.suppress(PostRefused):  # keeps what came before a bad part
                await self._parts(request, posted, fields_only=True)
        elif request.content_type == "application/x-www-form-urlencoded":
            posted.fields = await _urlencoded_head(request)
        return posted

    async def _read_urlencoded(self, request: web.Request, keep_fields: bool) -> Posted:
        if keep_fields and (request.content_length or 0) > FIELDS_MAX_BYTES:
            refused = PostRefused(too_large(_fields_limit()), FIELDS_TOO_LARGE)
            raise refused.keep(await self.read_fields(request))
        try:
            body = await read_body(request, FIELDS_MAX_BYTES)
        except Rejected as exc:
            raise PostRefused(exc, FIELDS_TOO_LARGE) from None
        return Posted(_parse_urlencoded(body, request.charset), body, is_json=False)

    async def _read_multipart(self, request: web.Request, keep_fields: bool) -> Posted:
        """Stream the parts, holding at most the configured limits in memory.

        ``client_max_size`` does not apply to a streamed multipart body, so every part is
        read with its own cap and the totals are checked as they grow.
        """
        cfg = self.limits
        if (request.content_length or 0) > cfg.max_total_attachment_bytes + FIELDS_MAX_BYTES:
            refused = PostRefused(
                too_large("the request body is larger than the attachment limits allow"),
                Notice("files_too_large", human_size(cfg.max_total_attachment_bytes)),
            )
            if keep_fields:
                refused.keep(await self.read_fields(request))
            raise refused
        posted = Posted({}, None, is_json=False)
        await self._parts(request, posted, fields_only=False)
        return posted

    async def _parts(self, request: web.Request, posted: Posted, *, fields_only: bool) -> None:
        """Read the parts into ``posted``; with ``fields_only``, stop at the first file
        (browsers send the fields in page order, and the form's files come last)."""
        cfg = self.limits
        text_bytes = file_bytes = parts = 0
        fields_too_big = PostRefused(too_large(_fields_limit()), FIELDS_TOO_LARGE)
        file_too_big = PostRefused(
            too_large(f"each attachment may be at most {cfg.max_attachment_bytes} bytes"),
            Notice("file_too_large", human_size(cfg.max_attachment_bytes)),
        )
        too_many = Notice("too_many_files", str(cfg.max_attachments))
        try:
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                parts += 1
                if parts > MAX_PARTS:
                    raise PostRefused(
                        too_large(f"more than {MAX_PARTS} parts in the form"), too_many
                    )
                if not isinstance(part, BodyPartReader):
                    raise _malformed("nested multipart bodies are not accepted")
                if part.filename is None:
                    data = await _read_part(part, FIELDS_MAX_BYTES - text_bytes, fields_too_big)
                    text_bytes += len(data)
                    text = data.decode(part.get_charset("utf-8"))
                    posted.fields.setdefault(part.name or "", text)  # the first one counts
                    continue
                posted.files_seen = posted.files_seen or bool(part.filename)
                if fields_only:
                    break
                if part.name != "attachments":
                    raise _malformed("files are accepted only under the field 'attachments'")
                data = await _read_part(part, cfg.max_attachment_bytes, file_too_big)
                if not data and not part.filename:
                    continue  # a file input left empty still sends an empty part
                if len(posted.uploads) >= cfg.max_attachments:
                    raise PostRefused(
                        too_large(f"at most {cfg.max_attachments} attachments are accepted"),
                        too_many,
                    )
                file_bytes += len(data)
                if file_bytes > cfg.max_total_attachment_bytes:
                    limit = cfg.max_total_attachment_bytes
                    raise PostRefused(
                        too_large(f"attachments may total at most {limit} bytes"),
                        Notice("files_too_large", human_size(limit)),
                    )
                content_type = part.headers.get("Content-Type", "application/octet-stream")
                posted.uploads.append(Upload(part.filename, content_type, data))
        except PostRefused as exc:
            raise exc.keep(posted) from None
        except (ValueError, LookupError, AssertionError) as exc:  # incl. UnicodeDecodeError
            message = f"the multipart body could not be read: {exc}"
            raise _malformed(message).keep(posted) from None


async def _read_part(part: BodyPartReader, cap: int, too_big: PostRefused) -> bytes:
    # Raw bytes on purpose: RFC 7578 §4.7 deprecates Content-Transfer-Encoding in
    # form-data, and decoding a compressed part could expand far beyond the cap.
    buf = bytearray()
    while chunk := await part.read_chunk(CHUNK):
        buf += chunk
        if len(buf) > cap:
            raise too_big
    return bytes(buf)


async def _urlencoded_head(request: web.Request) -> dict[str, object]:
    """The complete fields within the first ``FIELDS_MAX_BYTES`` of an urlencoded body
    that was not read yet (the pair cut at the end is dropped); {} when unreadable."""
    head = bytearray()
    while len(head) <= FIELDS_MAX_BYTES:
        chunk = await request.content.read(CHUNK)
        if not chunk:
            break
        head += chunk
    if len(head) > FIELDS_MAX_BYTES:
        cut = head.rfind(b"&", 0, FIELDS_MAX_BYTES + 1)
        head = head[:cut] if cut >= 0 else bytearray()
    try:
        return _parse_urlencoded(bytes(head), request.charset)
    except PostRefused:
        return {}


def _fields_limit() -> str:
    return f"form fields may total at most {FIELDS_MAX_BYTES} bytes"


def _malformed(message: str) -> PostRefused:
    return PostRefused(Rejected(400, "malformed_form", message, "malformed"), UNREADABLE)


def _parse_urlencoded(body: bytes, charset: str | None) -> dict[str, object]:
    try:
        pairs = parse_qsl(
            body.decode(charset or "utf-8"),
            keep_blank_values=True,
            max_num_fields=MAX_PARTS,
            encoding=charset or "utf-8",
            errors="strict",
        )
    except (ValueError, LookupError) as exc:
        raise _malformed(f"the form body could not be read: {exc}") from None
    fields: dict[str, object] = {}
    for key, value in pairs:
        fields.setdefault(key, value)  # a repeated field: the first one counts
    return fields
