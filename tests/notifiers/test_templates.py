"""The notice templates: every one exists per channel in Spanish and English and renders
with the documented context; HTML escapes customer text; SMS and push stay within their
limits with long values; broken templates are found with their file and line, and a
reload keeps working templates until the new ones are all good."""

from __future__ import annotations

import shutil
from pathlib import Path

import jinja2
import pytest

from notifiers.templates import (
    CASELESS,
    CONTEXT,
    LANGUAGES,
    NOTICES,
    PUSH_BODY_MAX,
    PUSH_TITLE_MAX,
    SAMPLE_CONTEXT,
    SMS_MAX_SEGMENTS,
    TEMPLATE_DIR,
    TemplateError,
    TemplateRenderer,
    clip,
    nl2br,
    sms_segments,
    utf16_len,
)

EXPECTED = {f"{what}_{channel}" for what, (_, channels) in NOTICES.items() for channel in channels}
CUSTOMER = [f"{w}_{c}" for w, (who, chans) in NOTICES.items() if who == "customer" for c in chans]
ALL = sorted(EXPECTED)


def about_a_case(name: str) -> bool:
    """Every notice names its case but those about no case: the number itself (SMS
    opt-out), a chat's greeting or refusal (Telegram)."""
    return name.rpartition("_")[0] not in CASELESS


# Long, accented values (UCS-2 SMS: 70 units a segment) and a long case number.
LONG = {
    "case_number": "CAS-000000123456",
    "title": "Sin conexión a Internet en la sucursal céntrica " * 8,
    "text": "Revisamos la línea y el módem; por favor reinícielo y avísenos. " * 10,
    "customer_name": "María José Fernández de la Peña y Gutiérrez " * 4,
    "category": "Problema grave de conexión " * 5,
    "status": "Esperando respuesta del cliente " * 4,
    "status_kind": "closed",
    "previous_status": "En Progreso " * 5,
    "priority": "Urgentísima " * 6,
    "area": "Técnica " * 10,
    "technician_name": "Juan Gómez " * 10,
    "agent_name": "Juan Gómez " * 10,
    "description": "Desde ayer no tengo señal 😀 en ninguna computadora. " * 20,
    "solution": "Se reemplazó el módem. " * 10,
    "url": "https://soporte.example.com/console/cases/CAS-000000123456",
}


@pytest.fixture(scope="module")
def renderer() -> TemplateRenderer:
    return TemplateRenderer()


def copy_templates(tmp_path: Path) -> Path:
    target = tmp_path / "templates"
    shutil.copytree(TEMPLATE_DIR, target)
    return target


# --- what exists --------------------------------------------------------------------------


def test_every_notice_has_its_templates_in_both_languages(renderer: TemplateRenderer) -> None:
    assert set(renderer.names()) == EXPECTED
    for name in ALL:
        channel = name.rpartition("_")[2]
        for lang in LANGUAGES:
            folder = TEMPLATE_DIR / lang
            assert (folder / f"{name}.txt.j2").is_file(), (lang, name)
            if channel in ("email", "push", "telegram"):
                assert (folder / f"{name}.subject.j2").is_file(), (lang, name)
            if channel == "email":  # every email has an HTML alternative
                assert (folder / f"{name}.html.j2").is_file(), (lang, name)
    assert renderer.problems == () and renderer.check() == []


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("language", LANGUAGES)
def test_renders_with_the_full_context(
    renderer: TemplateRenderer, name: str, language: str
) -> None:
    out = renderer.render(name, language, SAMPLE_CONTEXT)
    everything = f"{out.subject}\n{out.body}\n{out.html or ''}"
    assert "{{" not in everything and "{%" not in everything
    assert out.body.strip() and out.body.endswith("\n")
    assert SAMPLE_CONTEXT["case_number"] in everything or not about_a_case(name)
    if name.endswith("_email"):
        assert f"[{SAMPLE_CONTEXT['case_number']}]" in out.subject
        assert out.html and out.html.lstrip().startswith("<!DOCTYPE html>")
        assert f'<html lang="{language}">' in out.html
    else:
        assert out.html is None


@pytest.mark.parametrize("name", ALL)
def test_spanish_and_english_differ_and_unknown_languages_get_spanish(
    renderer: TemplateRenderer, name: str
) -> None:
    es = renderer.render(name, "es", SAMPLE_CONTEXT)
    en = renderer.render(name, "en", SAMPLE_CONTEXT)
    assert es != en
    assert renderer.render(name, "pt", SAMPLE_CONTEXT) == es


