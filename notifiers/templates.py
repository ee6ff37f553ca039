"""Rendering of outbound messages from the Jinja2 templates in ``notifiers/templates/<lang>/``.

A template named ``ack_email`` is ``ack_email.subject.j2`` (one line), ``ack_email.txt.j2``
(the text body) and, optionally, ``ack_email.html.j2`` (an HTML alternative, autoescaped:
customer text never becomes markup). Names are ``<what>_<channel>``: a technician's notice
that fails on one channel is rendered again as ``<what>_<next channel>`` from the same
context (``notifiers.fallback``). Files whose name starts with ``_`` are shared parts
(layouts) that templates extend or include. A template missing in the wanted language, or
an unknown language, falls back to the default language.

The context every template may use (``CONTEXT`` below says what each key holds):
``case_number`` and ``title`` always; ``text`` where the notice carries one (the reply,
the note); every other key is optional and renders as an empty string when not given.
Besides Jinja2's own filters, templates have ``clip(n)`` (whitespace folded, cut to ``n``
UTF-16 code units with "…": how SMS and push count) and, in HTML, ``nl2br`` (escaped text
with its line breaks kept).

All templates are read and compiled at once into one generation, and each file is tried
with a sample of the context (a misspelt name or filter is found now, not when a notice is
queued); rendering never touches the disk. Problems name their file and line. ``check``
loads what is on disk now and reports; ``reload`` (SIGHUP) swaps in a new generation only
when it has no problem, so a broken edit never replaces working templates.
"""

from __future__ import annotations

import math
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
LANGUAGES = ("es", "en")
PARTS = ("subject", "txt", "html")

CONTEXT: dict[str, str] = {
    "case_number": "the case's number, e.g. CAS-000123 (every notice)",
    "title": "the case's title: the customer's subject or first words (every notice)",
    "text": "reply_*: the agent's reply; watch_email: the note (required there)",
    "customer_name": "the customer's name",
    "category": "the case's category (to a customer: its customer-facing description)",
    "status": "the case's status (status_*: the new one)",
    "status_kind": "status_*: open, pending or closed (the kind of the new status)",
    "previous_status": "status_*: the status before the change",
    "priority": "the case's priority",
    "area": "the area the case is routed to",
    "technician_name": "the technician the case is assigned to",
    "agent_name": "who wrote the reply or the note",
    "description": "assigned_*: the customer's message that opened the case",
    "solution": "status_*: the solution recorded on the case",
    "url": "a link to the case, for technicians and watchers",
}
# Every notice the product sends: who reads it and the channels it has a template for.
NOTICES: dict[str, tuple[str, tuple[str, ...]]] = {
    "ack": ("customer", ("email", "sms", "telegram")),  # a new case: its number
    "assigned": ("technician", ("email", "push", "telegram", "sms")),  # a case to work on
    "status": ("customer", ("email", "sms", "telegram")),  # the case's status changed
    "reply": ("customer", ("email", "sms", "telegram")),  # an agent's answer
    "watch": ("watcher", ("email",)),  # an internal note, to those following the case
    "optout": ("customer", ("sms",)),  # STOP/BAJA by SMS: nothing more will be sent
    "optin": ("customer", ("sms",)),  # START/ALTA by SMS: messages will be sent again
    "welcome": ("customer", ("telegram",)),  # a new chat's /start: how to ask for help
    "group_declined": ("customer", ("telegram",)),  # a group chat: write to us privately
}
# Notices about no case: the number itself (SMS opt-out/in), a chat's greeting or refusal
# (cases.chat_notices).
CASELESS = frozenset({"optout", "optin", "welcome", "group_declined"})
REQUIRED = ("case_number", "title", "text")  # strict: a template using one needs it
OPTIONAL: dict[str, str] = {key: "" for key in CONTEXT if key not in REQUIRED}

