"""HTTP intake benchmark: the daemon's ``POST /form`` against a bare sqlite3 ceiling, same run.

    .venv/bin/python bench/intake_http.py [--clients 64] [--seconds 10] [--rounds 1]
        [--database postgresql+asyncpg://postgres@127.0.0.1:5432/postgres] [--ceiling-only]

Each round starts ``bench/ceiling_http.py`` (aiohttp + one sqlite3 commit per request) on a
free loopback port and loads it with ``bench/loadgen.py`` in its own process; then migrates a
fresh database, starts ``ventanilla serve`` with environment overrides (free port, temp
SQLite file or a fresh PostgreSQL database, temp attachment folder, no per-IP form limit),
waits for ``GET /readyz``, loads ``POST /form`` the same way while sampling the daemon's
memory, and stops it with SIGTERM. It prints a table, the daemon/ceiling ratio and each goal
as PASS or MISS, and writes ``bench/results/intake_http.json``. Medians over ``--rounds``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
DEFAULT_OUT = BENCH / "results" / "intake_http.json"
HOST = "127.0.0.1"

# The goals of this benchmark (see bench/README.md).
GOAL_RATIO = 0.25  # daemon req/s ≥ this fraction of the ceiling's
GOAL_P99_MS = 50.0  # stated for 64 clients
GOAL_RSS_MB = 150.0  # peak memory of the daemon: PSS summed over its processes


class BenchError(Exception):
    """A server could not be started or measured; the message says which and why."""


@dataclass
class ServerRun:
    """One server measured once: the load generator's figures plus memory and exit code."""

    name: str
    load: dict[str, Any]
    peak_rss_mb: float
    exit_code: int | None
    notes: list[str] = field(default_factory=list)
    peak_pss_mb: float = 0.0


# --- processes ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _proc_kb(path: str, key: str) -> int:
    """A ``Key:   123 kB`` line of a /proc file, in kB (0 once the process is gone)."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass  # the process is gone
    return 0


def _status_kb(pid: int, key: str) -> int:
    return _proc_kb(f"/proc/{pid}/status", key)


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tids:
        try:
            children = Path(f"/proc/{pid}/task/{tid}/children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            found += [child, *_descendants(child)]
    return found


def _pss_kb(pid: int) -> int:
    """Proportional set size: pages shared by several processes (the interpreter, shared
    libraries) count once across them, split between the sharers."""
    return _proc_kb(f"/proc/{pid}/smaps_rollup", "Pss")


class RssSampler:
    """Peak memory of a process and its children (e.g. the SQLite writer process, parser
    processes), sampled every 100 ms: the sum of their PSS, which is what they cost the
    machine together, and the sum of their RSS, which counts shared pages once per process.

    The kernel's own high-water mark (VmHWM) of the main process bounds the RSS from below,
    so a single-process peak between two samples still counts.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_kb = 0
        self.peak_pss_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            pids = [self.pid, *_descendants(self.pid)]
            self.peak_kb = max(self.peak_kb, sum(_status_kb(p, "VmRSS") for p in pids))
            self.peak_pss_kb = max(self.peak_pss_kb, sum(_pss_kb(p) for p in pids))
            self._stop.wait(0.1)

    def finish(self) -> float:
        """Call while the process still runs; returns the peak RSS sum in MB (the PSS sum is
        ``peak_pss_mb``)."""
        self.peak_kb = max(self.peak_kb, _status_kb(self.pid, "VmHWM"))
        self._stop.set()
        self._thread.join()
        return round(self.peak_kb / 1024, 1)

    @property
    def peak_pss_mb(self) -> float:
        return round(self.peak_pss_kb / 1024, 1)


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:])


def wait_ready(base_url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"exited with {proc.returncode} before ready:\n{log_tail(log)}")
        try:
            with urllib.request.urlopen(f"{base_url}/readyz", timeout=2) as response:
                if response.status == 200:
                    return
                last = f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.1)
    raise BenchError(f"not ready after {timeout:.0f} s ({last}):\n{log_tail(log)}")