def test_opt_out_confirmations_name_the_keyword_that_undoes_them(
    renderer: TemplateRenderer,
) -> None:
    assert "ALTA" in renderer.render("optout_sms", "es", {}).body
    assert "BAJA" in renderer.render("optin_sms", "es", {}).body
    assert "START" in renderer.render("optout_sms", "en", {}).body
    assert "STOP" in renderer.render("optin_sms", "en", {}).body


def test_spanish_uses_the_product_s_words(renderer: TemplateRenderer) -> None:
    ack = renderer.render("ack_email", "es", SAMPLE_CONTEXT)
    assert "abrimos el caso CAS-000123" in ack.body and "Recibimos su consulta" in ack.subject
    assigned = renderer.render("assigned_email", "es", SAMPLE_CONTEXT)
    assert "Se le asignó el caso" in assigned.body and "Prioridad: Alta" in assigned.body
    status = renderer.render("status_sms", "es", SAMPLE_CONTEXT)
    assert "«En Progreso»" in status.body


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("language", LANGUAGES)
def test_optional_keys_may_be_left_out_or_none(
    renderer: TemplateRenderer, name: str, language: str
) -> None:
    minimal = {"case_number": "CAS-000009", "title": "Consulta", "text": "Listo."}
    out = renderer.render(name, language, minimal)
    assert "CAS-000009" in out.subject + out.body or not about_a_case(name)
    nones = {**minimal, "customer_name": None, "category": None, "url": None}
    assert "None" not in renderer.render(name, language, nones).body


def test_a_missing_required_key_is_an_error_not_a_blank(renderer: TemplateRenderer) -> None:
    with pytest.raises(jinja2.UndefinedError, match="text"):
        renderer.render("reply_email", "es", {"case_number": "CAS-1", "title": "x"})
    assert set(CONTEXT) >= set(SAMPLE_CONTEXT) and set(SAMPLE_CONTEXT) >= set(CONTEXT)


# --- escaping and wording -----------------------------------------------------------------

HOSTILE = {
    **SAMPLE_CONTEXT,
    "title": "<script>alert('t')</script> & Co",
    "customer_name": "<b>Ana</b>",
    "text": "Hola <img src=x onerror=alert(1)>\nSegunda línea & más",
    "description": "<a href='javascript:x'>clic</a>",
    "solution": "<i>cambio</i>",
}


@pytest.mark.parametrize("name", sorted(n for n in EXPECTED if n.endswith("_email")))
def test_html_escapes_customer_text_and_text_parts_keep_it(
    renderer: TemplateRenderer, name: str
) -> None:
    out = renderer.render(name, "es", HOSTILE)
    assert out.html is not None
    for raw in ("<script>", "<b>Ana", "<img", "<a href='javascript", "<i>cambio"):
        assert raw not in out.html
    assert "<script>alert('t')</script> & Co" in out.subject  # a subject is plain text
    if name != "reply_email":  # a reply shows the agent's text alone
        assert "&lt;script&gt;alert(&#39;t&#39;)&lt;/script&gt; &amp; Co" in out.html
    else:
        assert "Hola &lt;img src=x onerror=alert(1)&gt;<br>\nSegunda línea &amp; más" in out.html
        assert "Hola <img src=x onerror=alert(1)>\nSegunda línea & más" in out.body


def test_a_reply_quotes_nothing(renderer: TemplateRenderer) -> None:
    for channel in ("email", "sms", "telegram"):
        out = renderer.render(f"reply_{channel}", "es", SAMPLE_CONTEXT)
        assert SAMPLE_CONTEXT["text"][:40] in out.body
        assert SAMPLE_CONTEXT["description"][:20] not in out.body + (out.html or "")


def test_a_closed_case_is_told_how_to_come_back(renderer: TemplateRenderer) -> None:
    closed = {**SAMPLE_CONTEXT, "status": "Cerrada", "status_kind": "closed"}
    assert "Si el problema persiste" in renderer.render("status_email", "es", closed).body
    still_open = renderer.render("status_email", "es", SAMPLE_CONTEXT)
    assert "Si el problema persiste" not in still_open.body
    assert "If the problem persists" in renderer.render("status_telegram", "en", closed).body
    assert "Reply if the problem persists" in renderer.render("status_sms", "en", closed).body


def test_nl2br_and_clip() -> None:
    assert nl2br("a <b>\n\nc") == "a &lt;b&gt;<br>\n<br>\nc"
    assert clip("  uno\n dos  ", 20) == "uno dos"
    assert clip("abcdef", 4) == "abc…" and utf16_len(clip("😀" * 10, 5)) <= 5


# --- lengths ------------------------------------------------------------------------------


