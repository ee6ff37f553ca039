"""The outbound log benchmark (bench/log.py) runs end to end on a tiny log, so it does not rot.

A few thousand rows on SQLite only: the generator, the real migrations and seeding, every
measured query through ``list_notifications`` with its plan, and both bulk resends through
the writer process. SQLite plans without statistics (the daemon runs no ANALYZE), so the
plans here are the plans of a million rows: none may read the notifications table whole.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_log_benchmark_runs_on_a_tiny_log(tmp_path: Path) -> None:
    out = tmp_path / "log.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VENTANILLA_")}
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "log.py"), "--rows", "2000", "--repeat", "2",
         "--database", "sqlite", "--resend", "100", "--out", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "USING INDEX ix_notifications_status_list" in done.stdout  # the plans are printed
    result = json.loads(out.read_text())
    (engine,) = result["engines"]
    assert engine["engine"] == "sqlite"
    assert engine["dataset"]["signature"]["rows"] == 2000
    queries = {q["query"]: q for q in engine["queries"]}
    assert len(queries) == 17
    for query in queries.values():
        assert not query["full_scan"], (query["query"], query["plans"])
        assert query["indexes"], query["query"]
        assert query["first_p95_ms"] > 0 and query["deep_p95_ms"] > 0
    assert queries["(no filter)"]["matched"] == 2000
    assert queries["(no filter)"]["deep_depth"] == 2000 - 50  # the deepest full page
    for kind in ("ids", "filter"):
        job = engine["resend"][kind]
        assert job["status"] == "done"
        assert 0 < job["queued"] == job["selected"] <= 100, job
    # The timing goals are judged (not asserted: a busy machine is not a bug).
    assert {g["goal"] for g in engine["goals"]} >= {
        "every list query uses an index (no full scan)",
        "bulk resend by ids queued < 10 s",
    }
