"""The web console's sign-in records: console users' passwords and their browser sessions.

Writes are typed operations run by ``ConsoleSessionWriter`` inside the write path's
transaction: ``SetPassword`` (creating the user with a role when new, as ``CreateToken``
does), ``OpenSession`` and ``CloseSession``. Opening or closing a session also drops the
expired ones, so the table holds only live sessions without a sweeper of its own. Only
hashes travel here: the password's argon2 hash (drawn by the caller, off the event loop)
and the SHA-256 of the session cookie, as API tokens are kept (``storage.auth``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection

from storage.models import ConsoleSession, Technician, User
from storage.operations import Executor, OperationRefused, WriteContext

CONSOLE_ROLES = ("admin", "ops", "agent")  # intake users are integrations, not people


@dataclass(frozen=True, slots=True)
class ConsoleUser:
    id: int
    name: str
    role: str
    technician_id: int | None = None
    created: bool = False  # SetPassword's answer: the user did not exist before


@dataclass(frozen=True, slots=True)
class SetPassword:
    """Give ``name`` a new password. With ``role``, the user is created when new and takes
    that role (and technician); without it the user must exist. Every session the user
    had is closed: a changed password signs out every browser."""

    name: str
    password_hash: str = field(repr=False)
    role: str | None = None
    technician_id: int | None = None


@dataclass(frozen=True, slots=True)
class OpenSession:
    """A session for ``user_id``, valid until ``expires_at``, if the user's password is
    still the one that was checked (``password_hash``): a password changed meanwhile wins."""

    user_id: int
    token_hash: str = field(repr=False)
    csrf_token: str = field(repr=False)
    expires_at: datetime
    password_hash: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class CloseSession:
    token_hash: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class SignInRecord:
    """What checking a password needs to know about a user."""

    id: int
    name: str
    role: str
    password_hash: str | None = field(repr=False)


@dataclass(frozen=True, slots=True)
class SessionUser:
    """A live session and whose it is: what every console request runs as."""

    session_id: int
    user_id: int
    name: str
    role: str
    technician_id: int | None
    csrf_token: str = field(repr=False)
    expires_at: datetime

    def may(self, *roles: str) -> bool:
        """Admins may do everything; others only what names their role."""
        return self.role == "admin" or self.role in roles


class ConsoleSessionWriter(Executor):
    """Executes ``SetPassword`` (answers ``ConsoleUser``), ``OpenSession`` (answers the
    session's id) and ``CloseSession`` (answers whether a session was closed)."""

    def run_one(
        self, conn: Connection, op: SetPassword | OpenSession | CloseSession, ctx: WriteContext
    ) -> ConsoleUser | int | bool:
        if isinstance(op, SetPassword):
            return self._set_password(conn, op, ctx)
        conn.execute(delete(ConsoleSession).where(ConsoleSession.expires_at <= ctx.now))
        if isinstance(op, CloseSession):
            closed = conn.execute(
                delete(ConsoleSession).where(ConsoleSession.token_hash == op.token_hash)
            )
            return bool(closed.rowcount)
        current = conn.execute(
            select(User.password_hash, User.role).where(User.id == op.user_id)
        ).first()
        if current is None or current.role not in CONSOLE_ROLES:
            raise OperationRefused("forbidden", "this user may not sign in to the console")
        if current.password_hash != op.password_hash:
            raise OperationRefused("stale", "the password changed while signing in")
        session_id = conn.scalar(
            insert(ConsoleSession)
            .values(
                token_hash=op.token_hash,
                user_id=op.user_id,
                csrf_token=op.csrf_token,
                created_at=ctx.now,
                expires_at=op.expires_at,
            )
            .returning(ConsoleSession.id)
        )
        assert session_id is not None
        return int(session_id)

    def _set_password(self, conn: Connection, op: SetPassword, ctx: WriteContext) -> ConsoleUser:
        name = " ".join(op.name.split())
        if not name or len(name) > 200:
            raise OperationRefused("invalid", "name must be 1 to 200 characters", "name")
        roles = ", ".join(CONSOLE_ROLES)
        if op.role is not None and op.role not in CONSOLE_ROLES:
            raise OperationRefused("invalid", f"role must be one of {roles}", "role")
        if op.technician_id is not None and (
            conn.scalar(select(Technician.id).where(Technician.id == op.technician_id)) is None
        ):
            raise OperationRefused("not_found", f"no technician {op.technician_id}", "technician")
        row = conn.execute(
            select(User.id, User.role, User.technician_id).where(User.name == name)
        ).first()
        if row is None:
            if op.role is None:
                raise OperationRefused("not_found", f"no user {name!r}", "name")
            user_id = conn.scalar(
                insert(User)
                .values(
                    name=name,
                    role=op.role,
                    technician_id=op.technician_id,
                    password_hash=op.password_hash,
                    created_at=ctx.now,
                )
                .returning(User.id)
            )
            assert user_id is not None
            return ConsoleUser(int(user_id), name, op.role, op.technician_id, created=True)
        role = op.role or row.role
        if role not in CONSOLE_ROLES:
            raise OperationRefused(
                "invalid", f"a user with role {role!r} cannot sign in; give one of {roles}", "role"
            )
        technician_id = op.technician_id if op.technician_id is not None else row.technician_id
        conn.execute(
            update(User)
            .where(User.id == row.id)
            .values(role=role, technician_id=technician_id, password_hash=op.password_hash)
        )
        conn.execute(delete(ConsoleSession).where(ConsoleSession.user_id == row.id))
        return ConsoleUser(int(row.id), name, role, technician_id)


# --- reads (``await db.read(fn, ...)``) ------------------------------------------------------


def sign_in_record(conn: Connection, name: str) -> SignInRecord | None:
    row = conn.execute(
        select(User.id, User.name, User.role, User.password_hash).where(
            User.name == " ".join(name.split())
        )
    ).first()
    return SignInRecord(**row._mapping) if row is not None else None


def session_user(conn: Connection, token_hash: str, now: datetime) -> SessionUser | None:
    """The live session whose cookie hashes to ``token_hash``, if its user may still sign
    in (a role changed to ``intake`` ends the user's console access at once)."""
    row = conn.execute(
        select(
            ConsoleSession.id.label("session_id"),
            User.id.label("user_id"),
            User.name,
            User.role,
            User.technician_id,
            ConsoleSession.csrf_token,
            ConsoleSession.expires_at,
        )
        .join(User, User.id == ConsoleSession.user_id)
        .where(
            ConsoleSession.token_hash == token_hash,
            ConsoleSession.expires_at > now,
            User.role.in_(CONSOLE_ROLES),
            User.password_hash.is_not(None),
        )
    ).first()
    return SessionUser(**row._mapping) if row is not None else None