def test_sms_segments_count_as_phones_do() -> None:
    assert sms_segments("a" * 160) == 1 and sms_segments("a" * 161) == 2
    assert sms_segments("ñ" * 160) == 1  # ñ is in the GSM alphabet
    assert sms_segments("€" * 80) == 1 and sms_segments("€" * 81) == 2  # extension: 2 each
    assert sms_segments("á" * 70) == 1 and sms_segments("á" * 71) == 2  # á is not: UCS-2
    assert sms_segments("á" * 134) == 2 and sms_segments("á" * 135) == 3


@pytest.mark.parametrize("name", sorted(n for n in EXPECTED if n.endswith("_sms")))
@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", ["open", "closed"])
def test_sms_stays_within_two_segments_with_long_values(
    renderer: TemplateRenderer, name: str, language: str, kind: str
) -> None:
    out = renderer.render(name, language, {**LONG, "status_kind": kind})
    assert sms_segments(out.body) <= SMS_MAX_SEGMENTS, (len(out.body), out.body)
    assert LONG["case_number"] in out.body or not about_a_case(name)


@pytest.mark.parametrize("name", sorted(n for n in EXPECTED if n.endswith("_push")))
@pytest.mark.parametrize("language", LANGUAGES)
def test_push_title_and_body_fit_with_long_values(
    renderer: TemplateRenderer, name: str, language: str
) -> None:
    out = renderer.render(name, language, LONG)
    assert utf16_len(out.subject) <= PUSH_TITLE_MAX, out.subject
    assert utf16_len(out.body) <= PUSH_BODY_MAX, out.body
    assert LONG["case_number"] in out.subject


# --- broken templates ---------------------------------------------------------------------


def test_check_names_the_file_and_line_of_a_syntax_error(tmp_path: Path) -> None:
    folder = copy_templates(tmp_path)
    broken = folder / "es" / "status_sms.txt.j2"
    broken.write_text("Su caso {{ case_number }}\nestá {% if status %}{{ status }}\n")
    problems = TemplateRenderer(folder).check()
    [problem] = problems
    assert problem.path == broken and problem.line == 2
    assert str(problem).startswith(f"{broken}:2: ") and "endif" in problem.message


def test_check_names_the_line_of_an_unknown_name_or_filter(tmp_path: Path) -> None:
    folder = copy_templates(tmp_path)
    typo = folder / "en" / "reply_sms.txt.j2"
    typo.write_text("Case {{ case_number }}:\n{{ txet }}\n")
    unknown_filter = folder / "es" / "ack_sms.txt.j2"
    unknown_filter.write_text("Caso {{ case_number|shout }}\n")
    problems = {p.path: p for p in TemplateRenderer(folder).check()}
    assert problems[typo].line == 2 and "'txet' is undefined" in problems[typo].message
    assert problems[unknown_filter].line == 1 and "shout" in problems[unknown_filter].message


def test_a_broken_template_fails_alone(tmp_path: Path) -> None:
    folder = copy_templates(tmp_path)
    (folder / "es" / "ack_sms.txt.j2").write_text("{% for x in %}\n")
    renderer = TemplateRenderer(folder)
    assert [p.path.name for p in renderer.problems] == ["ack_sms.txt.j2"]
    assert "CAS-000123" in renderer.render("ack_email", "es", SAMPLE_CONTEXT).body
    with pytest.raises(jinja2.TemplateSyntaxError):
        renderer.render("ack_sms", "es", SAMPLE_CONTEXT)


def test_reload_keeps_the_working_templates_until_the_new_ones_are_all_good(
    tmp_path: Path,
) -> None:
    folder = copy_templates(tmp_path)
    renderer = TemplateRenderer(folder)
    before = renderer.render("ack_sms", "es", SAMPLE_CONTEXT).body
    target = folder / "es" / "ack_sms.txt.j2"
    target.write_text("Nuevo texto {{ case_number }}\n")
    (folder / "en" / "ack_email.html.j2").write_text("{% extends 'en/_email.html.j2' %}\n{% block")
    with pytest.raises(TemplateError) as info:
        renderer.reload()
    [problem] = info.value.problems
    assert problem.path.name == "ack_email.html.j2" and problem.line == 2
    # Nothing of the new set is used: not even the file that was fine.
    assert renderer.render("ack_sms", "es", SAMPLE_CONTEXT).body == before
    assert renderer.problems == ()
    shutil.copy(TEMPLATE_DIR / "en" / "ack_email.html.j2", folder / "en" / "ack_email.html.j2")
    renderer.reload()
    assert renderer.render("ack_sms", "es", SAMPLE_CONTEXT).body == "Nuevo texto CAS-000123\n"


def test_rendering_reads_no_file(tmp_path: Path) -> None:
    folder = copy_templates(tmp_path)
    renderer = TemplateRenderer(folder)
    shutil.rmtree(folder)  # what a render needs was read at load
    assert "CAS-000123" in renderer.render("watch_email", "en", SAMPLE_CONTEXT).subject
