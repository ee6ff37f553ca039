"""Serializing batches that could thread into each other, on PostgreSQL.

Several batches (and several daemons) write at once on PostgreSQL. Two of them must not
both decide, each without seeing the other's uncommitted rows, that a message opens a new
case, when one is the other's reply or both come from one sender. Each batch therefore
takes, before any lookup, a transaction-scoped advisory lock per thread key it touches
(sender identities, its own Message-IDs, the ones it replies to, case-number tags), in
ascending order so two batches never wait on each other in a cycle. A batch that shares a
key with one in flight waits for its commit and then sees its rows (READ COMMITTED reads
what committed before each statement). SQLite has one writer and needs none of this.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

from sqlalchemy import text
from sqlalchemy.engine import Connection

from cases.lookups import Work, identities_of

LOCK_KEYS = text(
    "SELECT count(pg_advisory_xact_lock(k)) FROM "
    "(SELECT k FROM unnest(CAST(:keys AS bigint[])) AS k ORDER BY k) AS sorted_keys"
)


def lock_key(value: str) -> int:
    """A stable signed 64-bit key (the same in every process and daemon)."""
    digest = hashlib.blake2b(value.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def thread_keys(work: Iterable[Work], tag: re.Pattern[str]) -> list[int]:
    keys: set[int] = set()
    for w in work:
        msg = w.item.msg
        for kind, value in identities_of(msg):
            keys.add(lock_key(f"identity:{kind}:{value}"))
        for ref in (msg.external_id, *msg.in_reply_to, *msg.reports_on):
            keys.add(lock_key(f"ref:{ref}"))
        if found := tag.search(msg.subject):
            keys.add(lock_key(f"case:{found.group(1)}"))
    return sorted(keys)


def lock_threads(conn: Connection, work: Iterable[Work], tag: re.Pattern[str]) -> None:
    if conn.dialect.name != "postgresql":
        return
    keys = thread_keys(work, tag)
    if keys:
        conn.execute(LOCK_KEYS, {"keys": keys})
