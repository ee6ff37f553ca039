"""Loop and bounce detection: is this mail automatic, and if it is a bounce, of what?

An automatic mail must never be acknowledged (two autoresponders would answer each other
forever), and a delivery status notification names the message it reports on so the
outbound log can mark that notification failed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from email import policy
from email.message import Message
from email.parser import HeaderParser

from intake.email.mime_headers import HeaderMap, clean_text, message_ids, one_line, unfold
from intake.email.mime_walk import param, part_text, salvage

_STATUS_TYPES = frozenset({"message/delivery-status", "message/global-delivery-status"})
_RETURNED_TYPES = frozenset(
    {
        "text/rfc822-headers",  # RFC 6522 §4
        "message/rfc822-headers",  # seen in the wild
        "message/rfc822",
        "message/global",  # RFC 6532 §3.7
        "message/global-headers",
    }
)
_AUTOMATIC_LOCAL_PARTS = frozenset({"mailer-daemon", "postmaster"})
_BULK_PRECEDENCE = frozenset({"bulk", "junk", "list"})
MAX_REPORT_ERROR = 1000


@dataclass(frozen=True, slots=True)
class Report:
    """What a multipart/report says: its kind, the ids it reports on, a readable reason."""

    reason: str
    reports_on: tuple[str, ...] = ()
    error: str | None = None


def automatic_reason(
    headers: HeaderMap,
    senders: Iterable[str],
    message_id: str,
    own_domain: str | None,
) -> str | None:
    """Why this mail counts as automatic (the header that says so), or None."""
    auto = headers.first("auto-submitted")
    if auto is not None:
        token = unfold(auto).split(";", 1)[0].strip().lower()
        if token != "no":  # RFC 3834 §5: anything but "no" is automatic
            return f"Auto-Submitted: {token or 'present'}"
    # Not standard, but what autoresponders and Exchange (MS-OXCMAIL §2.2.3.2.14) send.
    for name, label in (
        ("x-autoreply", "X-Autoreply"),
        ("x-autorespond", "X-Autorespond"),
        ("x-auto-response-suppress", "X-Auto-Response-Suppress"),
    ):
        if name in headers:
            return label
    precedence = (headers.first("precedence") or "").strip().lower()
    if precedence in _BULK_PRECEDENCE:  # RFC 3834 §3.1.8 asks responders to skip these
        return f"Precedence: {precedence}"
    if "list-id" in headers:  # RFC 2919
        return "List-Id"
    if "list-unsubscribe" in headers:  # RFC 2369
        return "List-Unsubscribe"
    return_path = headers.first("return-path")
    if return_path is not None and "".join(unfold(return_path).split()) in ("<>", ""):
        return "empty Return-Path"  # null reverse-path: notifications only, RFC 5321 §4.5.5
    for address in senders:
        local = address.rsplit("@", 1)[0]
        if local in _AUTOMATIC_LOCAL_PARTS:
            return f"sender {local}"
    if own_domain and message_id.lower().endswith("@" + own_domain.lower()):
        return "own Message-ID"  # one of our own mails came back in: a loop
    return None


def _blocks(part: Message) -> list[HeaderMap]:
    """The field groups of a delivery-status body (RFC 3464 §2.1): message, recipients."""
    payload = part.get_payload()
    if isinstance(payload, list):  # compat32 already split message/delivery-status
        return [HeaderMap.of(m) for m in payload if isinstance(m, Message)]
    blocks: list[HeaderMap] = []
    for chunk in part_text(part).replace("\r\n", "\n").split("\n\n"):
        if chunk.strip():
            parsed = HeaderParser(policy=policy.compat32).parsestr(chunk.strip("\n") + "\n")
            blocks.append(HeaderMap.of(parsed))
    return blocks


def _returned_headers(part: Message) -> HeaderMap:
    payload = part.get_payload()
    if isinstance(payload, list):
        inner = next((m for m in payload if isinstance(m, Message)), None)
        return HeaderMap.of(inner) if inner is not None else HeaderMap(())
    return HeaderMap.of(HeaderParser(policy=policy.compat32).parsestr(part_text(part)))


def _field(block: HeaderMap, name: str) -> str:
    return one_line(clean_text(unfold(block.first(name) or "")), 300)


def _recipient(block: HeaderMap) -> str:
    value = _field(block, "final-recipient") or _field(block, "original-recipient")
    return value.split(";", 1)[-1].strip()  # "rfc822; ana@example.com"


def _error_text(recipients: Sequence[HeaderMap]) -> tuple[str | None, bool]:
    """The readable reason, grouped by identical failures, and whether any recipient failed."""
    groups: dict[str, list[str]] = {}
    failed = not recipients
    for block in recipients:
        action = _field(block, "action").lower()
        failed = failed or action in ("failed", "")
        reason = " ".join(
            v for v in (action, _field(block, "status"), _field(block, "diagnostic-code")) if v
        )
        who = groups.setdefault(reason, [])
        if (address := _recipient(block)) and address not in who:
            who.append(address)
    parts = [f"{reason} ({', '.join(who)})" if who else reason for reason, who in groups.items()]
    text = " | ".join(p for p in parts if p)
    return (text[:MAX_REPORT_ERROR] or None), failed


def read_report(message: Message, own_refs: Sequence[str]) -> Report | None:
    """A multipart/report (RFC 6522) read: delivery status (RFC 3464) or other feedback."""
    candidates = [message]
    payload = message.get_payload()
    if message.get_content_type() != "multipart/report" and isinstance(payload, list):
        candidates = [m for m in payload if isinstance(m, Message)]  # a report wrapped once
    report = next((m for m in candidates if m.get_content_type() == "multipart/report"), None)
    if report is None:
        return None
    body = report.get_payload()
    if isinstance(body, str):  # boundary lost (e.g. a truncated Content-Type): find it
        rescued = salvage(report, "multipart/report")
        body = rescued.get_payload() if rescued is not None else []
    parts = [m for m in body if isinstance(m, Message)] if isinstance(body, list) else []
    status = next((p for p in parts if p.get_content_type() in _STATUS_TYPES), None)
    report_type = (param(report, "report-type") or "").strip().lower()
    if status is None and "delivery-status" not in report_type:
        if report_type == "disposition-notification":  # RFC 8098 read receipt
            return Report("disposition notification")
        return Report(f"report ({report_type or 'unknown type'})")
    blocks = _blocks(status) if status is not None else []
    per_message = blocks[0] if blocks else HeaderMap(())
    recipients = [b for b in blocks[1:] if "action" in b or "final-recipient" in b]
    error, failed = _error_text(recipients)
    ids: dict[str, None] = {}
    for name in ("original-message-id", "x-original-message-id"):
        ids.update(dict.fromkeys(message_ids(per_message.first(name))))
    for part in parts:
        if part.get_content_type() in _RETURNED_TYPES:
            ids.update(dict.fromkeys(message_ids(_returned_headers(part).first("message-id"))))
    ids.update(dict.fromkeys(own_refs))
    # Only failures report on a message: a "delayed" or "delivered" notice is automatic
    # mail, but the notification it names was not lost.
    return Report("delivery status notification", tuple(ids) if failed else (), error)
