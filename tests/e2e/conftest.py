"""The whole-daemon fixture: ``ventanilla serve`` on free ports, migrated, ready."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_daemon import DaemonProcess, free_port


@pytest.fixture
def daemon(tmp_path: Path, db_url: str) -> Iterator[DaemonProcess]:
    port = free_port()
    env = {
        **os.environ,
        "VENTANILLA_DATABASE__URL": db_url,
        "VENTANILLA_HTTP__PORT": str(port),
        "VENTANILLA_HTTP__PUBLIC_URL": f"http://127.0.0.1:{port}",
        "VENTANILLA_INTAKE__ATTACHMENTS_DIR": str(tmp_path / "attachments"),
        "VENTANILLA_HTTP__FORM_RATE_LIMIT_PER_MINUTE": "0",
        "VENTANILLA_DAEMON__LOG_FORMAT": "json",
    }
    env.pop("VENTANILLA_CONFIG", None)
    proc = DaemonProcess(env=env, port=port, log=tmp_path / "daemon.log")
    upgrade = proc.cli("db", "upgrade")
    assert upgrade.returncode == 0, upgrade.stderr
    proc.start()
    try:
        yield proc
    finally:
        if proc.proc is not None and proc.proc.poll() is None:
            proc.kill(signal.SIGKILL)
