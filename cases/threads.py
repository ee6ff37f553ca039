"""Which case a message continues: reply headers, the subject tag, then same sender + subject.

In order (first hit wins):
1. In-Reply-To / References naming a Message-ID we stored: a customer's earlier mail
   (messages.external_id) or one of our own notifications (notifications.message_id).
   Message-IDs are not guessable, so any sender may continue a case this way (a colleague
   in Cc answering counts).
2. A delivery status notification about one of our notifications threads into its case.
3. The subject tag ``[CAS-000123]`` (in a chat or text message: the number in its text),
   but only for the case's own customer: a number typed into a subject must not let a
   stranger write into someone else's case.
4. An earlier reply naming this message's Message-ID (the reply arrived first).
5. Email only, when enabled: the same customer with the same normalized subject on a case
   updated within ``same_subject_days``.
6. Chat and SMS: the customer's open conversation on that channel within
   ``chat_window_hours`` (``cases.chat_threads``).
The same rules hold between the messages of one batch, in arrival order: a reply that is
committed together with the message it answers, or several quick mails from one sender
with one subject, continue the case the first of them opens (``Work.joins``).
A hit on a case merged into another lands on the case it was merged into. A hit on a
closed case is reopened or becomes a new case linked to it, per policy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.engine import Connection

from cases.chat_threads import Mentions, chat_window, is_chat
from cases.lookups import Work
from cases.statements import (
    ANSWERED_BY,
    CASE_STATES,
    CASE_STATES_HELD,
    CASES_BY_NUMBER,
    MESSAGES_BY_REF,
    NOTIFICATIONS_BY_REF,
    RECENT_CASES_OF,
)
from routing.catalog import CatalogSnapshot

# "Re:", "RE :", "Fwd:", "RV:" (Spanish Outlook), "AW:"/"WG:" (German), "R:"/"I:" (Italian)
# and a leading tag like "[CAS-000123]", repeated.
_PREFIX = re.compile(
    r"^\s*(?:(?:re|fwd?|rv|aw|wg|sv|vs|r|i|enc|res)\s*(?:\[\d+\])?\s*:\s*|\[[^\]]*\]\s*)+",
    re.IGNORECASE,
)


def normalize_subject(subject: str) -> str:
    """Subject without reply/forward prefixes and tags, case- and space-folded."""
    return " ".join(_PREFIX.sub("", subject or "").split()).casefold()


@dataclass(frozen=True, slots=True)
class ThreadingPolicy:
    same_subject_days: int = 7
    reply_to_closed: str = "reopen"  # reopen | new_case
    reopen_status: str = "Abierta"
    chat_window_hours: float = 24.0


def find_threads(
    conn: Connection,
    work: list[Work],
    tag: re.Pattern[str],
    policy: ThreadingPolicy,
    catalog: CatalogSnapshot,
    now: datetime,
    mentions: Mentions | None = None,
) -> None:
    """Set ``case_id``/``outcome`` on the work items that continue a case. ``mentions``
    finds a case number in a chat message's text (``cases.chat_threads``)."""
    _parents(conn, [w for w in work if w.item.msg.parent_case])
    work = [w for w in work if not w.item.msg.parent_case]
    refs = {ref for w in work for ref in (*w.item.msg.in_reply_to, *w.item.msg.reports_on)}
    by_ref: dict[str, int] = {}
    if refs:
        rows = conn.execute(MESSAGES_BY_REF, {"refs": sorted(refs)})
        by_ref = {r.external_id: r.case_id for r in rows}
        rows = conn.execute(NOTIFICATIONS_BY_REF, {"refs": sorted(refs)})
        by_ref.update({r.message_id: r.case_id for r in rows})
    tags = {w: m.group(1) for w in work if (m := tag.search(w.item.msg.subject))}
    if mentions is not None:
        for w in work:
            if w not in tags and is_chat(w) and (number := mentions(w.item.msg.text)):
                tags[w] = number
    by_number: dict[str, tuple[int, int]] = {}
    if tags:
        rows = conn.execute(CASES_BY_NUMBER, {"numbers": sorted(set(tags.values()))})
        by_number = {r.number: (r.id, r.customer_id) for r in rows}
    for w in work:
        msg = w.item.msg
        hit = next((by_ref[r] for r in (*msg.in_reply_to, *msg.reports_on) if r in by_ref), None)
        if hit is None and w in tags and tags[w] in by_number:
            case_id, owner = by_number[tags[w]]
            if w.customer_id is not None and owner == w.customer_id:
                hit = case_id
        if hit is not None:
            w.case_id, w.outcome = hit, "continued"
    _answered_earlier(conn, [w for w in work if w.case_id is None])
    _same_subject(conn, [w for w in work if w.case_id is None], policy, now)
    chat_window(conn, [w for w in work if w.case_id is None], policy.chat_window_hours,
                catalog, now)  # fmt: skip
    _follow_merges(conn, [w for w in work if w.case_id is not None])
    _within_batch(work, policy)
    _closed_cases(conn, [w for w in work if w.case_id is not None], policy, catalog)


def _answered_earlier(conn: Connection, work: list[Work]) -> None:
    """An original that arrives after a reply to it (deliveries finish in any order)
    continues the reply's case."""
    mail = {w.item.msg.external_id: w for w in work if w.item.msg.channel.value == "email"}
    if not mail:
        return
    for r in conn.execute(ANSWERED_BY, {"ids": sorted(mail)}):
        w = mail.get(r.ref)
        if w is not None and w.case_id is None:
            w.case_id, w.outcome = r.case_id, "continued"
            w.reasons = ("a reply to it arrived first",)


