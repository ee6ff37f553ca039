"""Database schema: SQLAlchemy 2 declarative models for every stored thing.

Tables are grouped as catalog (areas … technicians), people (customers, identities, users,
tokens), cases and their timeline (inbound raw records, messages, attachments, events) and
the outbox (notifications, delivery attempts, saved filters). Migrations in
``storage/migrations`` are the source of truth for the database; these classes must match.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# Integer on SQLite so that the primary key is the rowid (autoincrement), BIGINT elsewhere.
Id = BigInteger().with_variant(Integer(), "sqlite")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every engine (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        # A batch stamps every row with the same ``now``: convert that object once, not
        # once per row and column (the conversion was a tenth of the intake writer's time).
        # datetimes are immutable, so the same object always converts the same way; the
        # (value, result) pair is replaced as one tuple, which is safe across threads.
        convert = super().bind_processor(dialect)
        if convert is None:
            return None
        last: list[tuple[Any, Any]] = [(None, None)]

        def process(value: Any) -> Any:
            seen, result = last[0]
            if value is seen and value is not None:
                return result
            result = convert(value)
            last[0] = (value, result)
            return result

        return process

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UtcDateTime,
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


class AppState(Base):
    """Small key/value facts the daemon keeps (generated secret key, seed marker)."""

    __tablename__ = "app_state"
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Counter(Base):
    """Gap-free counters; case numbers are reserved with UPDATE … RETURNING in the batch."""

    __tablename__ = "counters"
    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


# --- catalog (seed 004) ---------------------------------------------------------------


class Area(Base):
    __tablename__ = "areas"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Status(Base):
    __tablename__ = "statuses"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(10))  # open | pending | closed
    rank: Mapped[int] = mapped_column(Integer, default=0)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)


class Priority(Base):
    __tablename__ = "priorities"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    colour: Mapped[str] = mapped_column(String(20), default="#808080")
    rank: Mapped[int] = mapped_column(Integer, default=0)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)


class Severity(Base):
    __tablename__ = "severities"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    rank: Mapped[int] = mapped_column(Integer, default=0)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)


class Technician(Base):
    __tablename__ = "technicians"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(32))
    language: Mapped[str] = mapped_column(String(8), default="es")
    # An unavailable technician (on leave, gone) gets no new cases.
    available: Mapped[bool] = mapped_column(Boolean, default=True)


class TechnicianChannel(Base):
    """Where a technician is told of their cases, in order of preference: the first that
    does not fail for good wins (``address`` is their email, phone, Telegram chat id or a
    push subscription/token, as the channel needs)."""

    __tablename__ = "technician_channels"
    __table_args__ = (
        UniqueConstraint("technician_id", "position", name="uq_technician_channels_position"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    technician_id: Mapped[int] = mapped_column(ForeignKey("technicians.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    channel: Mapped[str] = mapped_column(String(20))  # email | sms | push | telegram
    provider: Mapped[str] = mapped_column(String(60), default="")  # push: which provider
    address: Mapped[str] = mapped_column(Text)


class OptOut(Base):
    """An address that asked not to be messaged on a channel (SMS STOP/BAJA)."""

    __tablename__ = "opt_outs"
    __table_args__ = (UniqueConstraint("channel", "address", name="uq_opt_outs_channel_address"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    channel: Mapped[str] = mapped_column(String(20))
    address: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    source: Mapped[str] = mapped_column(String(200), default="")


class TechnicianArea(Base):
    """The areas a technician works in (many to many)."""

    __tablename__ = "technician_areas"
    technician_id: Mapped[int] = mapped_column(
        ForeignKey("technicians.id", ondelete="CASCADE"), primary_key=True
    )
    area_id: Mapped[int] = mapped_column(
        ForeignKey("areas.id", ondelete="CASCADE"), primary_key=True
    )


class Category(Base):
    __tablename__ = "categories"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    comment: Mapped[str] = mapped_column(Text, default="")
    price: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    area_id: Mapped[int | None] = mapped_column(ForeignKey("areas.id"))
    technician_id: Mapped[int | None] = mapped_column(ForeignKey("technicians.id"))
    in_use: Mapped[bool] = mapped_column(Boolean, default=True)
    available_technician_app: Mapped[bool] = mapped_column(Boolean, default=True)
    available_customer_app: Mapped[bool] = mapped_column(Boolean, default=True)
    available_web_portal: Mapped[bool] = mapped_column(Boolean, default=True)
    customer_description: Mapped[str] = mapped_column(Text, default="")
    colour: Mapped[str] = mapped_column(String(20), default="#808080")
    subreasons: Mapped[list[Any]] = mapped_column(default=list)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)


# --- people ---------------------------------------------------------------------------


class Customer(Base):
    __tablename__ = "customers"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    # Opaque public reference, generated by the writer: stable across databases, and the
    # key that ties a multi-row INSERT … RETURNING back to the rows it sent.
    ref: Mapped[str] = mapped_column(String(32), unique=True, default=lambda: uuid.uuid4().hex)
    name: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class CustomerIdentity(Base):
    """How we recognise a customer: normalized email, E.164 phone or Telegram user id."""

    __tablename__ = "customer_identities"
    __table_args__ = (UniqueConstraint("kind", "value", name="uq_identity_kind_value"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(20))  # email | phone | telegram
    value: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class User(Base):
    """An operator or integration; API tokens and saved filters belong to one."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    role: Mapped[str] = mapped_column(String(20))  # admin | ops | agent | intake
    technician_id: Mapped[int | None] = mapped_column(ForeignKey("technicians.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The web console's sign-in (argon2); None: this user signs in with tokens only.
    password_hash: Mapped[str | None] = mapped_column(String(200))


class ConsoleSession(Base):
    """A signed-in browser: the cookie's SHA-256, its user, and the CSRF token its forms
    carry."""

    __tablename__ = "console_sessions"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()


class ApiToken(Base):
    """Only the SHA-256 of a token is stored; the token itself is shown once at creation."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(20))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()


# --- cases and their timeline ---------------------------------------------------------


class Case(Base):
    __tablename__ = "cases"
    __table_args__ = (
        Index("ix_cases_status_updated", "status_id", "updated_at"),
        Index("ix_cases_customer", "customer_id"),
        Index("ix_cases_parent", "parent_id"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    number: Mapped[str] = mapped_column(String(40), unique=True)
    title: Mapped[str] = mapped_column(String(500))
    description: Mapped[str] = mapped_column(Text, default="")
    status_id: Mapped[int] = mapped_column(ForeignKey("statuses.id"))
    priority_id: Mapped[int] = mapped_column(ForeignKey("priorities.id"))
    severity_id: Mapped[int] = mapped_column(ForeignKey("severities.id"))
    category_id: Mapped[int | None] = mapped_column(ForeignKey("categories.id"))
    subreason: Mapped[str | None] = mapped_column(String(300))
    area_id: Mapped[int | None] = mapped_column(ForeignKey("areas.id"))
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("technicians.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    contact: Mapped[str] = mapped_column(String(320), default="")
    origin_channel: Mapped[str] = mapped_column(String(20))
    language: Mapped[str] = mapped_column(String(8), default="es")
    tags: Mapped[list[Any]] = mapped_column(default=list)
    cc: Mapped[list[Any]] = mapped_column(default=list)
    is_public: Mapped[bool] = mapped_column(Boolean, default=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))
    cloned_from_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))
    solution: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    first_response_due: Mapped[datetime | None] = mapped_column()
    resolution_due: Mapped[datetime | None] = mapped_column()
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    reopen_at: Mapped[datetime | None] = mapped_column()
    closed_at: Mapped[datetime | None] = mapped_column()
    # Bumped by every change of the case's fields: the API's ETag (If-Match → 412).
    version: Mapped[int] = mapped_column(Integer, default=1)
    first_response_at: Mapped[datetime | None] = mapped_column()  # the first agent reply
    # Who hears of status changes besides the customer: email addresses.
    watchers: Mapped[list[Any]] = mapped_column(default=list)


class Inbound(Base):
    """Every accepted external message, raw bytes included, whatever became of it.

    The unique (channel, external_id) pair is the dedup key: a second delivery of the
    same message finds this row and is answered with the case it already produced.
    """

    __tablename__ = "inbound"
    __table_args__ = (
        UniqueConstraint("channel", "external_id", name="uq_inbound_channel_external_id"),
        Index("ix_inbound_status", "status"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    channel: Mapped[str] = mapped_column(String(20))
    external_id: Mapped[str] = mapped_column(String(500))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    status: Mapped[str] = mapped_column(String(20))  # processed | failed
    error: Mapped[str | None] = mapped_column(Text)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    # A digest of what the sender said (not of transport details): tells a true
    # retransmission from another message that reuses the same external id.
    fingerprint: Mapped[str | None] = mapped_column(String(64))
    normalized: Mapped[dict[str, Any] | None] = mapped_column()
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))
    retries: Mapped[int] = mapped_column(Integer, default=0)


class Message(Base):
    """One entry of a case's conversation, inbound from the customer or outbound to them."""

    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_case_created", "case_id", "created_at"),
        Index("ix_messages_external_id", "external_id"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    inbound_id: Mapped[int | None] = mapped_column(ForeignKey("inbound.id"))
    direction: Mapped[str] = mapped_column(String(3))  # in | out
    channel: Mapped[str] = mapped_column(String(20))
    external_id: Mapped[str | None] = mapped_column(String(500))
    sender: Mapped[str] = mapped_column(String(320), default="")
    subject: Mapped[str] = mapped_column(String(1000), default="")
    text: Mapped[str] = mapped_column(Text, default="")
    html: Mapped[str | None] = mapped_column(Text)
    auto_submitted: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class MessageRef(Base):
    """A Message-ID an inbound email replies to (In-Reply-To, References): lets an original
    that arrives after its reply find the reply's case."""

    __tablename__ = "message_refs"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    ref: Mapped[str] = mapped_column(String(500), index=True)


class Attachment(Base):
    """Metadata of a stored file; the bytes live at ``<attachments_dir>/<sha256[:2]>/<sha256>``."""

    __tablename__ = "attachments"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    content_type: Mapped[str] = mapped_column(String(200))
    filename: Mapped[str] = mapped_column(String(255))


class CaseEvent(Base):
    """Routing reasons, status changes, escalations, internal notes: the case's history."""

    __tablename__ = "case_events"
    __table_args__ = (Index("ix_case_events_case_created", "case_id", "created_at"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(40))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    actor: Mapped[str] = mapped_column(String(200), default="system")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# --- outbox ---------------------------------------------------------------------------


class Notification(Base):
    """One outbound message (the outbox row and its log entry). History is never rewritten:
    a resend is a new row pointing at the original through ``resend_of``."""

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_due", "status", "next_attempt_at"),
        # The log's list is ordered by (created_at, id); each filter's index ends with that
        # key so that a page at any depth is one index range (storage.log_queries).
        Index("ix_notifications_list", "created_at", "id"),
        Index("ix_notifications_status_list", "status", "created_at", "id"),
        Index("ix_notifications_channel_list", "channel", "created_at", "id"),
        # Manual rows are few: a partial index finds them (the filter names the value as a
        # literal, which a partial index needs); automatic ones are most rows, read in
        # list order. An index led by trigger would also lure the acknowledgement cap's
        # lookup away from the recipient index.
        Index(
            "ix_notifications_manual_list",
            "created_at",
            "id",
            sqlite_where=text("trigger = 'manual'"),
            postgresql_where=text("trigger = 'manual'"),
        ),
        Index("ix_notifications_template_list", "template", "created_at", "id"),
        Index("ix_notifications_provider_list", "provider", "created_at", "id"),
        Index("ix_notifications_case_list", "case_id", "created_at", "id"),
        Index("ix_notifications_resend_list", "resend_of", "created_at", "id"),
        Index("ix_notifications_sent_list", "sent_at", "id"),
        # A delivery receipt that names only the provider's message id finds its row.
        Index("ix_notifications_provider_id", "provider_id"),
        Index("ix_notifications_recipient_created", "recipient", "created_at"),
        Index("ix_notifications_customer_created", "customer_id", "created_at"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    channel: Mapped[str] = mapped_column(String(20))  # email | sms | push | telegram
    trigger: Mapped[str] = mapped_column(String(10))  # auto | manual
    template: Mapped[str] = mapped_column(String(100))
    language: Mapped[str] = mapped_column(String(8), default="es")
    recipient: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(1000), default="")
    body: Mapped[str] = mapped_column(Text, default="")
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    status: Mapped[str] = mapped_column(String(12), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    provider_id: Mapped[str | None] = mapped_column(String(200))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    next_attempt_at: Mapped[datetime | None] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column()
    resend_of: Mapped[int | None] = mapped_column(ForeignKey("notifications.id"))
    requested_by: Mapped[str | None] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(Text)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    # Email only: the Message-ID we send it with, so replies and bounces find their case.
    message_id: Mapped[str | None] = mapped_column(String(300), index=True)
    # Who it goes to: customer | technician | watcher; a technician's row names them.
    audience: Mapped[str] = mapped_column(String(12), default="customer")
    technician_id: Mapped[int | None] = mapped_column(ForeignKey("technicians.id"))
    # The configured sender it goes through (email, twilio, vonage, generic, a push
    # provider's name, telegram); chosen when it is enqueued.
    provider: Mapped[str] = mapped_column(String(60), default="")
    html: Mapped[str | None] = mapped_column(Text)
    # Email: In-Reply-To, References, Auto-Submitted …; push/Telegram: the payload's extras.
    headers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    context: Mapped[dict[str, Any]] = mapped_column(default=dict)  # what it was rendered from
    # Why a row is not sent (suppressed, failed, dead) in words an operator reads.
    status_reason: Mapped[str | None] = mapped_column(Text)
    segments: Mapped[int | None] = mapped_column(Integer)  # SMS: parts the text takes
    # A technician's other channels, tried in order when this one fails for good.
    fallback: Mapped[list[Any]] = mapped_column(default=list)
    # Files sent with it (an agent's reply): the store's digests, names and types.
    attachments: Mapped[list[Any]] = mapped_column(default=list)
    # The claim: which dispatcher holds the row in ``sending`` and until when.
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    lease_until: Mapped[datetime | None] = mapped_column()


class DeliveryAttempt(Base):
    __tablename__ = "delivery_attempts"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    notification_id: Mapped[int] = mapped_column(
        ForeignKey("notifications.id", ondelete="CASCADE"), index=True
    )
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    outcome: Mapped[str] = mapped_column(String(12))  # sent | transient | permanent
    provider_response: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    provider: Mapped[str] = mapped_column(String(60), default="")
    provider_code: Mapped[str | None] = mapped_column(String(40))
    provider_message_id: Mapped[str | None] = mapped_column(String(200))
    # Sent again after a claim whose outcome was never recorded (a crash mid-send): the
    # recipient may have it twice.
    possible_duplicate: Mapped[bool] = mapped_column(Boolean, default=False)
    # Which dispatcher made the attempt (host:pid:tag): with several daemons, which sent it.
    dispatcher: Mapped[str | None] = mapped_column(String(100))


class SavedFilter(Base):
    __tablename__ = "saved_filters"
    __table_args__ = (UniqueConstraint("user_id", "name", name="uq_saved_filters_user_name"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ResendJob(Base):
    """A bulk resend: the selection frozen when it was asked for, and how far it got.

    ``selection`` is either ``{"ids": [...]}`` or ``{"params": {...}, "max_id": N}`` (the
    log's filters over rows that existed then); ``position`` is the last original row
    handled, advanced in the same transaction as the rows it queued, so a restart resumes
    exactly there. ``skipped`` counts the rows not resent by reason.
    """

    __tablename__ = "resend_jobs"
    __table_args__ = (Index("ix_resend_jobs_status", "status"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    requested_by: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(Text)
    selection: Mapped[dict[str, Any]] = mapped_column(default=dict)
    as_sent: Mapped[bool] = mapped_column(Boolean, default=False)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    status: Mapped[str] = mapped_column(String(12), default="running")  # running|done|cancelled
    total: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[int] = mapped_column(Integer, default=0)  # rows handled: queued + skipped
    queued: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[dict[str, Any]] = mapped_column(default=dict)  # reason → count
    position: Mapped[Any] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()


# --- channel state --------------------------------------------------------------------


class ImapCheckpoint(Base):
    """How far the IMAP poller has read one account's folder.

    UIDs only mean something together with the folder's UIDVALIDITY (RFC 3501 §2.3.1.1),
    so both are kept: a changed UIDVALIDITY means the folder is read again from UID 1.
    """

    __tablename__ = "imap_checkpoints"
    __table_args__ = (
        UniqueConstraint("account", "folder", name="uq_imap_checkpoints_account_folder"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    account: Mapped[str] = mapped_column(String(200))
    folder: Mapped[str] = mapped_column(String(500))
    # Both are unsigned 32-bit numbers on the wire: beyond a signed INTEGER.
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class SmsPart(Base):
    """One part of a long SMS that arrived as several (Vonage's ``concat-ref``), kept until
    every part is here and they become one inbound message.

    Parts come in separate requests, possibly to different daemons, and each is answered
    only once stored, so the set is assembled here rather than in memory. A joined part
    keeps ``inbound_id`` (the message it became) for a while, so that a provider's retry
    of a part is recognised as a repeat and not the start of a new message.
    """

    __tablename__ = "sms_parts"
    __table_args__ = (
        UniqueConstraint("provider", "message_id", name="uq_sms_parts_provider_message_id"),
        Index("ix_sms_parts_group", "provider", "sender", "concat_ref"),
        Index("ix_sms_parts_received", "received_at"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    provider: Mapped[str] = mapped_column(String(20))
    message_id: Mapped[str] = mapped_column(String(200))  # the provider's id of this part
    sender: Mapped[str] = mapped_column(String(32))  # E.164
    concat_ref: Mapped[str] = mapped_column(String(40))
    total: Mapped[int] = mapped_column(Integer)
    part: Mapped[int] = mapped_column(Integer)  # 1-based
    text: Mapped[str] = mapped_column(Text, default="")
    raw: Mapped[bytes] = mapped_column(LargeBinary)  # the request's fields, as JSON
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    inbound_id: Mapped[int | None] = mapped_column(ForeignKey("inbound.id"))
