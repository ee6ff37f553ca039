"""The email tests parse with ``intake.email.feedparser_fast`` installed, as the daemon's
parser processes do by default, or with the stdlib's own parser when the environment says
``VENTANILLA_TEST_FAST_MIME_PARSER=off``: in this process (tests that parse in threads) and
in the parser processes the tests start (``[intake] fast_mime_parser``). Each test leaves
the stdlib's parser in place behind it, as the daemon's main process has it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.settings import Settings
from intake.email import feedparser_fast
from tests.conftest import make_settings

FAST = os.environ.get("VENTANILLA_TEST_FAST_MIME_PARSER", "on").lower() not in {
    "off",
    "0",
    "false",
    "no",
}


@pytest.fixture(autouse=True)
def fast_mime_parser() -> Iterator[str]:
    """What is in force in this process for the test: active, off or unsupported."""
    state = feedparser_fast.configure(FAST)
    try:
        yield state
    finally:
        feedparser_fast.uninstall()


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return make_settings(tmp_path, db_url, VENTANILLA_INTAKE__FAST_MIME_PARSER=str(FAST).lower())
