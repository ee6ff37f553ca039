"""The log page's filters as a browser sends them and as the form shows them again.

A filter form sends repeated keys for its checkboxes (``status=failed&status=dead``) and
bare dates for the range; the log's queries take one comma-separated value per key
(``storage.log_filters``). This module goes both ways: request → the parameters the
queries read, and those parameters (a saved filter's too) → the form's values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from multidict import MultiMapping
from yarl import URL

from storage.log_filters import FILTER_PARAMS

# What the page's form offers; the rest of FILTER_PARAMS still work when given in a link
# (a case's or a customer's log, a resend chain).
MULTI = ("channel", "status")


def request_params(query: MultiMapping[Any]) -> dict[str, str]:
    """The filter parameters in a query string or form: repeated keys joined, blanks
    dropped (an empty field means "any")."""
    params: dict[str, str] = {}
    for name in FILTER_PARAMS:
        values = [str(v).strip() for v in query.getall(name, []) if str(v).strip()]
        if values:
            params[name] = ",".join(values) if name in MULTI else values[-1]
    return params


def log_url(params: Mapping[str, str], **extra: str) -> str:
    """The log page showing ``params`` (plus ``extra``, e.g. a cursor)."""
    query = {**{k: v for k, v in params.items() if v}, **{k: v for k, v in extra.items() if v}}
    return str(URL("/console/log").with_query(query))


def _date_value(raw: str | None, *, inclusive_end: bool) -> str:
    """A range bound as a date input shows it: a bare date as is; a saved filter's
    normalized midnight-UTC ``until`` (exclusive) as the day before (inclusive)."""
    if not raw:
        return ""
    if len(raw) == 10:
        return raw
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return ""
    day: date = moment.date()
    if inclusive_end and (moment.hour, moment.minute, moment.second) == (0, 0, 0):
        day -= timedelta(days=1)
    return day.isoformat()


@dataclass(frozen=True, slots=True)
class FormValues:
    """What the filter form shows: each control's current value."""

    channel: frozenset[str] = frozenset()
    status: frozenset[str] = frozenset()
    sent: str = ""
    trigger: str = ""
    time: str = "created"
    since: str = ""
    until: str = ""
    q: str = ""
    others: dict[str, str] = field(default_factory=dict)  # given in a link, kept as hidden

    @classmethod
    def of(cls, params: Mapping[str, str]) -> FormValues:
        shown = {"channel", "status", "sent", "trigger", "time", "since", "until", "q"}
        return cls(
            channel=frozenset(v for v in params.get("channel", "").split(",") if v),
            status=frozenset(v for v in params.get("status", "").split(",") if v),
            sent=params.get("sent", ""),
            trigger=params.get("trigger", ""),
            time=params.get("time", "") or "created",
            since=_date_value(params.get("since"), inclusive_end=False),
            until=_date_value(params.get("until"), inclusive_end=True),
            q=params.get("q", ""),
            others={k: v for k, v in params.items() if k not in shown},
        )
