"""Outbound dispatch benchmark: how fast the daemon's dispatcher empties its outbox, against
a bare client sending the same messages, and how soon a web-form customer hears back.

    .venv/bin/python bench/dispatch.py [--rounds 1] [--emails 10000] [--sms 5000]
        [--forms 50] [--only email|sms|ack] [--strict] [--keep]

Each round, in this order, every part on free loopback ports and in processes of its own
(``bench/dispatch_peers.py`` for the peers, ``bench/dispatch_drain.py`` for each drain):

1. **email**: ``--emails`` acknowledgements to a fresh aiosmtpd sink each time, sent
   (a) by a bare aiosmtplib client (pre-serialized, as many connections as
   ``[notifiers.email] connections``: the ceiling), (b) by the email notifier alone (it
   builds each MIME message, as in the daemon; no outbox), (c) from pending rows in a fresh
   SQLite database drained by the daemon's own dispatcher, writer process and all (every
   attempt recorded);
2. **SMS**: ``--sms`` acknowledgements to a fresh fake of Twilio's Messages API, the same
   three ways: a bare aiohttp client posting the Twilio notifier's forms (as many requests
   in flight as ``[sms.twilio] concurrency``), the Twilio notifier alone, the dispatcher;
3. **form → acknowledgement**: ``ventanilla serve`` (``config/example.toml``, a temp
   SQLite file, the email notifier pointed at a sink that reports each arrival) gets
   ``--forms`` web-form submissions one at a time, ``--form-gap`` seconds apart, each
   timed from the moment its ``POST /form`` is sent to the moment the acknowledgement to
   its address has been received by the sink (both on CLOCK_MONOTONIC).

Ratios are taken per round (the dispatcher against the ceiling measured just before it;
the machine's speed drifts) and their median is judged; the notifier-alone rate splits the
gap between the provider's protocol as the product speaks it and the outbox around it. Results go to
``bench/results/dispatch.json``; see bench/README.md for the method and the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from intake_http import BenchError, daemon_env, free_port, log_tail, stop, wait_ready

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
DEFAULT_OUT = BENCH / "results" / "dispatch.json"
HOST = "127.0.0.1"
GOAL_RATIO = 0.5  # dispatcher msg/s ≥ this fraction of the bare client's, per channel
GOAL_ACK_P50_S = 1.0  # web form POST → acknowledgement received by the SMTP sink
CHANNELS = {"email": "smtp", "sms": "twilio"}  # channel → its loopback peer


class Peer:
    """A loopback peer (``bench/dispatch_peers.py``) in its own process; its JSON lines
    (readiness, arrivals, the final count) come through a queue fed by a reader thread."""

    def __init__(self, kind: str, workdir: Path, *, arrivals: bool = False) -> None:
        self.port = free_port()
        self.log = workdir / f"{kind}-{self.port}.log"
        command = [sys.executable, str(BENCH / "dispatch_peers.py"), kind, f"--port={self.port}"]
        if arrivals:
            command.append("--arrivals")
        with self.log.open("wb") as err:
            self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err)
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        assert self.proc.stdout is not None
        threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True).start()
        ready = self.next(15.0)
        if ready is None or "ready" not in ready:
            self.stop()
            raise BenchError(f"the {kind} peer did not start:\n{log_tail(self.log)}")

    def _read(self, stream: IO[bytes]) -> None:
        for line in stream:
            self.lines.put(json.loads(line))

    def next(self, timeout: float) -> dict[str, Any] | None:
        try:
            return self.lines.get(timeout=max(timeout, 0.0))
        except queue.Empty:
            return None

    def stop(self) -> int | None:
        """SIGTERM; the number of messages it received (None if it never said)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        while (line := self.next(1.0)) is not None:
            if "received" in line:
                return int(line["received"])
        return None


# --- drains -----------------------------------------------------------------------------------


