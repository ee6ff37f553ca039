"""The catalog as the writer sees it, reloaded inside the transaction when it changed.

Reading the ``catalog`` counter costs one primary-key lookup per transaction; the snapshot
is rebuilt only when the counter moved (a catalog edit here, or by another daemon on the
same database), so routing always uses the catalog the transaction can see.
"""

from __future__ import annotations

from sqlalchemy.engine import Connection

from routing.catalog import CATALOG_VERSION, CatalogSnapshot, load_catalog_sync
from storage.operations import WriteContext

MEMO_KEY = "catalog"
EDITED_KEY = "catalog edited"


class CatalogInTransaction:
    def __init__(self) -> None:
        self._version: int | None = None
        self._snapshot = CatalogSnapshot()

    def get(self, conn: Connection, ctx: WriteContext) -> CatalogSnapshot:
        snapshot: CatalogSnapshot | None = ctx.memo.get(MEMO_KEY)
        if snapshot is not None:
            return snapshot
        if ctx.memo.get(EDITED_KEY):
            # Edited in this transaction, which may still roll back: not for later ones.
            snapshot = load_catalog_sync(conn)
            ctx.memo[MEMO_KEY] = snapshot
            return snapshot
        version = conn.scalar(CATALOG_VERSION)
        if version is None or version != self._version:
            self._snapshot = load_catalog_sync(conn)
            self._version = version
        ctx.memo[MEMO_KEY] = self._snapshot
        return self._snapshot

    @staticmethod
    def changed(ctx: WriteContext) -> None:
        """A catalog edit of this transaction: later operations read it again."""
        ctx.memo.pop(MEMO_KEY, None)
        ctx.memo[EDITED_KEY] = True
