"""The case domain's write operations, as plain values that cross the writer process's pipe.

Each is executed inside the write path's transaction by its executor (``cases.intake_batch``,
``cases.edit``, ``cases.merge``, ``cases.catalog_edit``); front ends (the intake adapters,
the ops API, the CLI) only build these values and submit them. ``actor`` is who asked: the
name of the user a token belongs to, or ``system``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from intake.message import Attachment, Channel, InboundMessage


@dataclass(frozen=True, slots=True)
class AcceptMessage:
    """Store an inbound message: dedup, customer, thread or open a case, acknowledge.
    ``retry_of`` names a failed inbound row being replayed."""

    msg: InboundMessage
    retry_of: int | None = None


@dataclass(frozen=True, slots=True)
class RecordFailedInbound:
    """Keep bytes that could not even be parsed, as a failed inbound row (deduplicated)."""

    channel: Channel
    external_id: str
    raw: bytes
    error: str


@dataclass(frozen=True, slots=True)
class UpdateCase:
    """Change fields of a case. ``changes`` maps field names to new values as given by the
    caller (catalog items by name, datetimes aware); ``if_version`` refuses the change
    unless the case is still at that version (HTTP If-Match)."""

    number: str
    changes: dict[str, Any]
    actor: str
    if_version: int | None = None


@dataclass(frozen=True, slots=True)
class AddNote:
    """An internal note on a case: part of its timeline, never sent to the customer."""

    number: str
    text: str
    actor: str


@dataclass(frozen=True, slots=True)
class MergeCase:
    """Move everything of case ``number`` into case ``into`` and close it as merged."""

    number: str
    into: str
    actor: str


@dataclass(frozen=True, slots=True)
class CloneCase:
    """Open a new case with the same fields as ``number``, linked to it."""

    number: str
    actor: str
    changes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CaseChanged:
    """What a case operation answers: the case's number and its new version, and for an
    update the fields that changed (before, after)."""

    number: str
    version: int
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    event_id: int | None = None
    created: str | None = None  # the new case's number (clone)
    at: datetime | None = None


@dataclass(frozen=True, slots=True)
class SaveCatalogItem:
    """Create (``item_id`` None) or change a catalog item; ``values`` by API field name."""

    kind: str
    values: dict[str, Any]
    actor: str
    item_id: int | None = None


@dataclass(frozen=True, slots=True)
class DeleteCatalogItem:
    """Delete a catalog item; one in use needs ``replace_with``, which takes its place in
    every case (and category, technician) that used it."""

    kind: str
    item_id: int
    actor: str
    replace_with: int | None = None


@dataclass(frozen=True, slots=True)
class CatalogSaved:
    kind: str
    item_id: int
    created: bool = False
    deleted: bool = False
    cases_changed: int = 0


@dataclass(frozen=True, slots=True)
class ImportCatalog:
    """Make the catalog what ``document`` says (a parsed TOML file in the shape of the
    config's ``[catalog]`` section), all or nothing; items it does not name are deleted
    only with ``prune``. Answered with the plan that was applied
    (``cases.catalog_import.ImportPlan``)."""

    document: dict[str, Any]
    actor: str
    prune: bool = False


@dataclass(frozen=True, slots=True)
class ReplyToCase:
    """An agent's answer to the customer, sent on the case's channel (or ``channel``)."""

    number: str
    text: str
    actor: str
    channel: str | None = None
    # Files already in the attachment store (flushed with the batch); email only.
    attachments: tuple[Attachment, ...] = ()