def stop(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> int:
    """SIGTERM (graceful drain), then SIGKILL if it does not exit in time."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def run_load(url: str, args: argparse.Namespace) -> dict[str, Any]:
    """bench/loadgen.py in its own process, so its CPU is not the server's event loop."""
    command = [
        sys.executable,
        str(BENCH / "loadgen.py"),
        f"--url={url}",
        f"--clients={args.clients}",
        f"--seconds={args.seconds}",
        f"--warmup={args.warmup}",
        f"--category={args.category}",
        f"--client={args.client}",
    ]
    budget = args.warmup + args.seconds + 90  # loadgen stops itself; this is a backstop
    done = subprocess.run(command, capture_output=True, text=True, timeout=budget, check=False)
    if done.returncode != 0 or not done.stdout.strip():
        raise BenchError(f"loadgen failed ({done.returncode}):\n{done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def measure(
    name: str,
    command: list[str],
    env: dict[str, str],
    base_url: str,
    workdir: Path,
    args: argparse.Namespace,
) -> ServerRun:
    """Start a server, wait for /readyz, load POST /form, record memory, stop it."""
    log = workdir / f"{name.split()[0]}.log"
    with log.open("wb") as sink:
        # Output to a file, never a pipe: a full pipe would block the server mid-run.
        proc = subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        wait_ready(base_url, proc, log, args.ready_timeout)
        sampler = RssSampler(proc.pid)
        try:
            load = run_load(f"{base_url}/form", args)
        finally:
            peak = sampler.finish()
        if proc.poll() is not None:
            raise BenchError(f"{name} exited during the run:\n{log_tail(log)}")
    finally:
        exit_code = stop(proc)
    notes = [] if exit_code == 0 else [f"exit code {exit_code} after SIGTERM: {log_tail(log, 5)}"]
    return ServerRun(name, load, peak, exit_code, notes, sampler.peak_pss_mb)


# --- the two servers ------------------------------------------------------------------------


def run_ceiling(workdir: Path, args: argparse.Namespace) -> ServerRun:
    port = free_port()
    command = [
        sys.executable,
        str(BENCH / "ceiling_http.py"),
        f"--host={HOST}",
        f"--port={port}",
        f"--db={workdir / 'ceiling.db'}",
    ]
    return measure(
        "ceiling (sqlite3 commit/request)",
        command,
        dict(os.environ),
        f"http://{HOST}:{port}",
        workdir,
        args,
    )


def daemon_env(port: int, db_url: str, workdir: Path) -> dict[str, str]:
    # Drop the caller's own VENTANILLA_* settings so every run sees the same configuration.
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("VENTANILLA_") and key not in ("NOTIFY_SOCKET", "WATCHDOG_USEC")
    }
    env.update(
        {
            "VENTANILLA_HTTP__HOST": HOST,
            "VENTANILLA_HTTP__PORT": str(port),
            "VENTANILLA_DATABASE__URL": db_url,
            "VENTANILLA_INTAKE__ATTACHMENTS_DIR": str(workdir / "att"),
            # Every request comes from 127.0.0.1: the per-IP form limit would answer 429.
            "VENTANILLA_HTTP__FORM_RATE_LIMIT_PER_MINUTE": "0",
        }
    )
    return env


