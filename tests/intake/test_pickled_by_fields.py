"""The dataclasses that cross process pipes come back equal, every field included."""

from __future__ import annotations

import dataclasses
import pickle
from datetime import UTC, datetime

import pytest

from intake.email.parse import ParsedEmail
from intake.message import (
    AcceptResult,
    Address,
    Attachment,
    Channel,
    InboundMessage,
    PickledByFields,
)

SENDER = Address(name="Ana", email="ana@example.org", phone="+5491100000000", telegram_id="7")
FILE = Attachment(sha256="ab" * 32, size=12, content_type="text/plain", filename="log.txt")


def every_field_set(cls: type[PickledByFields]) -> PickledByFields:
    """An instance whose every field differs from its default."""
    samples: dict[str, object] = {
        "channel": Channel.EMAIL,
        "sender": SENDER,
        "raw": b"raw\r\n",
        "attachments": (FILE,),
        "date": datetime(2026, 3, 2, 8, 0, tzinfo=UTC),
        "auto_submitted": True,
        "inbound_id": 7,
        "size": 12,
    }
    values = {}
    for index, f in enumerate(dataclasses.fields(cls)):  # type: ignore[arg-type]
        value = samples.get(f.name)
        if value is None:
            kind = str(f.type)
            if "tuple" in kind:
                value = (f"{f.name}-{index}",)
            elif "bool" in kind:
                value = True
            elif "int" in kind:
                value = index + 1
            else:
                value = f"{f.name}-{index}"
        values[f.name] = value
    return cls(**values)


@pytest.mark.parametrize("cls", [Address, Attachment, InboundMessage, AcceptResult, ParsedEmail])
def test_round_trip_keeps_every_field(cls: type[PickledByFields]) -> None:
    original = every_field_set(cls)
    copy = pickle.loads(pickle.dumps(original, protocol=pickle.HIGHEST_PROTOCOL))
    assert copy == original
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        assert getattr(copy, f.name) == getattr(original, f.name), f.name
        default = f.default if f.default is not dataclasses.MISSING else None
        assert getattr(copy, f.name) != default, f"{f.name} was not set by the test"


@pytest.mark.parametrize("cls", [Address, Attachment, InboundMessage, AcceptResult, ParsedEmail])
def test_pickled_as_a_call_of_the_class(cls: type[PickledByFields]) -> None:
    """Not through dataclasses' per-object field walk (see PickledByFields)."""
    assert every_field_set(cls).__reduce__()[0] is cls
    assert cls.__match_args__ == tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]
