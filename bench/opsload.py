"""Closed-loop case-operation load: N agents change and annotate the newest cases for a fixed time.

Run it as its own process, next to ``loadgen.py``'s intake load, so its CPU never shares the
daemon's event loop:

    BENCH_OPS_TOKEN=vt_… python bench/opsload.py --base http://127.0.0.1:8080 --clients 8

A poller reads ``GET /api/v1/cases?limit=50`` every second; the newest 50 cases are the pool
the workers pick from at random. Each worker holds one keep-alive connection and alternates
two operations, one after the other without pause:

- ``PATCH /api/v1/cases/{number}`` with ``If-Match`` set to the ETag of the last answer seen
  for that case (a ``GET`` first when there is none), cycling through priority (Alta ↔
  Normal), status (En Progreso ↔ Abierta) and tags (``bench`` added ↔ removed), each flipped
  from the case's last known value so every PATCH is a real change;
- ``POST /api/v1/cases/{number}/notes`` with a short text.

The ETags are shared by the workers, so two of them working on the same case at once make
one of them stale: that 412 is an expected outcome, counted apart ("PATCH 412"). A 412 that
no concurrent PATCH of this process explains (none in flight on the case while it ran, and
no newer version seen) is counted as an error. After ``--warmup`` seconds, answers are
counted for ``--seconds``. The bearer token (role ops or agent) comes from the environment
variable named by ``--token-env``. The last stdout line is one JSON object: ``{operations,
operations_per_s, stale_412, errors, kinds: {PATCH, PATCH 412, note, GET, list: {count,
p50_ms, p99_ms, max_ms, errors}}, ...}``. Only loopback targets are allowed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import SplitResult

from loadgen import GRACE_S, HttpConnection, Response, Tally, check_loopback, percentile

POLL_EVERY_S = 1.0
POOL_SIZE = 50
PATCH, STALE, NOTE, GET, LIST = "PATCH", "PATCH 412", "note", "GET", "list"
KINDS = (PATCH, STALE, NOTE, GET, LIST)
NOTE_TEXT = (
    "Seguimiento {tag}: se llamó al cliente, se revisó la línea desde la central y queda a la "
    "espera de la visita técnica del jueves por la mañana."
)


@dataclass
class CaseState:
    """A case as the last answer seen showed it: its version (the ETag) and the fields the
    workers flip."""

    version: int
    priority: str
    status: str
    tags: list[str]


@dataclass
class Board:
    """What the workers share: the pool of case numbers, each case's last known state, and
    the PATCHes in flight per case (to tell a legitimate 412 from an unexplained one)."""

    pool: list[str] = field(default_factory=list)
    cases: dict[str, CaseState] = field(default_factory=dict)
    inflight: Counter[str] = field(default_factory=Counter)
    patch_starts: Counter[str] = field(default_factory=Counter)

    def learn(self, number: str, etag: str | None, body: bytes) -> None:
        """Keep a case answer unless a newer version is already known."""
        version = parse_etag(etag)
        if version is None:
            return
        known = self.cases.get(number)
        if known is not None and known.version > version:
            return
        case = json.loads(body)
        self.cases[number] = CaseState(
            version, case["priority"] or "", case["status"] or "", list(case["tags"] or [])
        )


def parse_etag(etag: str | None) -> int | None:
    """The version an ETag ``"12"`` names, or None."""
    if not etag:
        return None
    value = etag.strip().removeprefix("w/").strip('"')
    return int(value) if value.isdigit() else None


class Client:
    """One keep-alive connection to the daemon, reopened after an error or a close."""

    def __init__(self, target: SplitResult, token: str) -> None:
        self.host = target.hostname or "127.0.0.1"
        self.port = target.port or 80
        self.head = (
            f"Host: {target.netloc}\r\nAuthorization: Bearer {token}\r\n"
            "Accept: application/json\r\n"
        )
        self.conn: HttpConnection | None = None

    async def send(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> Response:
        """One request and its whole answer; OSError or ValueError when it fails."""
        payload = b"" if body is None else json.dumps(body, ensure_ascii=False).encode()
        extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        if body is not None:
            extra += "Content-Type: application/json\r\n"
        request = (
            f"{method} {path} HTTP/1.1\r\n{self.head}{extra}Content-Length: {len(payload)}\r\n\r\n"
        ).encode() + payload
        try:
            if self.conn is None or self.conn.closed:
                loop = asyncio.get_running_loop()
                _, self.conn = await loop.create_connection(HttpConnection, self.host, self.port)
            response = await self.conn.exchange(request)
        except (OSError, ValueError):
            self.close()
            raise
        if response.closes:
            self.close()
        return response

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class Tallies:
    """One ``loadgen.Tally`` per kind of request, all on the same measured window."""

    def __init__(self, start: float, stop: float) -> None:
        self.stop = stop
        self.by_kind = {kind: Tally(start=start, stop=stop) for kind in KINDS}

    def ok(self, kind: str, sent_at: float) -> None:
        self.by_kind[kind].record(sent_at, None)

    def fail(self, kind: str, sent_at: float, failure: str, detail: str = "") -> None:
        self.by_kind[kind].record(sent_at, failure, detail)

    async def call(
        self,
        client: Client,
        kind: str,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[float, Response | None]:
        """Send; a connection error is recorded under ``kind`` and answers None."""
        sent_at = time.perf_counter()
        try:
            return sent_at, await client.send(method, path, body, headers)
        except (OSError, ValueError) as exc:
            self.fail(kind, sent_at, type(exc).__name__, f"{method} {path}: {exc}")
            await asyncio.sleep(0.01)  # a refused connection must not become a busy loop
            return sent_at, None

    def unexpected(
        self, kind: str, sent_at: float, method: str, path: str, answer: Response
    ) -> None:
        """Record an answer whose status was not one this request may get."""
        detail = f"{method} {path}: {answer.body.decode(errors='replace')}"
        self.fail(kind, sent_at, str(answer.status), detail)


# --- the operations -------------------------------------------------------------------------


def flipped(case: CaseState, turn: int) -> dict[str, Any]:
    """The change for this turn: one field set to the value it does not have now."""
    field_no = turn % 3
    if field_no == 0:
        return {"priority": "Normal" if case.priority == "Alta" else "Alta"}
    if field_no == 1:
        return {"status": "Abierta" if case.status == "En Progreso" else "En Progreso"}
    if "bench" in case.tags:
        return {"tags": [tag for tag in case.tags if tag != "bench"]}
    return {"tags": [*case.tags, "bench"]}


async def read_case(client: Client, board: Board, tallies: Tallies, number: str) -> bool:
    """GET the case to learn its ETag and fields; False when that failed."""
    path = f"/api/v1/cases/{number}"
    sent_at, answer = await tallies.call(client, GET, "GET", path)
    if answer is None:
        return False
    if answer.status != 200:
        tallies.unexpected(GET, sent_at, "GET", path, answer)
        return False
    tallies.ok(GET, sent_at)
    board.learn(number, answer.headers.get("etag"), answer.body)
    return number in board.cases


async def patch_case(
    client: Client, board: Board, tallies: Tallies, number: str, turn: int
) -> None:
    """PATCH one flipped field with If-Match; a 412 is expected when another PATCH of ours
    on the same case overlapped or a newer version is already known."""
    if number not in board.cases and not await read_case(client, board, tallies, number):
        return
    case = board.cases[number]
    path = f"/api/v1/cases/{number}"
    others_before, starts_before = board.inflight[number], board.patch_starts[number]
    board.inflight[number] += 1
    board.patch_starts[number] += 1
    try:
        sent_at, answer = await tallies.call(
            client, PATCH, "PATCH", path, flipped(case, turn), {"If-Match": f'"{case.version}"'}
        )
    finally:
        board.inflight[number] -= 1
    if answer is None:
        return
    if answer.status == 200:
        tallies.ok(PATCH, sent_at)
        board.learn(number, answer.headers.get("etag"), answer.body)
        return
    if answer.status != 412:
        tallies.unexpected(PATCH, sent_at, "PATCH", path, answer)
        return
    overlapped = others_before > 0 or board.patch_starts[number] != starts_before + 1
    known = board.cases.get(number)
    if overlapped or (known is not None and known.version > case.version):
        tallies.ok(STALE, sent_at)
    else:
        detail = f"PATCH {path} If-Match {case.version}, no concurrent change: {answer.body!r}"
        tallies.fail(PATCH, sent_at, "412 unexplained", detail)
    if known is not None and known.version == case.version:
        del board.cases[number]  # read it again before the next PATCH


async def add_note(client: Client, tallies: Tallies, number: str, tag: str) -> None:
    """POST an internal note; 201 is the only expected answer."""
    path = f"/api/v1/cases/{number}/notes"
    sent_at, answer = await tallies.call(
        client, NOTE, "POST", path, {"text": NOTE_TEXT.format(tag=tag)}
    )
    if answer is None:
        return
    if answer.status == 201:
        tallies.ok(NOTE, sent_at)
    else:
        tallies.unexpected(NOTE, sent_at, "POST", path, answer)


async def ops_worker(
    target: SplitResult, token: str, board: Board, tallies: Tallies, worker_no: int
) -> None:
    """Alternate note and PATCH on random cases of the pool until the window closes."""
    client = Client(target, token)
    rng = random.Random(worker_no)
    turn = 0
    try:
        while time.perf_counter() < tallies.stop:
            if not board.pool:
                await asyncio.sleep(0.05)  # the intake load has not created cases yet
                continue
            number = rng.choice(board.pool)
            turn += 1
            if turn % 2:
                await add_note(client, tallies, number, f"{worker_no}-{turn}")
            else:
                await patch_case(client, board, tallies, number, turn // 2)
    finally:
        client.close()


async def poll_cases(target: SplitResult, token: str, board: Board, tallies: Tallies) -> None:
    """Refresh the pool from the newest cases every second until the window closes."""
    client = Client(target, token)
    path = f"/api/v1/cases?limit={POOL_SIZE}"
    try:
        while time.perf_counter() < tallies.stop:
            sent_at, answer = await tallies.call(client, LIST, "GET", path)
            if answer is not None and answer.status == 200:
                tallies.ok(LIST, sent_at)
                items = json.loads(answer.body)["items"]
                if items:
                    board.pool = [item["number"] for item in items]
            elif answer is not None:
                tallies.unexpected(LIST, sent_at, "GET", path, answer)
            await asyncio.sleep(max(0.0, POLL_EVERY_S - (time.perf_counter() - sent_at)))
    finally:
        client.close()


# --- the run --------------------------------------------------------------------------------


def kind_figures(tally: Tally, seconds: float) -> dict[str, Any]:
    """Count, rate and latency percentiles of one kind (None where nothing was answered)."""
    latencies = sorted(tally.latencies)

    def ms(value: float | None) -> float | None:
        return round(value * 1000, 2) if value is not None else None

    return {
        "count": tally.accepted,
        "per_s": round(tally.accepted / seconds, 1),
        "p50_ms": ms(percentile(latencies, 0.50)) if latencies else None,
        "p99_ms": ms(percentile(latencies, 0.99)) if latencies else None,
        "max_ms": ms(latencies[-1]) if latencies else None,
        "errors": sum(tally.errors.values()),
    }


def figures(
    base: str, clients: int, seconds: float, board: Board, tallies: Tallies, unanswered: int
) -> dict[str, Any]:
    """The run's result: operations, 412s, per-kind figures, errors with samples."""
    kinds = {kind: kind_figures(tally, seconds) for kind, tally in tallies.by_kind.items()}
    error_kinds: Counter[str] = Counter()
    samples: list[str] = []
    for kind, tally in tallies.by_kind.items():
        error_kinds.update({f"{kind} {failure}": n for failure, n in tally.errors.items()})
        samples += [f"{kind} {sample}" for sample in tally.error_samples]
    if unanswered:
        error_kinds["unanswered"] += unanswered
    operations = kinds[PATCH]["count"] + kinds[NOTE]["count"]
    if operations == 0:
        error_kinds["no case operation"] += 1
        samples.append(f"no case operation answered; {len(board.pool)} case(s) in the pool")
    return {
        "base_url": base,
        "clients": clients,
        "seconds": seconds,
        "operations": operations,
        "operations_per_s": round(operations / seconds, 1),
        "stale_412": kinds[STALE]["count"],
        "errors": sum(error_kinds.values()),
        "error_kinds": dict(error_kinds),
        "error_samples": samples[:10],
        "cases_worked": len(board.cases),
        "kinds": kinds,
    }


