"""SMS intake benchmark: Twilio-signed incoming SMS against the daemon, beside the HTTP
intake ceiling measured in the same run.

    .venv/bin/python bench/sms_intake.py --rounds 3

Each round runs the plain-``sqlite3`` ceiling of ``bench/intake_http.py``
(``ceiling_http.py`` under its usual web-form load: one INSERT + COMMIT per request), then
the daemon on a fresh SQLite file with ``[sms.twilio]`` enabled, loaded by
``bench/loadgen.py --twilio-token``: 64 keep-alive clients posting ``POST
/webhooks/twilio/sms`` as Twilio does (form fields, each message from a number of its own,
``X-Twilio-Signature`` over ``[http] public_url``), so every request is verified, stored
and answered after its commit, and opens a case with an SMS acknowledgement queued. The
dispatcher is off (``[dispatch] enabled = false``) and the Twilio API points at a closed
loopback port: nothing leaves the machine and only intake is measured.

Goals: throughput ≥ 0.4 × the ceiling with signature checking, and every request accepted.
Results: ``bench/results/sms_intake.json``. The servers, the load and the figures are
``intake_http.py``'s own; this script only chooses the load and the daemon's settings.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from intake_http import (
    BenchError,
    ServerRun,
    daemon_env,
    free_port,
    measure,
    run_ceiling,
    summarize,
)

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "bench" / "results" / "sms_intake.json"
HOST = "127.0.0.1"
GOAL_RATIO = 0.4
PUBLIC_URL = "https://soporte.example.com"
TOKEN = "bench-twilio-auth-token"
SMS_PATH = "/webhooks/twilio/sms"


def sms_env(port: int, db_url: str, workdir: Path) -> dict[str, str]:
    env = daemon_env(port, db_url, workdir)
    env.update(
        {
            "VENTANILLA_HTTP__PUBLIC_URL": PUBLIC_URL,
            "VENTANILLA_SMS__TWILIO__ENABLED": "true",
            "VENTANILLA_SMS__TWILIO__ACCOUNT_SID": "AC" + "0" * 32,
            "VENTANILLA_SMS__TWILIO__AUTH_TOKEN": TOKEN,
            "VENTANILLA_SMS__TWILIO__FROM_NUMBER": '"+15005550006"',
            "VENTANILLA_SMS__TWILIO__API_BASE_URL": "http://127.0.0.1:9",
            "VENTANILLA_DISPATCH__ENABLED": "false",
        }
    )
    return env


def run_daemon(workdir: Path, args: argparse.Namespace) -> ServerRun:
    port = free_port()
    env = sms_env(port, f"sqlite+aiosqlite:///{workdir / 'ventanilla.db'}", workdir)
    binary, config = str(args.ventanilla), str(args.config)
    upgrade = subprocess.run(
        [binary, "--config", config, "db", "upgrade"],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    if upgrade.returncode != 0:
        raise BenchError(f"`ventanilla db upgrade` failed:\n{upgrade.stdout}{upgrade.stderr}")
    load = copy.copy(args)
    load.load_path = SMS_PATH
    load.loadgen_extra = [f"--twilio-token={TOKEN}", f"--twilio-url={PUBLIC_URL}{SMS_PATH}"]
    command = [binary, "serve", "--config", config]
    return measure("ventanilla (sqlite), Twilio SMS", command, env, f"http://{HOST}:{port}",
                   workdir, load)  # fmt: skip


def goals(ceiling: dict[str, Any], daemon: dict[str, Any]) -> list[dict[str, Any]]:
    ratio = daemon["accepted_per_s"] / ceiling["accepted_per_s"] if ceiling["accepted_per_s"] else 0
    rows = [
        (f"throughput ≥ {GOAL_RATIO} × ceiling", round(ratio, 3), ratio >= GOAL_RATIO,
         f"{ratio:.2f}"),
        ("every request accepted", daemon["errors"], daemon["errors"] == 0,
         str(daemon["errors"])),
    ]  # fmt: skip
    return [{"goal": g, "value": v, "pass": p, "shown": s} for g, v, p, s in rows]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    default_binary = Path(sys.executable).parent / "ventanilla"
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--clients", type=int, default=64, help="concurrent connections")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=2.0, help="uncounted seconds first")
    parser.add_argument("--rounds", type=int, default=1, help="rounds; figures are medians")
    parser.add_argument("--category", default="Problema menor", help="the ceiling's form load")
    parser.add_argument("--client", choices=("raw", "aiohttp"), default="raw", help="loadgen")
    parser.add_argument("--config", type=Path, default=REPO / "config" / "example.toml")
    parser.add_argument("--ventanilla", type=Path, default=default_binary, help="the CLI")
    parser.add_argument("--ready-timeout", type=float, default=60.0, help="seconds to /readyz")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results JSON")
    parser.add_argument("--keep", action="store_true", help="keep the temp folders (logs)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.clients < 1 or args.seconds <= 0:
        parser.error("--rounds and --clients must be ≥ 1, --seconds > 0")
    args.mixed = False  # intake_http's loads: no case-operation load beside this one
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ceiling_runs: list[ServerRun] = []
    daemon_runs: list[ServerRun] = []
    try:
        for round_no in range(1, args.rounds + 1):
            workdir = Path(tempfile.mkdtemp(prefix="ventanilla-sms-bench-"))
            try:
                print(f"round {round_no}/{args.rounds}: ceiling …", flush=True)
                ceiling_runs.append(run_ceiling(workdir, args))
                print(f"round {round_no}/{args.rounds}: daemon (Twilio SMS) …", flush=True)
                daemon_runs.append(run_daemon(workdir, args))
            finally:
                if args.keep:
                    print(f"  kept {workdir}")
                else:
                    shutil.rmtree(workdir, ignore_errors=True)
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    ceiling, daemon = summarize(ceiling_runs), summarize(daemon_runs)
    checked = goals(ceiling, daemon)
    print(f"\nSMS intake: {args.clients} clients, {args.seconds:g} s, median of {args.rounds}\n")
    for s in (ceiling, daemon):
        print(
            f"{s['name']:<40}{s['accepted_per_s']:>9.0f} req/s  p50 {s['p50_ms']:.1f} ms  "
            f"p99 {s['p99_ms']:.1f} ms  errors {s['errors']}  PSS {s['peak_pss_mb']:.0f} MB"
        )
        for run in s["rounds"]:
            for sample in run["load"]["error_samples"][:3]:
                print(f"    {sample}")
    for goal in checked:
        print(f"  {'PASS' if goal['pass'] else 'MISS'}  {goal['goal']:<34}{goal['shown']}")
    result = {
        "benchmark": "sms_intake",
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "parameters": {
            "clients": args.clients,
            "seconds": args.seconds,
            "warmup": args.warmup,
            "rounds": args.rounds,
            "client": args.client,
            "path": SMS_PATH,
        },
        "ceiling": ceiling,
        "daemon": daemon,
        "ratio": checked[0]["value"],
        "goals": checked,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(f"\nwrote {args.out}")
    if args.strict and not all(goal["pass"] for goal in checked):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