def _customer_key(w: Work) -> tuple[str, int] | None:
    """Who sent it, for batch-mates whose customer may not exist yet."""
    if w.customer_id is not None:
        return ("id", w.customer_id)
    if w.new_customer is not None:
        return ("new", w.new_customer)
    return None


def _within_batch(work: list[Work], policy: ThreadingPolicy) -> None:
    """Apply the reply and subject rules between batch-mates, in either order.

    Batch-mates linked by a reply (In-Reply-To naming a batch-mate's Message-ID, whichever
    arrived first: concurrent SMTP sessions finish in any order) or by sender and subject
    form one thread. A thread with a member that continues a known case continues it
    whole; otherwise its first member opens the case and the others join it.
    """
    group = list(range(len(work)))

    def root(i: int) -> int:
        while group[i] != i:
            group[i] = group[group[i]]
            i = group[i]
        return i

    first: dict[object, int] = {}  # a Message-ID or (sender, subject) → first batch-mate
    for i, w in enumerate(work):
        msg = w.item.msg
        keys: list[object] = []
        if is_chat(w) and (sender := _customer_key(w)) is not None:
            keys.append((sender, msg.channel.value))  # one conversation per batch
        if msg.channel.value == "email":
            # The id it is stored under: a reused Message-ID is another message's.
            keys.append(("id", w.external_id or msg.external_id))
            sender, subject = _customer_key(w), normalize_subject(msg.subject)
            if policy.same_subject_days > 0 and sender and subject:
                keys.append((sender, subject))
        for key in keys:
            group[root(i)] = root(first.setdefault(key, i))
    for i, w in enumerate(work):
        for ref in w.item.msg.in_reply_to:
            if ("id", ref) in first:
                group[root(i)] = root(first[("id", ref)])
    threads: dict[int, list[Work]] = {}
    for i, w in enumerate(work):
        threads.setdefault(root(i), []).append(w)
    for members in threads.values():
        if len(members) > 1:
            _join(members)


def _join(members: list[Work]) -> None:
    known = next((w.case_id for w in members if w.case_id is not None), None)
    opener = members[0] if known is None else None
    for w in members:
        if w.case_id is not None or w is opener:
            continue
        if known is not None:
            w.case_id, w.outcome = known, "continued"
            w.reasons = ("same thread as a message of the same batch",)
        else:
            w.joins, w.outcome = opener, "continued"
            w.reasons = ("continues a case opened in the same batch",)


def _follow_merges(conn: Connection, work: list[Work]) -> None:
    """A message for a case merged into another goes to the case it was merged into.

    The cases are read with a share lock: a merge running meanwhile either commits first
    (and is seen here) or waits for this batch and then moves its messages too.
    """
    pending = {w.case_id for w in work if w.case_id is not None}
    target: dict[int, int] = {}
    for _hop in range(20):  # chains are short; the bound guards against a corrupt loop
        if not pending:
            break
        rows = conn.execute(CASE_STATES_HELD, {"ids": sorted(pending)})
        pending = set()
        for r in rows:
            if r.merged_into_id is not None:
                target[r.id] = r.merged_into_id
                pending.add(r.merged_into_id)
    for w in work:
        seen = 0
        while w.case_id in target and seen < 20:
            w.case_id = target[w.case_id]
            seen += 1


def _parents(conn: Connection, work: list[Work]) -> None:
    if not work:
        return
    numbers = sorted({w.item.msg.parent_case or "" for w in work})
    rows = conn.execute(CASES_BY_NUMBER, {"numbers": numbers})
    ids = {r.number: r.id for r in rows}
    for w in work:
        w.parent_case_id = ids.get(w.item.msg.parent_case or "")


def _same_subject(
    conn: Connection, work: list[Work], policy: ThreadingPolicy, now: datetime
) -> None:
    candidates = [
        w
        for w in work
        if w.item.msg.channel.value == "email"
        and w.customer_id is not None
        and normalize_subject(w.item.msg.subject)
    ]
    if policy.same_subject_days <= 0 or not candidates:
        return
    since = now - timedelta(days=policy.same_subject_days)
    customers = sorted({w.customer_id for w in candidates if w.customer_id is not None})
    rows = conn.execute(RECENT_CASES_OF, {"customers": customers, "since": since})
    latest: dict[tuple[int, str], int] = {}
    for r in rows:
        latest.setdefault((r.customer_id, normalize_subject(r.title)), r.id)
    for w in candidates:
        assert w.customer_id is not None
        case_id = latest.get((w.customer_id, normalize_subject(w.item.msg.subject)))
        if case_id is not None:
            w.case_id, w.outcome = case_id, "continued"
            w.reasons = (f"same sender and subject within {policy.same_subject_days} days",)


def _closed_cases(
    conn: Connection, work: list[Work], policy: ThreadingPolicy, catalog: CatalogSnapshot
) -> None:
    """Reopen the closed cases being answered, or turn the answer into a linked new case."""
    if not work:
        return
    rows = conn.execute(
        CASE_STATES, {"ids": sorted({w.case_id for w in work if w.case_id is not None})}
    )
    closed = {
        r.id
        for r in rows
        if (status := catalog.get("statuses", r.status_id)) is not None and status.kind == "closed"
    }
    for w in work:
        if w.case_id not in closed:
            continue
        if policy.reply_to_closed == "new_case" and not w.item.msg.auto_submitted:
            w.parent_case_id, w.case_id, w.outcome = w.case_id, None, ""
        elif not w.item.msg.auto_submitted:  # a bounce or auto-reply never reopens
            w.reopen = True
