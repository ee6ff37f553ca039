"""The event loop the daemon and its commands run on: uvloop's.

uvloop puts libuv under asyncio's API. Per mail the daemon's loop takes many small steps
(socket reads and replies, hand-offs to the parser and writer processes, timers), and
uvloop does them with less interpreter work: in four paired runs of 3,000 SMTP mails it
took the event loop's CPU per mail from 0.64–0.65 to 0.53–0.58 ms and the mail per second
up by 4–13 % (mean 8 %).

The test suite runs on it too (``tests/conftest.py``), so what is tested is what is served.
One difference concerns code here: uvloop's transports are not subclasses of asyncio's
transport classes, so code asks a transport for a method, never for its class.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar

import uvloop

T = TypeVar("T")


def new_event_loop() -> uvloop.Loop:
    return uvloop.new_event_loop()


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on a uvloop loop."""
    return uvloop.run(main)