def run_daemon(workdir: Path, db_url: str, args: argparse.Namespace) -> ServerRun:
    port = free_port()
    env = daemon_env(port, db_url, workdir)
    binary, config = str(args.ventanilla), str(args.config)
    upgrade = subprocess.run(
        [binary, "--config", config, "db", "upgrade"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if upgrade.returncode != 0:
        raise BenchError(f"`ventanilla db upgrade` failed:\n{upgrade.stdout}{upgrade.stderr}")
    command = [binary, "serve", "--config", config]
    engine = "postgresql" if db_url.startswith("postgresql") else "sqlite"
    return measure(f"ventanilla ({engine})", command, env, f"http://{HOST}:{port}", workdir, args)


@contextlib.contextmanager
def fresh_database(url: str | None, workdir: Path) -> Iterator[str]:
    """A SQLite file in the run's folder, or a new PostgreSQL database dropped afterwards."""
    if url is None:
        yield f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
        return
    if not url.startswith("postgresql"):
        yield url  # another SQLite file chosen by the caller: used as given
        return
    import asyncpg
    from sqlalchemy.engine import make_url

    given = make_url(url)
    name = f"ventanilla_bench_{uuid.uuid4().hex[:10]}"
    admin_dsn = given.set(drivername="postgresql", database="postgres").render_as_string(
        hide_password=False
    )

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(admin_dsn, timeout=10)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield given.set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# --- report ---------------------------------------------------------------------------------


def summarize(runs: list[ServerRun]) -> dict[str, Any]:
    """Median of every figure over the rounds (each figure on its own)."""

    def median(values: list[float]) -> float:
        return round(statistics.median(values), 2)

    loads = [run.load for run in runs]
    return {
        "name": runs[0].name,
        "accepted_per_s": median([load["accepted_per_s"] for load in loads]),
        "p50_ms": median([load["p50_ms"] for load in loads]),
        "p99_ms": median([load["p99_ms"] for load in loads]),
        "errors": sum(load["errors"] for load in loads),
        "peak_rss_mb": median([run.peak_rss_mb for run in runs]),
        "peak_pss_mb": median([run.peak_pss_mb for run in runs]),
        "rounds": [asdict(run) for run in runs],
    }


def check_goals(
    ceiling: dict[str, Any], daemon: dict[str, Any], clients: int
) -> list[dict[str, Any]]:
    ratio = daemon["accepted_per_s"] / ceiling["accepted_per_s"] if ceiling["accepted_per_s"] else 0
    goals = [
        ("throughput ≥ 0.25 × ceiling", round(ratio, 3), ratio >= GOAL_RATIO, f"{ratio:.2f}"),
        (
            f"p99 < {GOAL_P99_MS:.0f} ms at {clients} clients",
            daemon["p99_ms"],
            daemon["p99_ms"] < GOAL_P99_MS,
            f"{daemon['p99_ms']:.1f} ms",
        ),
        (
            f"peak memory < {GOAL_RSS_MB:.0f} MB",
            daemon["peak_pss_mb"],
            daemon["peak_pss_mb"] < GOAL_RSS_MB,
            f"{daemon['peak_pss_mb']:.1f} MB PSS over its processes "
            f"(RSS summed: {daemon['peak_rss_mb']:.1f} MB)",
        ),
        # Not a goal but a validity check: 4xx/5xx answers would make the figures meaningless.
        ("every request accepted", daemon["errors"], daemon["errors"] == 0, str(daemon["errors"])),
    ]
    return [
        {"goal": goal, "value": value, "pass": passed, "shown": shown}
        for goal, value, passed, shown in goals
    ]


def print_report(
    args: argparse.Namespace, servers: list[dict[str, Any]], goals: list[dict[str, Any]]
) -> None:
    print(
        f"\nHTTP intake: POST /form, {args.clients} clients, {args.seconds:g} s "
        f"(+{args.warmup:g} s warm-up), {args.client} client, median of {args.rounds} round(s), "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}\n"
    )
    header = (
        f"{'server':<34}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}"
        f"{'PSS MB':>9}{'RSS MB':>9}"
    )
    print(header)
    print("-" * len(header))
    for s in servers:
        print(
            f"{s['name']:<34}{s['accepted_per_s']:>10.0f}{s['p50_ms']:>10.1f}{s['p99_ms']:>10.1f}"
            f"{s['errors']:>8}{s['peak_pss_mb']:>9.1f}{s['peak_rss_mb']:>9.1f}"
        )
    for s in servers:
        for run in s["rounds"]:
            if run["load"]["errors"]:
                print(f"  {s['name']}: errors {run['load']['error_kinds']}")
                for sample in run["load"]["error_samples"][:3]:
                    print(f"    {sample}")
            for note in run["notes"]:
                print(f"  {s['name']}: {note}")
    if len(servers) == 2:
        ratio = servers[1]["accepted_per_s"] / max(servers[0]["accepted_per_s"], 1e-9)
        print(f"\nratio daemon/ceiling: {ratio:.2f}\n")
    for goal in goals:
        print(f"  {'PASS' if goal['pass'] else 'MISS'}  {goal['goal']:<34}{goal['shown']}")


def parameters(args: argparse.Namespace) -> dict[str, Any]:
    """The run's options for the results file (a database password is masked)."""
    shown = {
        key: str(value) if isinstance(value, Path) else value
        for key, value in vars(args).items()
        if key not in ("keep", "strict", "out")
    }
    if args.database:
        from sqlalchemy.engine import make_url

        shown["database"] = make_url(args.database).render_as_string(hide_password=True)
    return shown


# --- main -----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    venv_bin = Path(sys.executable).parent
    default_binary = venv_bin / "ventanilla"
    if not default_binary.exists():
        default_binary = REPO / ".venv" / "bin" / "ventanilla"
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--clients", type=int, default=64, help="concurrent connections")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=2.0, help="uncounted seconds first")
    parser.add_argument("--rounds", type=int, default=1, help="rounds; figures are medians")
    parser.add_argument(
        "--database",
        help="daemon database URL, e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/postgres "
        "(a fresh database is created on that server and dropped); default: a temp SQLite file",
    )
    parser.add_argument("--ceiling-only", action="store_true", help="measure the ceiling only")
    parser.add_argument("--category", default="Problema menor", help="form category to post")
    parser.add_argument("--client", choices=("raw", "aiohttp"), default="raw", help="loadgen")
    parser.add_argument("--config", type=Path, default=REPO / "config" / "example.toml")
    parser.add_argument("--ventanilla", type=Path, default=default_binary, help="the CLI")
    parser.add_argument("--ready-timeout", type=float, default=60.0, help="seconds to /readyz")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results JSON file")
    parser.add_argument("--keep", action="store_true", help="keep the temp folders (logs)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.clients < 1 or args.seconds <= 0:
        parser.error("--rounds and --clients must be ≥ 1, --seconds > 0")
    if not args.ceiling_only and not args.ventanilla.exists():
        parser.error(f"{args.ventanilla} not found: install the project or pass --ventanilla")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ceiling_runs: list[ServerRun] = []
    daemon_runs: list[ServerRun] = []
    try:
        for round_no in range(1, args.rounds + 1):
            workdir = Path(tempfile.mkdtemp(prefix="ventanilla-bench-"))
            try:
                # Ceiling and daemon alternate, so a machine that drifts affects both alike.
                print(f"round {round_no}/{args.rounds}: ceiling …", flush=True)
                ceiling_runs.append(run_ceiling(workdir, args))
                if not args.ceiling_only:
                    print(f"round {round_no}/{args.rounds}: daemon …", flush=True)
                    with fresh_database(args.database, workdir) as db_url:
                        daemon_runs.append(run_daemon(workdir, db_url, args))
            finally:
                if args.keep:
                    print(f"  kept {workdir}")
                else:
                    shutil.rmtree(workdir, ignore_errors=True)
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1

    servers = [summarize(ceiling_runs)]
    goals: list[dict[str, Any]] = []
    if daemon_runs:
        servers.append(summarize(daemon_runs))
        goals = check_goals(servers[0], servers[1], args.clients)
    print_report(args, servers, goals)

    result = {
        "benchmark": "intake_http",
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "parameters": parameters(args),
        "ceiling": servers[0],
        "daemon": servers[1] if daemon_runs else None,
        "ratio": round(servers[1]["accepted_per_s"] / servers[0]["accepted_per_s"], 3)
        if daemon_runs and servers[0]["accepted_per_s"]
        else None,
        "goals": goals,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(f"\nwrote {args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out}")
    if args.strict and not all(goal["pass"] for goal in goals):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