def drain(channel: str, mode: str, count: int, workdir: Path, args: Any) -> dict[str, Any]:
    """One drain (``bench/dispatch_drain.py``) against a fresh peer; its figures, checked
    against what the peer received."""
    work = workdir / f"{channel}-{mode}"
    work.mkdir()
    # Start on a quiet disk: the previous drain's database is not written back meanwhile.
    os.sync()
    peer = Peer(CHANNELS[channel], work)
    command = [
        sys.executable,
        str(BENCH / "dispatch_drain.py"),
        f"--channel={channel}",
        f"--mode={mode}",
        f"--port={peer.port}",
        f"--count={count}",
        f"--workdir={work}",
        f"--peer-pid={peer.proc.pid}",
        f"--config={args.config}",
        f"--timeout={args.drain_timeout}",
    ]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=args.drain_timeout + 300, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"{channel} {mode} drain did not finish in time (killed)") from exc
    finally:
        received = peer.stop()
    (work / "drain.err").write_text(done.stderr)
    if done.returncode != 0 or not done.stdout.strip():
        raise BenchError(
            f"{channel} {mode} drain failed ({done.returncode}):\n{done.stderr[-3000:]}"
        )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["peer_received"] = received
    result["problems"] = drain_problems(result, count)
    return result


def drain_problems(result: dict[str, Any], count: int) -> list[str]:
    """What makes a drain's figures meaningless: messages lost, doubled or left unsent."""
    problems = []
    if result["messages"] != count:
        problems.append(f"{result['messages']} of {count} messages confirmed")
    if result["peer_received"] != count:
        problems.append(f"the peer received {result['peer_received']} of {count}")
    if result["timed_out"]:
        problems.append("timed out")
    stored = result.get("stored")
    if stored is not None:
        if stored["statuses"] != {"sent": count}:
            problems.append(f"rows by status: {stored['statuses']}")
        if stored["attempts"] != count:
            problems.append(f"{stored['attempts']} delivery attempts recorded for {count} rows")
    return problems


# --- form → acknowledgement -------------------------------------------------------------------


def form_body(tag: str) -> bytes:
    """A web-form submission as tests/e2e/test_daemon.py sends it (the category is routed to
    a technician, so a notice goes out by email beside the customer's acknowledgement)."""
    return json.dumps(
        {
            "name": f"Cliente {tag}",
            "email": f"c-{tag}@example.com",
            "subject": f"Consulta {tag}",
            "description": "No tengo conexión desde la mañana. " * 5,
            "category": "Problema Grave",
            "submission_id": tag,
        },
        ensure_ascii=False,
    ).encode()


