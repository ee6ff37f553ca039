"""How many SMS parts a text takes, and in which encoding it travels.

A text made only of GSM 03.38 characters goes as GSM-7: 160 septets in one SMS, 153 per
part once it is split (the user data header of a concatenated SMS takes the other 7).
Characters of the extension table (``€ [ ] { } \\ ^ ~ |`` and form feed) are an escape
plus a septet, so they count double, and a part never ends between the two. Any other
character sends the whole text as UCS-2: 70 UTF-16 units in one SMS, 67 per part, a
character outside the BMP (most emoji) taking two units that are never split either.
(3GPP TS 23.038 §6.2.1 for the alphabet, TS 23.040 §9.2.3.24.1 for concatenation.)

The count is stored on the row when it is enqueued, so the log shows what a message
costs; Vonage is told to send UCS-2 texts as ``type=unicode``.
"""

from __future__ import annotations

# GSM 03.38 default alphabet, in table order (ESC at 0x1B left out: it is not text).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# The default extension table: each is ESC + one septet.
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

GSM7_SINGLE, GSM7_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67


def sms_text(body: str) -> str:
    """The text as it is sent: a rendered body without the line break templates end with
    (an SMS pays for every character)."""
    return body.strip()


def is_gsm7(text: str) -> bool:
    return all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text)


def segments(text: str) -> int:
    """The number of SMS parts ``text`` takes (an empty text still is one SMS)."""
    if is_gsm7(text):
        units = [2 if c in GSM7_EXTENSION else 1 for c in text]
        single, part = GSM7_SINGLE, GSM7_PART
    else:
        units = [2 if ord(c) > 0xFFFF else 1 for c in text]
        single, part = UCS2_SINGLE, UCS2_PART
    if sum(units) <= single:
        return 1
    count, used = 1, 0
    for width in units:
        if used + width > part:  # an escape pair or a surrogate pair stays in one part
            count, used = count + 1, 0
        used += width
    return count
