"""Console passwords: argon2id hashes (argon2-cffi's defaults, RFC 9106's low-memory
profile), made and checked in a worker thread because each one takes tens of milliseconds
of CPU that the event loop cannot spare.

A name that has no password still costs one verification, so the answer takes as long
whether the user exists or not.
"""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_LENGTH = 8
MAX_LENGTH = 1024  # argon2 takes any length; this bounds the work one request can ask for


class WeakPassword(ValueError):
    """The password is refused before hashing: the message says why."""


def check_strength(password: str) -> None:
    if not password:
        raise WeakPassword("the password is empty")
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"the password must have at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise WeakPassword(f"the password may have at most {MAX_LENGTH} characters")


class Passwords:
    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self.hasher = hasher or PasswordHasher()
        self._decoy: str | None = None

    async def hash(self, password: str) -> str:
        """The argon2 hash of an acceptable password (``WeakPassword`` otherwise)."""
        check_strength(password)
        return await asyncio.to_thread(self.hasher.hash, password)

    async def verify(self, stored: str | None, password: str) -> bool:
        """Whether ``password`` matches ``stored``; None (no such user, no password) runs
        against a decoy hash so that it takes the same time and still answers False."""
        if len(password) > MAX_LENGTH:
            return False
        if self._decoy is None:
            self._decoy = await asyncio.to_thread(self.hasher.hash, "decoy password")
        target = stored or self._decoy
        matched = await asyncio.to_thread(self._verify, target, password)
        return matched and stored is not None

    def _verify(self, stored: str, password: str) -> bool:
        try:
            return self.hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False