def post_form(base_url: str, tag: str) -> tuple[int, str | None]:
    request = urllib.request.Request(
        f"{base_url}/form",
        data=form_body(tag),
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.loads(response.read() or b"{}")
            return response.status, (answer.get("case") or {}).get("number")
    except urllib.error.HTTPError as exc:  # counted as refused, shown in the report
        return exc.code, None


def wait_arrival(sink: Peer, address: str, deadline: float) -> dict[str, Any] | None:
    """The sink's report of the first message to ``address`` (other mail, such as the
    technician's notice, is passed over)."""
    while (line := sink.next(deadline - time.monotonic())) is not None:
        if address in line.get("to", []):
            return line
    return None


def form_to_ack(workdir: Path, args: Any) -> dict[str, Any]:
    work = workdir / "ack"
    work.mkdir()
    os.sync()
    sink = Peer("smtp", work, arrivals=True)
    port = free_port()
    env = daemon_env(port, f"sqlite+aiosqlite:///{work / 'ack.db'}", work)
    env |= {
        "VENTANILLA_NOTIFIERS__EMAIL__ENABLED": "true",
        "VENTANILLA_NOTIFIERS__EMAIL__HOST": HOST,
        "VENTANILLA_NOTIFIERS__EMAIL__PORT": str(sink.port),
    }
    binary, config = str(args.ventanilla), str(args.config)
    try:
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
        log = work / "daemon.log"
        with log.open("wb") as out:  # a file, never a pipe: a full pipe would block it
            daemon = subprocess.Popen(
                [binary, "serve", "--config", config], env=env, stdout=out, stderr=subprocess.STDOUT
            )
        try:
            base_url = f"http://{HOST}:{port}"
            wait_ready(base_url, daemon, log, 60.0)
            samples = submit_forms(base_url, sink, args)
            if daemon.poll() is not None:
                raise BenchError(f"the daemon exited during the run:\n{log_tail(log)}")
        finally:
            exit_code = stop(daemon)
    finally:
        sink.stop()
    return {**latency_figures(samples), "daemon_exit_code": exit_code}


def submit_forms(base_url: str, sink: Peer, args: Any) -> list[dict[str, Any]]:
    samples = []
    for n in range(args.form_warmup + args.forms):
        tag = str(uuid.uuid4())  # also the form's submission_id, which must be a UUID
        sent = time.monotonic()
        status, number = post_form(base_url, tag)
        answered = time.monotonic()
        arrival = None
        if status == 201 and number:
            arrival = wait_arrival(sink, f"c-{tag}@example.com", sent + args.ack_timeout)
        if n >= args.form_warmup:  # the first ones also open the SMTP connection: not timed
            samples.append(
                {
                    "status": status,
                    "case": number,
                    "answer_s": answered - sent,
                    "ack_s": None if arrival is None else arrival["t"] - sent,
                    "subject_has_case": bool(arrival and number and number in arrival["subject"]),
                }
            )
        time.sleep(args.form_gap)
    return samples


def latency_figures(samples: list[dict[str, Any]]) -> dict[str, Any]:
    acks = sorted(s["ack_s"] for s in samples if s["ack_s"] is not None)
    answers = sorted(s["answer_s"] for s in samples)

    def ms(values: list[float], q: float) -> float | None:
        if not values:
            return None
        return round(values[min(len(values) - 1, max(0, round(q * len(values)) - 1))] * 1000, 1)

    return {
        "forms": len(samples),
        "acknowledged": len(acks),
        "ack_p50_ms": ms(acks, 0.50),
        "ack_p95_ms": ms(acks, 0.95),
        "ack_max_ms": ms(acks, 1.0),
        "answer_p50_ms": ms(answers, 0.50),
        "answer_p95_ms": ms(answers, 0.95),
        "refused": sum(1 for s in samples if s["status"] != 201 or not s["case"]),
        "subject_without_case": sum(1 for s in samples if s["ack_s"] and not s["subject_has_case"]),
        "samples_ms": [
            None if s["ack_s"] is None else round(s["ack_s"] * 1000, 1) for s in samples
        ],
    }


# --- report -----------------------------------------------------------------------------------


def median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


MODES = ("bare", "notifier", "dispatcher")  # measured in this order, each round
MODE_NAMES = {
    "bare": "bare client (ceiling)",
    "notifier": "notifier alone",
    "dispatcher": "dispatcher",
}


def channel_summary(rounds: list[dict[str, dict[str, Any]]], channel: str) -> dict[str, Any]:
    """Medians over the rounds of each mode's rate; the judged ratio is the median of each
    round's dispatcher over that round's ceiling."""
    runs = [r[channel] for r in rounds]

    def per_round(top: str, bottom: str) -> list[float]:
        return [r[top]["per_s"] / max(r[bottom]["per_s"], 1e-9) for r in runs]

    ratios = per_round("dispatcher", "bare")
    rates = {f"{mode}_per_s": median([r[mode]["per_s"] for r in runs]) for mode in MODES}
    return {
        **rates,
        "ratio": median(ratios),
        "ratio_per_round": [round(r, 3) for r in ratios],
        "ratio_of_medians": round(rates["dispatcher_per_s"] / max(rates["bare_per_s"], 1e-9), 3),
        # Where the gap is: the notifier's own protocol work, then the outbox around it.
        "notifier_over_bare": median(per_round("notifier", "bare")),
        "dispatcher_over_notifier": median(per_round("dispatcher", "notifier")),
        "problems": [
            f"round {n}: {mode} {problem}"
            for n, r in enumerate(runs, 1)
            for mode in MODES
            for problem in r[mode]["problems"]
        ],
        "rounds": runs,
    }


def ack_summary(rounds: list[dict[str, dict[str, Any]]]) -> dict[str, Any]:
    runs = [r["ack"] for r in rounds]
    keys = ("ack_p50_ms", "ack_p95_ms", "ack_max_ms", "answer_p50_ms", "answer_p95_ms")
    figures = {
        k: None if any(r[k] is None for r in runs) else median([r[k] for r in runs]) for k in keys
    }
    missing = sum(r["forms"] - r["acknowledged"] for r in runs)
    return {
        **figures,
        "forms": sum(r["forms"] for r in runs),
        "unacknowledged": missing,
        "refused": sum(r["refused"] for r in runs),
        "subject_without_case": sum(r["subject_without_case"] for r in runs),
        "rounds": runs,
    }


def goal(name: str, value: Any, passed: bool, shown: str) -> dict[str, Any]:
    return {"goal": name, "value": value, "pass": passed, "shown": shown}


def cpu_line(result: dict[str, Any]) -> str:
    cpu = result["cpu_ms_per_message"]
    parts = [f"{name} {ms:.2f}" for name, ms in cpu.items() if ms is not None]
    return "CPU ms/msg: " + ", ".join(parts)


def report(summary: dict[str, Any], args: Any) -> list[dict[str, Any]]:
    goals = []
    print(
        f"\noutbound dispatch, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"median of {args.rounds} round(s); load average at the start of each round: "
        f"{', '.join(f'{r:.2f}' for r in summary['load_average'])}"
    )
    for channel, count in (("email", args.emails), ("sms", args.sms)):
        s = summary.get(channel)
        if s is None:
            continue
        last = s["rounds"][-1]
        print(f"\n{channel}: {count} acknowledgements")
        for mode in MODES:
            print(
                f"  {MODE_NAMES[mode]:<24}{s[f'{mode}_per_s']:>9.0f} msg/s   "
                f"(last round: {cpu_line(last[mode])})"
            )
        wp = last["dispatcher"]["write_path"]
        print(
            f"  write path, last round: {wp['claims']} claims of {wp['rows_per_claim']} rows, "
            f"{wp['batches']} batches of {wp['ops_per_batch']} operations"
        )
        shown = " ".join(f"{r:.2f}" for r in s["ratio_per_round"])
        print(
            f"  ratio dispatcher/ceiling: {s['ratio']:.2f} (rounds: {shown}; ratio of the "
            f"medians {s['ratio_of_medians']:.2f}); notifier alone/ceiling "
            f"{s['notifier_over_bare']:.2f}, dispatcher/notifier alone "
            f"{s['dispatcher_over_notifier']:.2f}"
        )
        for problem in s["problems"]:
            print(f"  ! {problem}")
        goals.append(
            goal(
                f"{channel} dispatcher ≥ {GOAL_RATIO} × bare",
                s["ratio"],
                s["ratio"] >= GOAL_RATIO,
                f"{s['ratio']:.2f}",
            )
        )
        goals.append(
            goal(
                f"every {channel} message sent once, recorded",
                len(s["problems"]),
                not s["problems"],
                str(len(s["problems"])) + " problem(s)",
            )
        )
    ack = summary.get("ack")
    if ack is not None:
        print(
            f"\nweb form → acknowledgement at the sink, {args.forms} forms one at a time, "
            f"{args.form_gap:g} s apart: p50 {ack['ack_p50_ms']} ms, p95 {ack['ack_p95_ms']} "
            f"ms, max {ack['ack_max_ms']} ms (the form's own answer: p50 "
            f"{ack['answer_p50_ms']} ms, p95 {ack['answer_p95_ms']} ms)"
        )
        p50 = ack["ack_p50_ms"]
        ok = p50 is not None and p50 < GOAL_ACK_P50_S * 1000
        goals.append(goal(f"form → ack p50 < {GOAL_ACK_P50_S:g} s", p50, ok, f"{p50} ms"))
        bad = ack["unacknowledged"] + ack["refused"] + ack["subject_without_case"]
        goals.append(goal("every form answered and acknowledged", bad, bad == 0, str(bad)))
    print()
    for g in goals:
        print(f"  {'PASS' if g['pass'] else 'MISS'}  {g['goal']:<42}{g['shown']}")
    return goals


# --- main -------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    default_binary = Path(sys.executable).parent / "ventanilla"
    if not default_binary.exists():
        default_binary = REPO / ".venv" / "bin" / "ventanilla"
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=1, help="rounds; figures are medians")
    parser.add_argument("--emails", type=int, default=10_000, help="email messages per drain")
    parser.add_argument("--sms", type=int, default=5_000, help="SMS messages per drain")
    parser.add_argument("--forms", type=int, default=50, help="timed web-form submissions")
    parser.add_argument("--form-warmup", type=int, default=2, help="untimed submissions first")
    parser.add_argument("--form-gap", type=float, default=0.5, help="seconds between forms")
    parser.add_argument("--ack-timeout", type=float, default=30.0, help="seconds per ack")
    parser.add_argument("--drain-timeout", type=float, default=600.0, help="seconds per drain")
    parser.add_argument(
        "--only",
        choices=("email", "sms", "ack"),
        action="append",
        help="measure only this part (repeatable)",
    )
    parser.add_argument("--config", type=Path, default=REPO / "config" / "example.toml")
    parser.add_argument("--ventanilla", type=Path, default=default_binary, help="the CLI")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results JSON file")
    parser.add_argument("--keep", action="store_true", help="keep the rounds' folders (logs)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed")
    args = parser.parse_args(argv)
    if min(args.rounds, args.emails, args.sms, args.forms) < 1 or args.form_gap < 0:
        parser.error("--rounds, --emails, --sms and --forms must be ≥ 1, --form-gap ≥ 0")
    args.parts = args.only or ["email", "sms", "ack"]
    if "ack" in args.parts and not args.ventanilla.exists():
        parser.error(f"{args.ventanilla} not found: install the project or pass --ventanilla")
    return args


