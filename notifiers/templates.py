"""Rendering of outbound messages from the Jinja2 templates in ``notifiers/templates/<lang>/``.

A template named ``ack_email`` is ``ack_email.subject.j2`` (one line), ``ack_email.txt.j2``
(the text body) and, optionally, ``ack_email.html.j2`` (an HTML alternative, autoescaped:
customer text never becomes markup). Unknown languages fall back to the default language.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
LANGUAGES = ("es", "en")


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    body: str
    html: str | None = None


class TemplateRenderer:
    """Loads templates once (``reload`` on SIGHUP) and renders subject + body."""

    def __init__(self, directory: Path = TEMPLATE_DIR, default_language: str = "es") -> None:
        self.default_language = default_language
        # Plain-text output: autoescape would corrupt "&" and "<" in customer subjects.
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(directory)),
            autoescape=False,
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=False,
            # No stat() of the template file on every render: SIGHUP reloads explicitly.
            auto_reload=False,
        )
        self._html = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(directory)),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            auto_reload=False,
        )

    def reload(self) -> None:
        for env in (self._env, self._html):
            if env.cache is not None:
                env.cache.clear()

    def render(self, name: str, language: str, context: dict[str, Any]) -> Rendered:
        lang = language if language in LANGUAGES else self.default_language
        try:
            subject_t = self._env.get_template(f"{lang}/{name}.subject.j2")
            subject = " ".join(subject_t.render(context).split())
        except jinja2.TemplateNotFound:
            subject = ""
        body = self._env.get_template(f"{lang}/{name}.txt.j2").render(context)
        try:
            html: str | None = self._html.get_template(f"{lang}/{name}.html.j2").render(context)
        except jinja2.TemplateNotFound:
            html = None
        return Rendered(subject=subject, body=body.strip() + "\n", html=html)
