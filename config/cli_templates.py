"""The ``ventanilla templates`` commands: ``preview`` renders a notice against a real case,
as the outbox would render it, and sends nothing.

``NAME`` is a template (``ack_email``) or a notice (``ack``); ``--channel`` picks the
channel (a notice without one is shown on every channel it has). The context is built
from the case as read through the read path: its number, title, customer, category,
status (and the one before the last change), priority, area, technician, description,
solution and a link; ``text`` is ``--text``, else the last note (``watch``) or the last
message. Exit codes: 0 rendered, 1 no such case or a template that does not render,
2 bad usage.
"""

from __future__ import annotations

import argparse
from typing import Any, TextIO

import jinja2

from config.app import Services
from config.cli_output import json_out
from notifiers.templates import (
    LANGUAGES,
    NOTICES,
    PUSH_BODY_MAX,
    PUSH_TITLE_MAX,
    Rendered,
    TemplateRenderer,
    sms_segments,
    utf16_len,
)
from routing.catalog import CatalogSnapshot
from storage.queries import CaseDetail, TimelineEvent, TimelineMessage, get_case

CHANNELS = ("email", "sms", "push", "telegram")


def template_names(renderer: TemplateRenderer, name: str, channel: str | None) -> list[str] | str:
    """The templates ``NAME`` [``--channel``] stands for, or why none."""
    known = renderer.names()
    what, _, suffix = name.rpartition("_")
    if suffix not in CHANNELS:
        what, suffix = name, ""
    if channel:
        wanted = [f"{what}_{channel}"]
    elif suffix:
        wanted = [name]
    else:
        wanted = [f"{what}_{c}" for c in NOTICES.get(what, ("", ()))[1]] or [
            n for n in known if n.startswith(f"{what}_")
        ]
    found = [n for n in wanted if n in known]
    if not found:
        shown = f"{what}_{channel}" if channel else name
        return f"no template {shown!r}; templates: {', '.join(known)}"
    return found


def preview_context(
    case: CaseDetail, catalog: CatalogSnapshot, public_url: str, what: str, text: str | None
) -> dict[str, Any]:
    """What the outbox would get for this case (see ``notifiers.templates.CONTEXT``)."""
    c = case.row
    category = catalog.find("categories", c.category)
    to_customer = NOTICES.get(what, ("customer", ()))[0] == "customer"
    notes = [e for e in case.timeline if isinstance(e, TimelineEvent) and e.kind == "note"]
    messages = [m for m in case.timeline if isinstance(m, TimelineMessage)]
    if text is None:
        if what == "watch" and notes:
            text = str(notes[-1].detail.get("text", ""))
        elif messages:
            text = messages[-1].text.strip()
        else:
            text = ""
    agent = notes[-1].actor if what == "watch" and notes else (c.assignee or "")
    shown_category = c.category or ""
    if category is not None:
        shown_category = category.public_name if to_customer else category.name
    return {
        "case_number": c.number,
        "title": c.title,
        "text": text,
        "customer_name": c.customer_name or "",
        "category": shown_category,
        "status": c.status,
        "status_kind": case.status_kind,
        "previous_status": _previous_status(case),
        "priority": c.priority,
        "area": c.area or "",
        "technician_name": c.assignee or "",
        "agent_name": agent,
        "description": case.description.strip(),
        "solution": case.solution or "",
        "url": f"{public_url.rstrip('/')}/console/cases/{c.number}",
    }


def _previous_status(case: CaseDetail) -> str:
    for event in reversed(case.timeline):
        if isinstance(event, TimelineEvent) and event.kind == "updated":
            change = event.detail.get("changes", {}).get("status")
            if isinstance(change, dict):
                return str(change.get("before") or "")
    return ""


def _render_error(exc: Exception) -> str:
    if isinstance(exc, jinja2.TemplateSyntaxError):
        return f"{exc.filename or exc.name}:{exc.lineno}: {exc.message}"
    return f"{type(exc).__name__}: {exc}"


def _print_one(
    name: str, number: str, language: str, r: Rendered, args: argparse.Namespace, out: TextIO
) -> None:
    channel = name.rpartition("_")[2]
    print(f"== {name} ({language}) for case {number}", file=out)
    if r.subject:
        label = "title" if channel == "push" else "subject"
        print(f"{label}: {r.subject}", file=out)
    if channel == "email":
        if r.html is None:
            print("html part: no", file=out)
        elif not args.html:
            print(f"html part: yes ({len(r.html)} characters; --html shows it)", file=out)
    elif channel == "sms":
        text = r.body.strip()
        print(f"length: {utf16_len(text)} characters, {sms_segments(text)} SMS segment(s)",
              file=out)  # fmt: skip
    elif channel == "push":
        print(f"length: title {utf16_len(r.subject)}/{PUSH_TITLE_MAX}, "
              f"body {utf16_len(r.body.strip())}/{PUSH_BODY_MAX}", file=out)  # fmt: skip
    print("", file=out)
    print(r.body.rstrip("\n"), file=out)
    if channel == "email" and args.html and r.html is not None:
        print("\n-- html --", file=out)
        print(r.html.rstrip("\n"), file=out)
    print("", file=out)


async def cmd_templates_preview(services: Services, args: argparse.Namespace, out: TextIO) -> int:
    renderer = services.renderer
    names = template_names(renderer, args.name, args.channel)
    if isinstance(names, str):
        print(names, file=out)
        return 2
    case = await services.db.read(get_case, args.case)
    if case is None:
        print(f"no case {args.case}", file=out)
        return 1
    language = args.language or case.language
    if language not in LANGUAGES:
        language = renderer.default_language
    what = names[0].rpartition("_")[0]
    context = preview_context(
        case, services.catalog.current, services.settings.http.public_url, what, args.text
    )
    code, shown = 0, []
    for name in names:
        try:
            rendered = renderer.render(name, language, context)
        except Exception as exc:  # a broken or misused template: say where
            print(f"{name} ({language}) does not render: {_render_error(exc)}", file=out)
            code = 1
            continue
        if args.json:
            shown.append({"template": name, "language": language, "case": case.row.number,
                          "subject": rendered.subject, "text": rendered.body,
                          "html": rendered.html})  # fmt: skip
        else:
            _print_one(name, case.row.number, language, rendered, args, out)
    if args.json:
        json_out({"items": shown, "next_cursor": None}, out)
    return code


def add_templates_parsers(subparsers: Any) -> None:
    templates = subparsers.add_parser("templates", help="notification templates")
    sub = templates.add_subparsers(dest="templates_cmd", required=True)
    preview = sub.add_parser(
        "preview", help="render a template against a real case, sending nothing"
    )
    preview.add_argument("name", help="a template (ack_email) or a notice (ack: every channel)")
    preview.add_argument("--case", required=True, help="case number, e.g. CAS-000123")
    preview.add_argument("--channel", choices=CHANNELS, help="the channel's template")
    preview.add_argument("--language", choices=LANGUAGES, help="default: the case's language")
    preview.add_argument("--text", help="the reply or note text (default: the case's last one)")
    preview.add_argument("--html", action="store_true", help="print the HTML part of an email")
    preview.add_argument("--json", action="store_true", help="print JSON")
    preview.set_defaults(handler=cmd_templates_preview)
