"""Users and their API tokens: creation (the token is shown once, only its SHA-256 is
stored), revocation, listing and lookup.

Tokens are 32 random bytes, so a plain SHA-256 is enough (no password stretching needed):
the hash is the lookup key and a leaked database does not reveal usable tokens. The token
is drawn by the caller and only its hash travels to the writer (``CreateToken``).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import ApiToken, User
from storage.operations import Executor, OperationRefused, WriteContext

ROLES = ("admin", "ops", "agent", "intake")
TOKEN_PREFIX = "vt_"


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: int
    name: str
    role: str
    token_id: int = 0

    def may(self, *roles: str) -> bool:
        """Admins may do everything; others only what names their role."""
        return self.role == "admin" or self.role in roles

    def require(self, *roles: str) -> Principal:
        """Raise PermissionError (answered as HTTP 403) unless the role may."""
        if not self.may(*roles):
            raise PermissionError(f"role {self.role!r} may not do this")
        return self


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> tuple[str, str, str]:
    """A fresh token, its hash and its display prefix."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return token, hash_token(token), token[:10]


@dataclass(frozen=True, slots=True)
class CreateToken:
    """A token for user ``name`` (created if new; its role set to ``role``)."""

    name: str
    role: str
    token_hash: str = field(repr=False)
    prefix: str


@dataclass(frozen=True, slots=True)
class RevokeToken:
    token_id: int


@dataclass(frozen=True, slots=True)
class TokenInfo:
    id: int
    user_id: int
    user: str
    role: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None = None


class TokenWriter(Executor):
    """Executes ``CreateToken`` and ``RevokeToken``; answers the token's ``TokenInfo``."""

    def run_one(
        self, conn: Connection, op: CreateToken | RevokeToken, ctx: WriteContext
    ) -> TokenInfo:
        if isinstance(op, RevokeToken):
            conn.execute(
                update(ApiToken)
                .where(ApiToken.id == op.token_id, ApiToken.revoked_at.is_(None))
                .values(revoked_at=ctx.now)
            )
            info = token_info(conn, op.token_id)
            if info is None:
                raise OperationRefused("not_found", f"no token {op.token_id}")
            return info
        name = " ".join(op.name.split())
        if not name or len(name) > 200:
            raise OperationRefused("invalid", "name must be 1 to 200 characters", "name")
        if op.role not in ROLES:
            raise OperationRefused("invalid", f"role must be one of {', '.join(ROLES)}", "role")
        user_id = conn.scalar(select(User.id).where(User.name == name))
        if user_id is None:
            user_id = conn.scalar(
                insert(User).values(name=name, role=op.role, created_at=ctx.now).returning(User.id)
            )
        else:
            conn.execute(update(User).where(User.id == user_id).values(role=op.role))
        token_id = conn.scalar(
            insert(ApiToken)
            .values(
                user_id=user_id,
                role=op.role,
                token_hash=op.token_hash,
                prefix=op.prefix,
                created_at=ctx.now,
            )
            .returning(ApiToken.id)
        )
        assert token_id is not None
        info = token_info(conn, int(token_id))
        assert info is not None
        return info


_TOKEN_INFO = select(
    ApiToken.id,
    ApiToken.user_id,
    User.name.label("user"),
    ApiToken.role,
    ApiToken.prefix,
    ApiToken.created_at,
    ApiToken.revoked_at,
).join(User, User.id == ApiToken.user_id)


def token_info(conn: Connection, token_id: int) -> TokenInfo | None:
    row = conn.execute(_TOKEN_INFO.where(ApiToken.id == token_id)).first()
    return TokenInfo(**row._mapping) if row is not None else None


def user_by_name(conn: Connection, name: str) -> Principal | None:
    """The user named ``name`` (as token creation spells it: inner spaces collapsed), or
    None; the CLI acts for one."""
    wanted = " ".join(name.split())
    row = conn.execute(select(User.id, User.name, User.role).where(User.name == wanted)).first()
    return None if row is None else Principal(row.id, row.name, row.role)


async def list_tokens(session: AsyncSession, include_revoked: bool = False) -> list[TokenInfo]:
    stmt = _TOKEN_INFO.order_by(ApiToken.id)
    if not include_revoked:
        stmt = stmt.where(ApiToken.revoked_at.is_(None))
    return [TokenInfo(**row._mapping) for row in await session.execute(stmt)]


async def create_token(session: AsyncSession, name: str, role: str) -> str:
    """Create (or reuse) the user ``name`` and give it a new token in ``session`` (tests and
    first-run setup; the daemon and the CLI submit ``CreateToken``)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    user = await session.scalar(select(User).where(User.name == name))
    if user is None:
        user = User(name=name, role=role)
        session.add(user)
        await session.flush()
    else:
        user.role = role
    token, digest, prefix = new_token()
    session.add(ApiToken(user_id=user.id, role=role, token_hash=digest, prefix=prefix))
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
    return Principal(user_id=row.user_id, name=row.name, role=row.role, token_id=row.id)
