"""Messages that must not leave, and why: checked when a row is claimed, so a change made
after it was queued (an SMS opt-out, a mailbox added) still holds it back.

- an address that opted out of the channel (``opt_outs``: STOP/BAJA by SMS), except the
  one confirmation of that opt-out (``OPT_OUT_CONFIRMATIONS``): carriers' rules expect a
  single reply saying the number will get nothing more;
- an email to one of our own mailboxes (loop protection: our mail would come back in as a
  new message);
- a row with no usable address.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.engine import Connection

from storage.models import OptOut

# Templates that reach a number that opted out: the confirmation that it did.
OPT_OUT_CONFIRMATIONS = frozenset({"optout_sms"})


class _Claimed(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def channel(self) -> str: ...
    @property
    def recipient(self) -> str: ...
    @property
    def template(self) -> str: ...


class Suppression:
    def __init__(self, own_mailboxes: Iterable[str] = ()) -> None:
        """``own_mailboxes``: our addresses, and ``@domain`` for whole domains."""
        entries = [m.strip().lower() for m in own_mailboxes if m.strip()]
        self.addresses = frozenset(e for e in entries if not e.startswith("@"))
        self.domains = frozenset(e[1:] for e in entries if e.startswith("@"))

    def ours(self, address: str) -> bool:
        address = address.strip().lower()
        domain = address.rpartition("@")[2]
        return address in self.addresses or domain in self.domains

    def check(self, conn: Connection, rows: Sequence[_Claimed]) -> dict[int, str]:
        """The rows among ``rows`` that must not be sent, with the reason."""
        held: dict[int, str] = {}
        for row in rows:
            if not row.recipient.strip():
                held[row.id] = "no usable address"
            elif row.channel == "email" and self.ours(row.recipient):
                held[row.id] = f"loop guard: {row.recipient} is one of our own mailboxes"
        wanted = {(r.channel, r.recipient) for r in rows if r.id not in held}
        if wanted:
            found: set[tuple[str, str]] = set()
            for r in conn.execute(
                select(OptOut.channel, OptOut.address).where(
                    OptOut.channel.in_({c for c, _ in wanted}),
                    OptOut.address.in_({a for _, a in wanted}),
                )
            ):
                found.add((r.channel, r.address))
            for row in rows:
                exempt = row.template in OPT_OUT_CONFIRMATIONS
                if (row.channel, row.recipient) in found and row.id not in held and not exempt:
                    held[row.id] = f"{row.recipient} opted out of {row.channel} messages"
        return held


def opted_out(conn: Connection, channel: str, addresses: Iterable[str]) -> set[str]:
    """The addresses among these that opted out of ``channel``."""
    wanted = sorted(set(addresses))
    if not wanted:
        return set()
    rows: Any = conn.execute(
        select(OptOut.address).where(OptOut.channel == channel, OptOut.address.in_(wanted))
    )
    return {r.address for r in rows}
