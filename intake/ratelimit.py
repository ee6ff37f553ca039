"""Per-client token buckets for the public form, with a bounded table of clients."""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Callable

from aiohttp import web

MAX_CLIENTS = 10_000


class RateLimiter:
    """``per_minute`` submissions per client on average, up to ``burst`` at once.

    The table keeps clients in least-recently-seen order and drops the oldest past
    ``max_clients``; the oldest are usually idle long enough for their bucket to be full
    again, which is exactly what a missing entry means, so eviction rarely forgets anything.
    """

    def __init__(
        self,
        per_minute: int,
        burst: int,
        *,
        max_clients: int = MAX_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = per_minute / 60.0
        self.capacity = float(max(burst, 1))
        self.max_clients = max_clients
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last seen)

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str) -> int:
        """Spend one token for ``key``: 0 when allowed, else whole seconds to wait."""
        if not self.enabled:
            return 0
        now = self._clock()
        entry = self._buckets.pop(key, None)  # re-inserted below: keeps the LRU order
        tokens = self.capacity
        if entry is not None:
            tokens = min(self.capacity, entry[0] + (now - entry[1]) * self.rate)
        wait = 0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = max(1, math.ceil((1.0 - tokens) / self.rate))
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > self.max_clients:
            del self._buckets[next(iter(self._buckets))]
        return wait


def client_key(request: web.Request, trust_forwarded_for: bool) -> str:
    """The client address to rate-limit by.

    Behind a trusted proxy, the right-most X-Forwarded-For entry is the one that proxy
    appended; entries to its left are whatever the client chose to send. An IPv6 client
    usually holds a whole /64, so it is limited as one.
    """
    remote = request.remote or ""
    if trust_forwarded_for:
        values = request.headers.getall("X-Forwarded-For", [])
        hops = [hop.strip() for value in values for hop in value.split(",")]
        remote = next((h for h in reversed(hops) if h), remote)
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return remote or "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:  # a dual-stack socket's view of an IPv4 client
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)