def run_round(workdir: Path, args: Any) -> dict[str, dict[str, Any]]:
    measured: dict[str, dict[str, Any]] = {}
    for channel, count in (("email", args.emails), ("sms", args.sms)):
        if channel in args.parts:
            # The ceiling just before the dispatcher, so the pair shares its moment.
            measured[channel] = {mode: drain(channel, mode, count, workdir, args) for mode in MODES}
    if "ack" in args.parts:
        measured["ack"] = form_to_ack(workdir, args)
    return measured


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rounds: list[dict[str, dict[str, Any]]] = []
    loads: list[float] = []
    folders: list[Path] = []
    try:
        for n in range(1, args.rounds + 1):
            print(f"round {n}/{args.rounds}: {', '.join(args.parts)} …", flush=True)
            folders.append(Path(tempfile.mkdtemp(prefix="ventanilla-dispatch-")))
            loads.append(os.getloadavg()[0])
            rounds.append(run_round(folders[-1], args))
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    finally:
        # Removed only now: see bench/README.md on ext4 and freshly freed inodes.
        for folder in folders:
            if args.keep:
                print(f"  kept {folder}")
            else:
                shutil.rmtree(folder, ignore_errors=True)
    summary: dict[str, Any] = {"load_average": loads}
    for channel in ("email", "sms"):
        if channel in args.parts:
            summary[channel] = channel_summary(rounds, channel)
    if "ack" in args.parts:
        summary["ack"] = ack_summary(rounds)
    goals = report(summary, args)
    result = {
        "benchmark": "dispatch",
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "parameters": {
            k: str(v) if isinstance(v, Path) else v
            for k, v in vars(args).items()
            if k not in ("keep", "strict", "out", "only")
        },
        **summary,
        "goals": goals,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(f"\nwrote {args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out}")
    if args.strict and not all(g["pass"] for g in goals):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
