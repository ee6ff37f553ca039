"""HTTP intake benchmark: the daemon's ``POST /form`` against a bare sqlite3 ceiling, same run.

    .venv/bin/python bench/intake_http.py [--clients 64] [--seconds 10] [--rounds 1]
        [--database postgresql+asyncpg://postgres@127.0.0.1:5432/postgres] [--ceiling-only]
        [--mixed [--ops-clients 8]]

Each round starts ``bench/ceiling_http.py`` (aiohttp + one sqlite3 commit per request) on a
free loopback port and loads it with ``bench/loadgen.py`` in its own process; then migrates a
fresh database, starts ``ventanilla serve`` with environment overrides (free port, temp
SQLite file or a fresh PostgreSQL database, temp attachment folder, no per-IP form limit),
waits for ``GET /readyz``, loads ``POST /form`` the same way while sampling the daemon's
memory, and stops it with SIGTERM. It prints a table, the daemon/ceiling ratio and each goal
as PASS or MISS, and writes ``bench/results/intake_http.json``. Medians over ``--rounds``.

With ``--mixed`` the daemon gets, beside the same intake load, ``bench/opsload.py`` in a
process of its own: ``--ops-clients`` agents PATCHing and annotating the cases that load
creates, with a token of role ops created by ``ventanilla token create`` before the daemon
starts. The ceiling is measured as without it; the goals are the mixed ones and the results
go to ``bench/results/intake_http_mixed.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
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
DEFAULT_OUT_MIXED = BENCH / "results" / "intake_http_mixed.json"
HOST = "127.0.0.1"

# The goals of this benchmark (see bench/README.md).
GOAL_RATIO = 0.25  # daemon req/s ≥ this fraction of the ceiling's
GOAL_P99_MS = 50.0  # stated for 64 clients
GOAL_RSS_MB = 150.0  # peak memory of the daemon: PSS summed over its processes
# The goals of the mixed run (intake + case operations, see bench/README.md).
GOAL_MIXED_RATIO = 0.4  # daemon intake req/s ≥ this fraction of the ceiling's, under ops load
GOAL_OPS_P99_MS = 50.0  # p99 of each case operation kind (PATCH, note)
OPS_KINDS = ("PATCH", "PATCH 412", "note", "GET", "list")  # as bench/opsload.py names them
MIXED_OPTIONS = ("mixed", "ops_clients")  # absent from a plain run's parameters, as before
TOKEN_LINE = re.compile(r"^(vt_[A-Za-z0-9_-]+)$", re.MULTILINE)


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
    ops: dict[str, Any] | None = None  # bench/opsload.py's figures, in a mixed run


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
        *getattr(args, "loadgen_extra", ()),  # another load (bench/sms_intake.py)
    ]
    budget = args.warmup + args.seconds + 90  # loadgen stops itself; this is a backstop
    done = subprocess.run(command, capture_output=True, text=True, timeout=budget, check=False)
    if done.returncode != 0 or not done.stdout.strip():
        raise BenchError(f"loadgen failed ({done.returncode}):\n{done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def check_token(base_url: str, token: str) -> None:
    """One authenticated read before the load, so a refused token stops the run with its
    answer instead of turning every case operation into an error."""
    request = urllib.request.Request(
        f"{base_url}/api/v1/cases?limit=1", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            if response.status == 200:
                return
            answer = f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        answer = f"HTTP {exc.code}: {exc.read()[:300].decode(errors='replace')}"
    except OSError as exc:
        answer = str(exc)
    raise BenchError(f"the daemon refused the bench token on GET /api/v1/cases: {answer}")


def start_opsload(
    base_url: str, token: str, workdir: Path, args: argparse.Namespace
) -> subprocess.Popen[bytes]:
    """bench/opsload.py in its own process (the token in its environment, not its command
    line); its output goes to files in the round's folder."""
    command = [
        sys.executable,
        str(BENCH / "opsload.py"),
        f"--base={base_url}",
        f"--clients={args.ops_clients}",
        f"--seconds={args.seconds}",
        f"--warmup={args.warmup}",
    ]
    env = {**os.environ, "BENCH_OPS_TOKEN": token}
    with (workdir / "opsload.out").open("wb") as out, (workdir / "opsload.err").open("wb") as err:
        return subprocess.Popen(command, env=env, stdout=out, stderr=err)


def collect_opsload(
    proc: subprocess.Popen[bytes], workdir: Path, args: argparse.Namespace
) -> dict[str, Any]:
    """Wait for opsload to stop by itself and read its JSON line."""
    try:
        proc.wait(timeout=args.warmup + args.seconds + 90)  # it stops itself; a backstop
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise BenchError("opsload did not stop in time (killed)") from None
    out = (workdir / "opsload.out").read_text(errors="replace").strip()
    if proc.returncode != 0 or not out:
        err = (workdir / "opsload.err").read_text(errors="replace")
        raise BenchError(f"opsload failed ({proc.returncode}):\n{err[-2000:]}")
    result: dict[str, Any] = json.loads(out.splitlines()[-1])
    return result