async def run(base: str, token: str, clients: int, seconds: float, warmup: float) -> dict[str, Any]:
    """The poller and ``clients`` workers for warm-up + ``seconds``, then the figures."""
    target = check_loopback(base)
    now = time.perf_counter()
    tallies = Tallies(start=now + warmup, stop=now + warmup + seconds)
    board = Board()
    tasks = [asyncio.ensure_future(poll_cases(target, token, board, tallies))]
    tasks += [
        asyncio.ensure_future(ops_worker(target, token, board, tallies, n)) for n in range(clients)
    ]
    # Bounded: whatever has not answered GRACE_S after the window is abandoned.
    _, pending = await asyncio.wait(tasks, timeout=warmup + seconds + GRACE_S)
    for task in pending:
        task.cancel()
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    crashed = [o for o in outcomes if isinstance(o, Exception)]
    if crashed:
        raise crashed[0]
    return figures(base, clients, seconds, board, tallies, len(pending))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--base", required=True, help="loopback base URL of the daemon")
    parser.add_argument("--clients", type=int, default=8, help="concurrent agents")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured duration")
    parser.add_argument("--warmup", type=float, default=2.0, help="uncounted lead-in")
    parser.add_argument(
        "--token-env", default="BENCH_OPS_TOKEN", help="environment variable with the token"
    )
    args = parser.parse_args(argv)
    if args.clients < 1 or args.seconds <= 0 or args.warmup < 0:
        parser.error("--clients must be ≥ 1, --seconds > 0, --warmup ≥ 0")
    token = os.environ.get(args.token_env, "").strip()
    if not token:
        parser.error(f"no token: set {args.token_env} to a bearer token with role ops")
    base = args.base.rstrip("/")
    check_loopback(base)
    result = asyncio.run(run(base, token, args.clients, args.seconds, args.warmup))
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