# What a check renders each file with: every key, realistic values.
SAMPLE_CONTEXT: dict[str, str] = {
    "case_number": "CAS-000123",
    "title": "Sin conexión a Internet desde ayer",
    "text": "Hola, ya revisamos la línea: por favor reinicie el módem y avísenos.",
    "customer_name": "Ana Pérez",
    "category": "Problema grave",
    "status": "En Progreso",
    "status_kind": "open",
    "previous_status": "Abierta",
    "priority": "Alta",
    "area": "Técnica",
    "technician_name": "Juan Gómez",
    "agent_name": "Juan Gómez",
    "description": "Desde ayer a la tarde no tengo conexión. Las luces del módem parpadean.",
    "solution": "Se reemplazó el módem.",
    "url": "https://soporte.example.com/console/cases/CAS-000123",
}

# Delivery limits the templates are written to (tests/notifiers/test_templates.py checks
# them with long values): SMS within two segments, push as most platforms show it whole.
SMS_MAX_SEGMENTS = 2
PUSH_TITLE_MAX = 65
PUSH_BODY_MAX = 240

# GSM 03.38: the default alphabet (one septet each) and its extension table (two each).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    body: str
    html: str | None = None


@dataclass(frozen=True, slots=True)
class TemplateProblem:
    """A template that does not compile or render: its file, the line, what is wrong."""

    path: Path
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else str(self.path)
        return f"{where}: {self.message}"


class TemplateError(Exception):
    """Templates with problems; ``problems`` names each file and line."""

    def __init__(self, problems: Sequence[TemplateProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(str(p) for p in self.problems))


# --- filters and lengths -----------------------------------------------------------------


def utf16_len(text: str) -> int:
    """Length as SMS (UCS-2) and most push platforms count it."""
    return len(text.encode("utf-16-le")) // 2


def clip(value: object, units: int) -> str:
    """Whitespace folded to single spaces, cut to ``units`` UTF-16 code units with "…"."""
    return cut(" ".join(str(value if value is not None else "").split()), units)


def cut(text: str, units: int) -> str:
    """``text`` cut to at most ``units`` UTF-16 code units, ending in "…" when cut (an
    astral character, two units, is never split)."""
    if utf16_len(text) <= units:
        return text
    out: list[str] = []
    used = 1  # the ellipsis
    for char in text:
        used += 2 if ord(char) > 0xFFFF else 1
        if used > units:
            break
        out.append(char)
    return "".join(out).rstrip() + "…"


def nl2br(value: object) -> Markup:
    """Escaped text whose line breaks stay line breaks in HTML."""
    lines = str(value if value is not None else "").strip().splitlines()
    return Markup("<br>\n").join(escape(line) for line in lines)


def sms_segments(text: str) -> int:
    """How many SMS segments ``text`` takes: GSM-7 when every character is in the GSM
    alphabet (160 septets, 153 per part when concatenated), else UCS-2 (70 / 67)."""
    if all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text):
        septets = sum(2 if c in GSM7_EXTENSION else 1 for c in text)
        return 1 if septets <= 160 else math.ceil(septets / 153)
    units = utf16_len(text)
    return 1 if units <= 70 else math.ceil(units / 67)


# --- one generation of templates ---------------------------------------------------------


