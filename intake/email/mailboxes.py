"""Our mailboxes: which recipient addresses (or whole domains) we accept mail for.

Each mailbox may preset the category, area and priority of the cases its mail opens.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Mailbox:
    address: str  # "soporte@example.com", or "@example.com" for a whole domain
    category: str | None = None
    area: str | None = None
    priority: str | None = None


class MailboxDirectory:
    """Finds the mailbox an address belongs to: exact address first, then its domain."""

    def __init__(self, mailboxes: Iterable[Mailbox]) -> None:
        self._exact: dict[str, Mailbox] = {}
        self._domains: dict[str, Mailbox] = {}
        for mailbox in mailboxes:
            key = mailbox.address.strip().lower()
            if key.startswith("@"):
                self._domains[key[1:]] = mailbox
            else:
                self._exact[key] = mailbox

    def __bool__(self) -> bool:
        return bool(self._exact or self._domains)

    def match(self, address: str) -> Mailbox | None:
        address = address.strip().strip("<>").lower()
        if address in self._exact:
            return self._exact[address]
        _, _, domain = address.rpartition("@")
        return self._domains.get(domain) if domain else None

    def matching(self, addresses: Sequence[str]) -> list[tuple[str, Mailbox]]:
        """The addresses that are ours, each with its mailbox, in the given order."""
        found: list[tuple[str, Mailbox]] = []
        for address in addresses:
            mailbox = self.match(address)
            if mailbox is not None:
                found.append((address.strip().strip("<>").lower(), mailbox))
        return found