def run_loads(
    base_url: str, workdir: Path, args: argparse.Namespace, token: str | None
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The intake load, and with a token the case-operation load beside it (both start
    together and keep the same warm-up and window)."""
    if token is None:
        return run_load(base_url + getattr(args, "load_path", "/form"), args), None
    check_token(base_url, token)
    ops_proc = start_opsload(base_url, token, workdir, args)
    try:
        load = run_load(f"{base_url}/form", args)
        return load, collect_opsload(ops_proc, workdir, args)
    finally:
        if ops_proc.poll() is None:  # only after a failure above
            ops_proc.kill()
            ops_proc.wait()


def measure(
    name: str,
    command: list[str],
    env: dict[str, str],
    base_url: str,
    workdir: Path,
    args: argparse.Namespace,
    token: str | None = None,
) -> ServerRun:
    """Start a server, wait for /readyz, load POST /form (and, given an ops token, the case
    operations beside it), record memory, stop it."""
    log = workdir / f"{name.split()[0]}.log"
    with log.open("wb") as sink:
        # Output to a file, never a pipe: a full pipe would block the server mid-run.
        proc = subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        wait_ready(base_url, proc, log, args.ready_timeout)
        sampler = RssSampler(proc.pid)
        try:
            load, ops = run_loads(base_url, workdir, args, token)
        finally:
            peak = sampler.finish()
        if proc.poll() is not None:
            raise BenchError(f"{name} exited during the run:\n{log_tail(log)}")
    finally:
        exit_code = stop(proc)
    notes = [] if exit_code == 0 else [f"exit code {exit_code} after SIGTERM: {log_tail(log, 5)}"]
    return ServerRun(name, load, peak, exit_code, notes, sampler.peak_pss_mb, ops)


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


def create_token(binary: str, config: str, env: dict[str, str]) -> str:
    """``ventanilla token create --name bench --role ops`` on the daemon's database; the
    ``vt_…`` token it prints once."""
    command = [binary, "--config", config, "token", "create", "--name", "bench", "--role", "ops"]
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    found = TOKEN_LINE.search(done.stdout)
    if done.returncode != 0 or found is None:
        raise BenchError(
            f"`ventanilla token create` failed (exit {done.returncode}, no vt_ token line):\n"
            f"{done.stdout[-1000:]}{done.stderr[-2000:]}"
        )
    return found.group(1)


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
    token = create_token(binary, config, env) if args.mixed else None
    command = [binary, "serve", "--config", config]
    engine = "postgresql" if db_url.startswith("postgresql") else "sqlite"
    name = f"ventanilla ({engine})" + (" + ops" if args.mixed else "")
    return measure(name, command, env, f"http://{HOST}:{port}", workdir, args, token)


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


def median(values: list[float]) -> float:
    return round(statistics.median(values), 2)


def median_of_known(values: list[float | None]) -> float | None:
    """Median of the figures that exist (a kind with no answer in a round has none)."""
    known = [value for value in values if value is not None]
    return median(known) if known else None


def round_record(run: ServerRun) -> dict[str, Any]:
    """One round for the results file; ``ops`` only in a mixed run."""
    record = asdict(run)
    if run.ops is None:
        del record["ops"]
    return record


def summarize_ops(runs: list[ServerRun]) -> dict[str, Any]:
    """Median of every case-operation figure over the rounds; errors summed."""
    ops = [run.ops for run in runs if run.ops is not None]
    kinds = {
        kind: {
            figure: median_of_known([o["kinds"][kind][figure] for o in ops])
            for figure in ("count", "per_s", "p50_ms", "p99_ms", "max_ms")
        }
        for kind in OPS_KINDS
    }
    return {
        "clients": ops[0]["clients"],
        "operations": median([o["operations"] for o in ops]),
        "operations_per_s": median([o["operations_per_s"] for o in ops]),
        "stale_412": median([o["stale_412"] for o in ops]),
        "errors": sum(o["errors"] for o in ops),
        "kinds": kinds,
    }


def summarize(runs: list[ServerRun]) -> dict[str, Any]:
    """Median of every figure over the rounds (each figure on its own)."""
    loads = [run.load for run in runs]
    summary = {
        "name": runs[0].name,
        "accepted_per_s": median([load["accepted_per_s"] for load in loads]),
        "p50_ms": median([load["p50_ms"] for load in loads]),
        "p99_ms": median([load["p99_ms"] for load in loads]),
        "errors": sum(load["errors"] for load in loads),
        "peak_rss_mb": median([run.peak_rss_mb for run in runs]),
        "peak_pss_mb": median([run.peak_pss_mb for run in runs]),
        "rounds": [round_record(run) for run in runs],
    }
    if any(run.ops is not None for run in runs):
        summary["ops"] = summarize_ops(runs)
    return summary


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


def check_mixed_goals(ceiling: dict[str, Any], daemon: dict[str, Any]) -> list[dict[str, Any]]:
    """The mixed run's goals: intake share of the ceiling under the case-operation load,
    each operation kind's p99, no error anywhere, peak memory."""
    ops = daemon["ops"]
    ratio = daemon["accepted_per_s"] / ceiling["accepted_per_s"] if ceiling["accepted_per_s"] else 0
    p99s = {kind: ops["kinds"][kind]["p99_ms"] for kind in ("PATCH", "note")}
    worst = None if None in p99s.values() else max(p99s.values())
    errors = daemon["errors"] + ops["errors"]
    goals = [
        (
            f"intake ≥ {GOAL_MIXED_RATIO} × ceiling",
            round(ratio, 3),
            ratio >= GOAL_MIXED_RATIO,
            f"{ratio:.2f}",
        ),
        (
            f"case operations p99 < {GOAL_OPS_P99_MS:.0f} ms",
            worst,
            worst is not None and worst < GOAL_OPS_P99_MS,
            ", ".join(
                f"{kind} {'no answer' if p99 is None else f'{p99:.1f} ms'}"
                for kind, p99 in p99s.items()
            ),
        ),
        (
            "0 errors",
            errors,
            errors == 0,
            f"{errors} (intake {daemon['errors']}, case operations {ops['errors']}; "
            f"expected 412: {ops['stale_412']:g})",
        ),
        (
            f"peak memory < {GOAL_RSS_MB:.0f} MB",
            daemon["peak_pss_mb"],
            daemon["peak_pss_mb"] < GOAL_RSS_MB,
            f"{daemon['peak_pss_mb']:.1f} MB PSS over its processes "
            f"(RSS summed: {daemon['peak_rss_mb']:.1f} MB)",
        ),
    ]
    return [
        {"goal": goal, "value": value, "pass": passed, "shown": shown}
        for goal, value, passed, shown in goals
    ]


def print_ops(daemon: dict[str, Any], args: argparse.Namespace) -> None:
    """The case-operation table of a mixed run, and its rounds' error samples."""
    ops = daemon["ops"]
    print(
        f"\ncase operations beside the intake load ({ops['clients']} clients): "
        f"{ops['operations']:g} PATCH + note answered, {ops['operations_per_s']:.1f} ops/s, "
        f"{ops['stale_412']:g} expected 412, {ops['errors']} errors\n"
    )
    header = f"{'kind':<34}{'count':>10}{'per s':>10}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}"
    print(header)
    print("-" * len(header))

    def cell(value: float | None, fmt: str) -> str:
        return f"{'—':>10}" if value is None else f"{value:>10{fmt}}"

    for kind in OPS_KINDS:
        k = ops["kinds"][kind]
        print(
            f"{kind:<34}{cell(k['count'], '.0f')}{cell(k['per_s'], '.1f')}"
            f"{cell(k['p50_ms'], '.1f')}{cell(k['p99_ms'], '.1f')}{cell(k['max_ms'], '.1f')}"
        )
    for run in daemon["rounds"]:
        if run["ops"]["errors"]:
            print(f"  case operations: errors {run['ops']['error_kinds']}")
            for sample in run["ops"]["error_samples"][:3]:
                print(f"    {sample[:400]}")


def print_report(
    args: argparse.Namespace, servers: list[dict[str, Any]], goals: list[dict[str, Any]]
) -> None:
    ops = f" + {args.ops_clients} case-operation clients" if args.mixed else ""
    print(
        f"\nHTTP intake: POST /form, {args.clients} clients{ops}, {args.seconds:g} s "
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
    if len(servers) == 2 and "ops" in servers[1]:
        print_ops(servers[1], args)
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
        if key not in ("keep", "strict", "out") and (args.mixed or key not in MIXED_OPTIONS)
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
    parser.add_argument(
        "--mixed",
        action="store_true",
        help="add case operations (bench/opsload.py: PATCH and notes) beside the intake load",
    )
    parser.add_argument(
        "--ops-clients", type=int, default=8, help="case-operation clients with --mixed"
    )
    parser.add_argument(
        "--out",
        type=Path,
        help=f"results JSON file (default {DEFAULT_OUT.relative_to(REPO)}, "
        f"with --mixed {DEFAULT_OUT_MIXED.relative_to(REPO)})",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp folders (logs)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.clients < 1 or args.seconds <= 0:
        parser.error("--rounds and --clients must be ≥ 1, --seconds > 0")
    if args.mixed and args.ceiling_only:
        parser.error("--mixed loads the daemon: it cannot go with --ceiling-only")
    if args.ops_clients < 1:
        parser.error("--ops-clients must be ≥ 1")
    if args.out is None:
        args.out = DEFAULT_OUT_MIXED if args.mixed else DEFAULT_OUT
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
        if args.mixed:
            goals = check_mixed_goals(servers[0], servers[1])
        else:
            goals = check_goals(servers[0], servers[1], args.clients)
    print_report(args, servers, goals)

    result = {
        "benchmark": "intake_http_mixed" if args.mixed else "intake_http",
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