class _Generation:
    """Every template file as read at one moment, compiled in one environment."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.sources: dict[str, tuple[str, str]] = {}  # name → (source, file path)
        self.problems: list[TemplateProblem] = []
        for path in sorted(directory.glob("**/*.j2")):
            name = path.relative_to(directory).as_posix()
            try:
                self.sources[name] = (path.read_text(encoding="utf-8"), str(path))
            except (OSError, UnicodeDecodeError) as exc:
                self.problems.append(TemplateProblem(path, None, f"cannot read: {exc}"))
        self.env = jinja2.Environment(
            loader=jinja2.FunctionLoader(self._source),
            # Plain text and subjects are not escaped ("&" and "<" in a customer's subject
            # stay as written); HTML parts are.
            autoescape=jinja2.select_autoescape(
                enabled_extensions=("html.j2",), default_for_string=False, default=False
            ),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=False,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,  # the sources never change within a generation
            cache_size=-1,  # every template stays compiled
        )
        self.env.filters["clip"] = clip
        self.env.filters["nl2br"] = nl2br
        for name in self.sources:
            try:
                self.env.get_template(name)
            except jinja2.TemplateSyntaxError as exc:
                where = Path(exc.filename or directory / name)
                self.problems.append(TemplateProblem(where, exc.lineno, exc.message or ""))
        self.problems += self._trial(SAMPLE_CONTEXT)

    def _source(self, name: str) -> tuple[str, str, Any] | None:
        found = self.sources.get(name)
        return (found[0], found[1], lambda: True) if found else None

    def has(self, name: str) -> bool:
        return name in self.sources

    def _trial(self, context: Mapping[str, Any]) -> list[TemplateProblem]:
        """Render every file that compiled with ``context`` (every documented key): finds
        a misspelt name, a missing include or layout, a filter given the wrong arguments."""
        broken = {str(p.path) for p in self.problems}
        files = {path for _, path in self.sources.values()}
        problems: list[TemplateProblem] = []
        for name, (_, path) in self.sources.items():
            if path in broken:
                continue
            try:
                self.env.get_template(name).render(context)
            except Exception as exc:
                where, line = Path(path), None
                for frame, lineno in traceback.walk_tb(exc.__traceback__):
                    if frame.f_code.co_filename in files:  # the template's own lines
                        where, line = Path(frame.f_code.co_filename), lineno
                problems.append(TemplateProblem(where, line, f"{type(exc).__name__}: {exc}"))
        return problems


# --- the renderer ------------------------------------------------------------------------


class TemplateRenderer:
    """Holds one compiled generation of templates (``reload`` on SIGHUP) and renders
    subject, text and HTML from it.

    Construction never fails: a template that does not compile or render is listed in
    ``problems`` and fails only when it is rendered. The daemon and ``config check``
    refuse to go on while there are problems; the writer process, which builds its own
    renderer, keeps working for every other template.
    """

    def __init__(self, directory: Path | None = None, default_language: str = "es") -> None:
        self.directory = directory or TEMPLATE_DIR
        self.default_language = default_language
        self._current = _Generation(self.directory)

    @property
    def problems(self) -> tuple[TemplateProblem, ...]:
        """Those of the templates in use (found when they were loaded)."""
        return tuple(self._current.problems)

    def check(self) -> list[TemplateProblem]:
        """Compile and try every template on disk now; the problems (none: all good).
        The templates in use stay as they are."""
        return _Generation(self.directory).problems

    def reload(self) -> None:
        """Take the templates on disk now, but only if every one compiles and renders;
        otherwise keep those in use and raise ``TemplateError``."""
        fresh = _Generation(self.directory)
        if fresh.problems:
            raise TemplateError(fresh.problems)
        self._current = fresh  # one assignment: a render sees the old or the new, whole

    def names(self) -> list[str]:
        """Every template name (``ack_email`` …) in any language."""
        found = set()
        for name in self._current.sources:
            lang, _, file = name.partition("/")
            stem, _, part = file.removesuffix(".j2").rpartition(".")
            if lang in LANGUAGES and part in PARTS and stem and not stem.startswith("_"):
                found.add(stem)
        return sorted(found)

    def render(self, name: str, language: str, context: Mapping[str, Any]) -> Rendered:
        generation = self._current
        lang = language if language in LANGUAGES else self.default_language
        if not generation.has(f"{lang}/{name}.txt.j2"):
            lang = self.default_language
        values = {**OPTIONAL, **{k: "" if v is None else v for k, v in context.items()}}

        def part(kind: str) -> str | None:
            file = f"{lang}/{name}.{kind}.j2"
            if kind != "txt" and not generation.has(file):
                return None
            return generation.env.get_template(file).render(values)

        subject = part("subject")
        body = part("txt") or ""
        return Rendered(
            subject=" ".join((subject or "").split()),
            body=body.strip() + "\n",
            html=part("html"),
        )
