"""When to try a message again: a retry policy that answers with a decision, not a sleep.

After a transient failure the next attempt is due after an exponential backoff with full
jitter (so many messages failed by one outage do not all come back at once), never sooner
than a provider's Retry-After; after the last allowed attempt the message is ``dead``. A
permanent failure is ``failed`` at once. The dispatcher records the decision through the
write path; nothing waits in place.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

MAX_RETRY_AFTER = 86_400.0


@dataclass(frozen=True, slots=True)
class RetryAt:
    at: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class GiveUp:
    status: str  # failed | dead
    reason: str


Decision = RetryAt | GiveUp


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    base_seconds: float = 30.0
    max_seconds: float = 3600.0

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds before attempt ``attempt + 1``: full jitter over base · 2^(attempt-1)."""
        ceiling = min(self.max_seconds, self.base_seconds * 2 ** min(attempt - 1, 30))
        return (rng or random).uniform(ceiling / 2, ceiling)

    def after_transient(
        self,
        attempt: int,
        now: datetime,
        reason: str,
        retry_after: float | None = None,
        rng: random.Random | None = None,
    ) -> Decision:
        """``attempt`` is the number of the attempt that just failed (1 for the first)."""
        if attempt >= self.max_attempts:
            return GiveUp("dead", f"{reason} (gave up after {attempt} attempts)")
        wait = self.backoff(attempt, rng)
        if retry_after is not None:
            # The provider's word wins when it asks for longer (HTTP 429 / Retry-After),
            # within a day: a larger value is a provider's mistake, not a plan.
            wait = max(wait, min(retry_after, MAX_RETRY_AFTER))
        return RetryAt(now + timedelta(seconds=wait), reason)

    @staticmethod
    def after_permanent(reason: str) -> Decision:
        return GiveUp("failed", reason)
