"""The README's tour, typed as written: every shell block of "A five-minute tour" runs
against a live daemon (only the port differs), and none of its answers is an error."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.e2e.test_daemon import DaemonProcess

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]


def tour_blocks() -> list[str]:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    tour = readme.split("## A five-minute tour", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", tour, flags=re.DOTALL)


def test_the_tour_works_as_written(daemon: DaemonProcess, db_url: str) -> None:
    if not db_url.startswith("sqlite"):
        pytest.skip("the tour runs on the default SQLite setup")
    blocks = tour_blocks()
    assert len(blocks) >= 4
    script = "set -euo pipefail\n" + "\n".join(blocks).replace(
        "127.0.0.1:8080", f"127.0.0.1:{daemon.port}"
    )
    run = subprocess.run(
        ["bash", "-c", script], cwd=REPO, env=daemon.env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    output = run.stdout
    assert run.returncode == 0, output + run.stderr
    assert '"error"' not in output, output
    assert '"number": "CAS-000001"' in output  # the form's answer
    assert "HTTP/1.1 200" in output and 'ETag: "1"' in output  # the case read back
    assert '"status": "En Progreso"' in output  # the PATCH
    assert '"kind": "note"' in output
    assert "assignee: Técnico de guardia → Mesa de ayuda (turno)" in output  # the CLI update
    assert re.search(r'"case": \{"number": "CAS-00000\d"\}', output)  # the intake API
