"""Content-addressed attachment store: ``<root>/<sha256[:2]>/<sha256>``.

Files are written (temp file, fsync, rename) before the message is accepted, so a committed
row never points at a missing file; a crash between the two leaves only an unreferenced
file, which is harmless. Writing happens in a worker thread to keep the loop free.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import tempfile
import unicodedata
from pathlib import Path

from intake.message import Attachment

_UNSAFE = re.compile(r"[^\w.\- ()\[\]]+", re.UNICODE)


def sanitize_filename(name: str, fallback: str = "adjunto") -> str:
    """A display-safe base name: no directories, control characters or leading dots."""
    name = unicodedata.normalize("NFC", name or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE.sub("_", name).strip(" ._")
    if not name:
        return fallback
    stem, dot, ext = name.rpartition(".")
    if dot and len(name) > 200:
        return stem[: 200 - len(ext) - 1] + "." + ext
    return name[:200]


class AttachmentStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path_of(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    async def save(self, data: bytes, filename: str, content_type: str) -> Attachment:
        return await asyncio.to_thread(self.save_sync, data, filename, content_type)

    def save_sync(self, data: bytes, filename: str, content_type: str) -> Attachment:
        digest = hashlib.sha256(data).hexdigest()
        target = self.path_of(digest)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        return Attachment(
            sha256=digest,
            size=len(data),
            content_type=(content_type or "application/octet-stream")[:200],
            filename=sanitize_filename(filename),
        )
