"""API tokens: creation (the token is shown once, only its SHA-256 is stored) and lookup.

Tokens are 32 random bytes, so a plain SHA-256 is enough (no password stretching needed):
the hash is the lookup key and a leaked database does not reveal usable tokens.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import ApiToken, User

ROLES = ("admin", "ops", "agent", "intake")
TOKEN_PREFIX = "vt_"


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: int
    name: str
    role: str

    def may(self, *roles: str) -> bool:
        """Admins may do everything; others only what names their role."""
        return self.role == "admin" or self.role in roles

    def require(self, *roles: str) -> Principal:
        """Raise PermissionError (answered as HTTP 403) unless the role may."""
        if not self.may(*roles):
            raise PermissionError(f"role {self.role!r} may not do this")
        return self


# Where the HTTP auth middleware puts the caller (a typed key, as aiohttp recommends).
PRINCIPAL_KEY = web.RequestKey("principal", Principal)


def principal_of(request: web.Request) -> Principal:
    """The authenticated caller the HTTP middleware stored on the request."""
    return request[PRINCIPAL_KEY]


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


async def create_token(session: AsyncSession, name: str, role: str) -> str:
    """Create (or reuse) the user ``name`` and give it a new token; returns the token."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    user = await session.scalar(select(User).where(User.name == name))
    if user is None:
        user = User(name=name, role=role)
        session.add(user)
        await session.flush()
    else:
        user.role = role
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(
        ApiToken(user_id=user.id, role=role, token_hash=hash_token(token), prefix=token[:10])
    )
    return token


async def authenticate(session: AsyncSession, token: str) -> Principal | None:
    row = (
        await session.execute(
            select(ApiToken.id, ApiToken.role, User.id.label("user_id"), User.name)
            .join(User, User.id == ApiToken.user_id)
            .where(ApiToken.token_hash == hash_token(token), ApiToken.revoked_at.is_(None))
        )
    ).first()
    if row is None:
        return None
    return Principal(user_id=row.user_id, name=row.name, role=row.role)
