"""Seeding the outbound log for its tests: real cases (through intake) and many rows of
every kind written straight into the outbox table, with a plain-Python oracle of which
rows each filter should return."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, select

from config.app import Services
from storage.models import Case, Notification
from tests.console.test_case_operations import new_case

CHANNELS = ("email", "sms", "push", "telegram")
STATUSES = ("pending", "sending", "sent", "failed", "dead", "suppressed")
START = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class Seeded:
    rows: list[dict[str, Any]]  # as inserted, with their ids
    cases: dict[str, int]  # number → id
    customers: list[int]

    def ids(self, keep: Callable[[dict[str, Any]], bool], oldest: bool = False) -> list[int]:
        chosen = [r for r in self.rows if keep(r)]
        chosen.sort(key=lambda r: (r["created_at"], r["id"]), reverse=not oldest)
        return [r["id"] for r in chosen]


WORDS = ("módem", "factura", "corte", "router", "visita", "clave", "fibra", "antena")


def row(n: int, rnd: random.Random, case: tuple[int, int] | None) -> dict[str, Any]:
    channel = CHANNELS[n % 4]
    status = STATUSES[rnd.randrange(6)]
    created = START + timedelta(days=rnd.randrange(300), seconds=rnd.randrange(86_400))
    recipient = {
        "email": f"cliente{n % 7}@example.com",
        "sms": f"+54911555{n % 7:05d}",
        "push": f"https://push.example/{n % 3}",
        "telegram": str(1000 + n % 5),
    }[channel]
    word = WORDS[n % len(WORDS)]
    return {
        "channel": channel, "trigger": "manual" if n % 5 == 0 else "auto",
        "template": ("ack_" if n % 2 else "status_") + channel, "language": "es",
        "recipient": recipient, "subject": f"Aviso {n} sobre {word}" if channel == "email" else "",
        "body": f"Texto del aviso {n}: {word} revisado.", "case_id": case[0] if case else None,
        "customer_id": case[1] if case else None, "status": status, "attempts": n % 4,
        "created_at": created, "next_attempt_at": created,
        "sent_at": created + timedelta(minutes=1) if status == "sent" else None,
        "provider": {"email": "email", "sms": "twilio" if n % 2 else "vonage",
                     "push": "webpush", "telegram": "telegram"}[channel],
        "audience": "customer", "headers": {}, "context": {}, "fallback": [],
        "attachments": [],
    }  # fmt: skip


async def seed_log(services: Services, count: int = 120, seed: int = 7) -> Seeded:
    """``count`` rows over a few real cases and customers (and some without a case), plus
    the acknowledgements intake itself wrote for those cases."""
    numbers = [await new_case(services, f"persona{i}@example.com") for i in range(3)]
    rnd = random.Random(seed)
    async with services.db.session() as session, session.begin():
        found = (
            await session.execute(
                select(Case.number, Case.id, Case.customer_id).where(Case.number.in_(numbers))
            )
        ).all()
        cases = {r.number: r.id for r in found}
        pairs = [(r.id, r.customer_id) for r in found]
        rows = [row(n, rnd, pairs[n % 3] if n % 4 != 3 else None) for n in range(count)]
        for r in rows:
            r["id"] = await session.scalar(
                insert(Notification).values(**r).returning(Notification.id)
            )
        # What intake queued for those cases is in the log too: the oracle must know it.
        existing = (
            await session.execute(
                select(Notification).where(Notification.id.not_in([r["id"] for r in rows]))
            )
        ).scalars()
        for n in existing:
            rows.append({c.name: getattr(n, c.name) for c in Notification.__table__.columns})
    return Seeded(rows, cases, sorted({p[1] for p in pairs}))
