"""A technician's channels: where they are told of their cases, in order of preference.

``checked_channels`` normalizes what an operator (or the technician's browser registering
a push subscription) gives: an email address, an E.164 phone number, a Telegram chat id,
or a push address for one of the configured push providers (a Web Push subscription is
checked for its endpoint and keys). ``SetTechnicianChannels`` replaces the whole ordered
list in one transaction; ``technician_channels`` reads it back. The notices
(``cases.notices``) go to the first channel and fall back to the next.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Connection

from notifiers.base import PermanentError
from notifiers.push_webpush import parse_subscription
from notifiers.sms_numbers import e164
from storage.models import Technician, TechnicianChannel
from storage.operations import Executor, OperationRefused, WriteContext

CHANNELS = ("email", "sms", "push", "telegram")
MAX_CHANNELS = 10


@dataclass(frozen=True, slots=True)
class ChannelEntry:
    channel: str
    address: str
    provider: str = ""  # push: the name of a ``[notifiers.push.NAME]`` provider


@dataclass(frozen=True, slots=True)
class SetTechnicianChannels:
    """Replace technician ``technician_id``'s channels with ``channels`` (already checked)."""

    technician_id: int
    channels: tuple[ChannelEntry, ...]
    actor: str = "system"


def checked_channels(
    given: Sequence[ChannelEntry], sms_region: str, push_kinds: Mapping[str, str]
) -> tuple[ChannelEntry, ...]:
    """``given`` normalized, or ``OperationRefused`` naming the entry at fault
    (``channels[2].address``). ``push_kinds`` maps each configured push provider's name to
    its kind (fcm, ntfy, webpush)."""
    if len(given) > MAX_CHANNELS:
        raise OperationRefused("invalid", f"at most {MAX_CHANNELS} channels", "channels")
    found: list[ChannelEntry] = []
    for index, entry in enumerate(given):
        where = f"channels[{index}]"
        if entry.channel not in CHANNELS:
            raise OperationRefused(
                "invalid", f"channel must be one of {', '.join(CHANNELS)}", f"{where}.channel"
            )
        address = entry.address.strip()
        if not address:
            raise OperationRefused("invalid", "address cannot be empty", f"{where}.address")
        checked = _checked(entry.channel, entry.provider, address, sms_region, push_kinds, where)
        if checked in found:
            raise OperationRefused("invalid", "this channel is listed twice", where)
        found.append(checked)
    return tuple(found)


def _checked(
    channel: str,
    provider: str,
    address: str,
    sms_region: str,
    push_kinds: Mapping[str, str],
    where: str,
) -> ChannelEntry:
    if channel != "push" and provider:
        raise OperationRefused(
            "invalid", "only a push channel names its provider", f"{where}.provider"
        )
    if channel == "email":
        try:
            email = validate_email(address, check_deliverability=False).normalized
        except EmailNotValidError as exc:
            raise OperationRefused("invalid", str(exc), f"{where}.address") from None
        return ChannelEntry("email", email.lower())
    if channel == "sms":
        number = e164(address, sms_region)
        if number is None:
            raise OperationRefused(
                "invalid", f"{address!r} is not a valid phone number", f"{where}.address"
            )
        return ChannelEntry("sms", number)
    if channel == "telegram":
        # A chat id: a user's is positive, a group's negative (the bot must be in it).
        if not address.lstrip("-").isdigit() or len(address) > 20:
            raise OperationRefused(
                "invalid", "a Telegram address is a numeric chat id", f"{where}.address"
            )
        return ChannelEntry("telegram", address)
    kind = push_kinds.get(provider)
    if kind is None:
        known = ", ".join(sorted(push_kinds)) or "none is configured"
        raise OperationRefused(
            "invalid",
            f"provider must name a configured push provider ({known})",
            f"{where}.provider",
        )
    if kind == "webpush":
        try:
            address = json.dumps(parse_subscription(address), separators=(",", ":"))
        except PermanentError as exc:
            raise OperationRefused("invalid", str(exc), f"{where}.address") from None
    return ChannelEntry("push", address, provider)


def technician_channels(conn: Connection, technician_id: int) -> list[ChannelEntry] | None:
    """The technician's channels in order, or None when there is no such technician."""
    if conn.scalar(select(Technician.id).where(Technician.id == technician_id)) is None:
        return None
    rows = conn.execute(
        select(TechnicianChannel.channel, TechnicianChannel.address, TechnicianChannel.provider)
        .where(TechnicianChannel.technician_id == technician_id)
        .order_by(TechnicianChannel.position)
    )
    return [ChannelEntry(r.channel, r.address, r.provider) for r in rows]


class ChannelsWriter(Executor):
    """Executes ``SetTechnicianChannels``; answers the stored list."""

    def run_one(
        self, conn: Connection, op: SetTechnicianChannels, ctx: WriteContext
    ) -> list[ChannelEntry]:
        # Locks the technician row so two concurrent replacements do not interleave.
        found = conn.scalar(
            select(Technician.id).where(Technician.id == op.technician_id).with_for_update()
        )
        if found is None:
            raise OperationRefused("not_found", f"no technician {op.technician_id}")
        conn.execute(
            delete(TechnicianChannel).where(TechnicianChannel.technician_id == op.technician_id)
        )
        if op.channels:
            conn.execute(
                insert(TechnicianChannel),
                [
                    {
                        "technician_id": op.technician_id,
                        "position": position,
                        "channel": entry.channel,
                        "provider": entry.provider,
                        "address": entry.address,
                    }
                    for position, entry in enumerate(op.channels)
                ],
            )
        return list(op.channels)
