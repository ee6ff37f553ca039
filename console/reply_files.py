"""The files an agent attaches to a reply through the API: decoded from base64, checked
against the attachment limits, and written to the attachment store before the reply is
submitted (the write path flushes them with the batch that commits the reply).

Each bad file is answered 422 naming it (``attachments.0.content``); a reply whose files
are too large is refused before any of them is written.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass

from console.http_json import error
from console.schemas import FileIn
from intake.attachments import AttachmentStore
from intake.message import Attachment


@dataclass(frozen=True)
class ReplyFiles:
    store: AttachmentStore
    max_file_bytes: int
    max_total_bytes: int
    max_body_bytes: int  # the JSON body, base64 included

    async def save(self, files: Sequence[FileIn]) -> tuple[Attachment, ...]:
        decoded: list[tuple[FileIn, bytes]] = []
        total = 0
        for index, given in enumerate(files):
            where = f"attachments.{index}.content"
            try:
                data = base64.b64decode(given.content, validate=True)
            except (binascii.Error, ValueError):
                raise _bad(where, "not valid base64") from None
            if len(data) > self.max_file_bytes:
                raise _bad(where, f"larger than {self.max_file_bytes} bytes")
            total += len(data)
            decoded.append((given, data))
        if total > self.max_total_bytes:
            raise _bad("attachments", f"together larger than {self.max_total_bytes} bytes")
        return tuple(
            [await self.store.save(data, f.filename, f.content_type) for f, data in decoded]
        )


def _bad(field: str, message: str) -> Exception:
    return error(422, "validation_failed", "an attachment is not valid", fields={field: message})
