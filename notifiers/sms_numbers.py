"""Phone numbers as SMS providers want them: E.164 (``+5491155550123``).

A number written without its country code (``011 15-5555-0123``) is read in ``[sms]
default_region``. One that cannot be made a valid E.164 number will never be delivered,
so it is a permanent failure, not something to retry.
"""

from __future__ import annotations

import phonenumbers

from notifiers.base import PermanentError


def e164(value: str, region: str) -> str | None:
    """The E.164 form of ``value``, or None when it is not a valid number."""
    try:
        number = phonenumbers.parse(value, region.upper() or None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def recipient_number(value: str, region: str) -> str:
    """``value`` in E.164, or ``PermanentError`` saying it is not a phone number."""
    number = e164(value, region)
    if number is None:
        raise PermanentError("not a valid phone number", code="invalid_number")
    return number
