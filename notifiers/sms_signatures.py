"""The SMS providers' webhook signatures, for the notifiers' side (status callbacks).

The algorithms live in ``plumbing.webhook_signatures``, a leaf module that both the
notifiers and the SMS intake use without importing each other.
"""

from __future__ import annotations

from plumbing.webhook_signatures import (
    VONAGE_METHODS,
    twilio_signature,
    twilio_valid,
    vonage_signature,
    vonage_valid,
)

__all__ = [
    "VONAGE_METHODS",
    "twilio_signature",
    "twilio_valid",
    "vonage_signature",
    "vonage_valid",
]
