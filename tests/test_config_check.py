"""``ventanilla config check``: settings that are valid but surely not meant get a warning
line naming the key, and the check still passes (exit 0)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from config import cli
from config.settings import DEFAULT_CONFIG

SMTP_ON = '[smtp]\nenabled = true\nport = 8025\nprotocol = "lmtp"\n'
MAILBOX = '[[mailboxes]]\naddress = "soporte@example.com"\n'


def check(config: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, list[str]]:
    out = io.StringIO()
    code = cli.main(["--config", str(config), "config", "check"], out, io.StringIO())
    err = capsys.readouterr().err
    return code, out.getvalue(), [line for line in err.splitlines() if "warning" in line]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "v.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_smtp_without_mailboxes_warns_and_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, warnings = check(write(tmp_path, SMTP_ON), capsys)
    assert code == 0
    assert "is valid" in out
    assert len(warnings) == 1
    assert warnings[0].startswith("warning: smtp.enabled is true but no [[mailboxes]]")
    assert "refused at RCPT" in warnings[0]


def test_no_warning_with_a_mailbox_or_with_smtp_off(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, warnings = check(write(tmp_path, SMTP_ON + MAILBOX), capsys)
    assert (code, warnings) == (0, []) and "is valid" in out
    code, _, warnings = check(DEFAULT_CONFIG, capsys)  # the example: SMTP off
    assert (code, warnings) == (0, [])


def test_the_installed_command_warns_for_an_environment_override() -> None:
    # As an operator runs it: the example config with SMTP switched on from the environment.
    env = {k: v for k, v in os.environ.items() if not k.startswith("VENTANILLA_")}
    env["VENTANILLA_SMTP__ENABLED"] = "true"
    command = Path(sys.executable).parent / "ventanilla"
    done = subprocess.run(
        [str(command), "--config", str(DEFAULT_CONFIG), "config", "check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "is valid" in done.stdout
    assert "warning: smtp.enabled is true but no [[mailboxes]]" in done.stderr
