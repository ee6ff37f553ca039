"""parse_email against the shared real-world corpus: no crash, and django-helpdesk's facts.

The corpus lives beside the repository (``../shared/corpus/email``), or, for a clone made
from a local checkout (CI's clean clone), beside the checkout it was cloned from; these
tests skip with the reason when it is in neither place (and fail under CI=true).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from intake.email.parse import EmailParseError, ParsedEmail, ParseLimits, parse_email

REPO = Path(__file__).resolve().parents[2]


def find_corpus() -> Path:
    """``shared/corpus/email`` beside this repository, else beside its local origin."""
    beside = REPO.parent / "shared" / "corpus" / "email"
    if beside.is_dir():
        return beside
    origin = subprocess.run(
        ["git", "-C", str(REPO), "config", "--get", "remote.origin.url"],
        capture_output=True, text=True, check=False,
    ).stdout.strip()  # fmt: skip
    if origin and Path(origin).is_dir():
        from_origin = Path(origin).resolve().parent / "shared" / "corpus" / "email"
        if from_origin.is_dir():
            return from_origin
    return beside


CORPUS = find_corpus()
NOT_MAIL = {"mail-parser/mail_outlook_1"}  # an Outlook .msg (OLE binary), not RFC 5322
OWN_DOMAIN = "ventanilla.localdomain"

if os.environ.get("CI") == "true" and not CORPUS.is_dir():
    # CI always runs with shared/ beside the clone: a missing corpus is a broken run.
    raise RuntimeError(f"CI=true but the email corpus is missing at {CORPUS}")

needs_corpus = pytest.mark.skipif(
    not CORPUS.is_dir(), reason=f"email corpus not found at {CORPUS} (shared/ beside the repo)"
)


def corpus_files() -> list[Path]:
    if not CORPUS.is_dir():
        return []
    return sorted(
        p
        for p in CORPUS.rglob("*")
        if p.is_file() and p.name not in ("expected.json", "SOURCES.md")
    )


def parse_file(name: str) -> ParsedEmail:
    return parse_email((CORPUS / name).read_bytes(), ParseLimits(), OWN_DOMAIN)


@needs_corpus
@pytest.mark.parametrize(
    "path", corpus_files(), ids=lambda p: str(p.relative_to(CORPUS)) if CORPUS.is_dir() else ""
)
def test_every_corpus_file_parses_or_is_rejected_as_not_mail(path: Path) -> None:
    name = path.relative_to(CORPUS).as_posix()
    raw = path.read_bytes()
    try:
        parsed = parse_email(raw, ParseLimits(), OWN_DOMAIN)
    except EmailParseError:
        assert name in NOT_MAIL, f"{name} is a mail and must parse"
        return
    assert name not in NOT_MAIL, f"{name} is not RFC 5322 and must be rejected"
    assert parsed.message_id
    assert "\x00" not in parsed.text and "\n" not in parsed.subject
    assert len(parsed.subject) <= 1000
    # The same bytes give the same key (dedup on re-delivery).
    assert parse_email(raw, ParseLimits(), OWN_DOMAIN).message_id == parsed.message_id


@needs_corpus
def test_corpus_has_files() -> None:
    assert len(corpus_files()) >= 70


# --- django-helpdesk/expected.json -----------------------------------------------------

# Keys that explain an entry; every other key is an assertion this test must know.
INFORMATIONAL = {"issue", "note", "title_note"}
CHECKED = {
    "title",
    "title_prefix",
    "description_equals",
    "description_stripped_equals",
    "description_contains",
    "html_part_contains",
    "forwarded_part_contains",
}


def expected_entries() -> list[tuple[str, dict[str, Any]]]:
    path = CORPUS / "django-helpdesk" / "expected.json"
    if not path.is_file():
        return []
    data = json.loads(path.read_text(encoding="utf-8"))
    return [(name, entry) for name, entry in data.items() if not name.startswith("_")]


def squash(markup: str) -> str:
    """Whitespace runs folded: sanitizing may re-indent, the content must stay."""
    return re.sub(r"\s+", " ", markup).strip()


@needs_corpus
@pytest.mark.parametrize("name,entry", expected_entries(), ids=lambda v: str(v)[:40])
def test_django_helpdesk_expectations(name: str, entry: dict[str, Any]) -> None:
    unknown = set(entry) - INFORMATIONAL - CHECKED
    assert not unknown, f"expected.json uses keys this test does not check: {unknown}"
    parsed = parse_file(f"django-helpdesk/{name}")  # "must ingest" alone is checked here too
    if "title" in entry:
        assert parsed.subject == entry["title"]
    if "title_prefix" in entry:
        assert parsed.subject.startswith(entry["title_prefix"])
    if "description_equals" in entry:
        assert parsed.text.strip() == entry["description_equals"]
    if "description_stripped_equals" in entry:
        assert parsed.text.strip() == entry["description_stripped_equals"]
    if "description_contains" in entry:
        assert entry["description_contains"] in parsed.text
    if "html_part_contains" in entry:
        assert parsed.html is not None
        assert squash(entry["html_part_contains"]) in squash(parsed.html)
    if "forwarded_part_contains" in entry:
        # The forwarded original stays in ``text``; only the display copy drops it.
        assert entry["forwarded_part_contains"] in parsed.text
        assert entry["forwarded_part_contains"] not in (parsed.reply_text or "")


@needs_corpus
def test_expected_json_covers_every_helpdesk_mail() -> None:
    names = {name for name, _ in expected_entries()}
    assert names == {p.name for p in (CORPUS / "django-helpdesk").glob("*.eml")}


@needs_corpus
def test_attachment_without_body_keeps_the_attachment() -> None:
    parsed = parse_file("django-helpdesk/blank-body-with-attachment.eml")
    assert parsed.text == ""
    assert [(a.filename, a.data) for a in parsed.attachments] == [
        ("baf", b"You shouldn't see this.\n")
    ]


@needs_corpus
def test_corpus_bounce_is_a_delivery_status_notification() -> None:
    parsed = parse_file("mail-parser/mail_malformed_2")
    assert parsed.auto_submitted
    assert parsed.auto_reason == "delivery status notification"
    assert parsed.reports_on == ("004801d1fc84$01c934ac$b247f0b7$@infospacemail.com",)
    assert parsed.report_error is not None
    assert "failed 4.2.2" in parsed.report_error
    assert "abh@netpar.com.br" in parsed.report_error


@needs_corpus
def test_outlook_msg_is_rejected_with_a_reason() -> None:
    with pytest.raises(EmailParseError, match="Outlook"):
        parse_file("mail-parser/mail_outlook_1")


@needs_corpus
def test_corpus_display_names_and_encodings() -> None:
    # A display name that is itself an address: the angle-bracket address wins.
    parsed = parse_file("mail-parser/mail_test_19")
    assert parsed.sender.email == "ivan@example.com"  # Reply-To wins over From
    assert parsed.to == ("charlie@example.com", "dave@example.com")
    assert parsed.cc == ("frank@example.com",)
    parsed = parse_file("mail-parser/mail_test_18")
    assert parsed.sender.name == "LastßlName, FirstName"
    assert parsed.cc == ("simple@example.net", "john.doe@example.com")
    parsed = parse_file("mail-parser/mail_test_12")  # GB2312-labelled Chinese
    assert parsed.sender.name == "张先生"
    assert "增值税发票" in parsed.text


@needs_corpus
def test_broken_boundary_is_recovered() -> None:
    # The declared boundary never occurs; the one the parts use is found and used.
    parsed = parse_file("mail-parser/mail_malformed_3")
    assert "Recibo de Luz" in parsed.subject
    assert parsed.html is not None
    assert "Content-Type" not in parsed.text


@needs_corpus
def test_mutated_corpus_never_raises_anything_else() -> None:
    """Truncated, spliced and corrupted variants of every mail (seeded, bounded)."""
    mails = [p.read_bytes() for p in corpus_files() if p.name != "mail_outlook_1"]
    junk = [b"\x00", b"\xff", b"=?", b"?=", b"<", b">", b"\r", b"\n\n", b"--", b";", b'"']
    junk += [b"\n--x\n", b"=?utf-8?b?", b"charset=x-foo", b"\xc3", b"Content-Type: multipart/x\n"]
    rng = random.Random(20240611)
    limits = ParseLimits(max_attachments=3, max_attachment_bytes=5000)
    for _ in range(400):
        raw = bytearray(rng.choice(mails))
        for _ in range(rng.randint(1, 8)):
            pos = rng.randrange(len(raw) + 1)
            roll = rng.random()
            if roll < 0.4:
                raw[pos:pos] = rng.choice(junk)
            elif roll < 0.7:
                del raw[pos : pos + rng.randint(1, 50)]
            elif roll < 0.8:
                del raw[pos:]
            else:
                raw[pos : pos + 1] = bytes([rng.randrange(256)])
        with contextlib.suppress(EmailParseError):  # anything else fails the test
            parse_email(bytes(raw), limits, OWN_DOMAIN)
