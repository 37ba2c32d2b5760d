"""Status JSON latency of ``lifecert web serve`` at a fixed request rate (``lifecert web
bench``, or ``python -m lifecert_dev.bench.web``). Target (issue 15): p99 under 50 ms at
200 requests/s.

It builds a sandbox on the local stack (started if needed): its own database with N
retirees' statuses, open holds and second factors as the projections and ``lifecert api
second-factor import`` write them, and a staff account. Then it starts the real server
process and sends ``POST /api/v1/status`` with the right second factors on a fixed
schedule (open loop, over keep-alive HTTP/1.1 connections: a slow answer does not delay
the next request). Latency is measured from each request's scheduled time to its answer.
2 s of warm-up are not counted. It also times the dashboard's first view (login, then
``GET /staff``) at that population.
"""

from __future__ import annotations

import argparse
import asyncio
import http.cookiejar
import json
import random
import re
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lifecert_dev.bench.api import STATUSES, cpu_seconds, percentile

TARGET_P99_MS = 50.0
TARGET_RATE = 200.0
WARMUP_S = 2.0
STAFF = ("bench.city", "bench password 2017")


@dataclass(frozen=True)
class Figures:
    rate: float
    seconds: float
    sent: int
    ok: int
    errors: dict[str, int]
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    retirees: int
    server_cpu_ms_per_request: float
    dashboard_first_view_ms: float
    load_average: float

    @property
    def meets_target(self) -> bool:
        return (self.p99_ms < TARGET_P99_MS and self.rate >= TARGET_RATE
                and not self.errors)


# The statuses' shares (lifecert_dev.bench.api.STATUSES) as cumulative thousandths, for
# the SQL that draws them.
_THOUSANDTHS = [(status, round(sum(w for _, w in STATUSES[:i + 1]) * 1000))
                for i, (status, _) in enumerate(STATUSES)]
DISTRICTS = ("Chancheng", "Nanhai", "Shunde", "Gaoming", "Sanshui")
CHANNELS = ("FACE_APP", "COUNTER", "FACE_COUNTER")
# Retiree n's statuses as the projections would write them, made by PostgreSQL itself in
# one statement (1,000,000 rows in seconds, where a million-row VALUES list from Python
# takes minutes); a draw per retiree from a multiplicative hash of n, so that the same n
# gives the same status on every run. The counters' triggers (projections migration
# 0012) run on it as on the projections' writes.
_SEED_STATUSES = """
INSERT INTO retiree_status (retiree_id, policy, status, district, residence, completed_by,
                            completed_at, event_id, recorded_at, source_topic,
                            source_partition, source_offset)
SELECT 'WEB' || lpad(n::text, 7, '0'), 'foshan-2017', status, (%(districts)s)[1 + (n %% 5)::int],
       'FOSHAN',
       CASE WHEN done THEN (%(channels)s)[1 + ((n * 7919) %% 3)::int] END,
       CASE WHEN done THEN timestamptz '2017-05-01 09:30:00+08'
                           + make_interval(days => (n %% 28)::int) END,
       'seed-' || n, now(), 'seed', 0, n
FROM (SELECT n, status, status IN ('CERTIFIED', 'PENDING_DOCUMENTS') AS done
      FROM (SELECT n, CASE {cases} END AS status
            FROM (SELECT n, (n * 2654435761) %% 1000 AS draw
                  FROM generate_series(0::bigint, %(last)s) AS n) AS d) AS s) AS r"""
_SEED_HOLDS = """
INSERT INTO open_holds (retiree_id, effective_month, hold_event_id, placed_at)
SELECT retiree_id, '2017-07', 'hold-' || retiree_id, now() FROM retiree_status
WHERE status = 'SUSPENDED'"""


def _status_cases() -> str:
    return " ".join(f"WHEN draw < {upto} THEN '{status}'" for status, upto in _THOUSANDTHS[:-1]) \
        + f" ELSE '{_THOUSANDTHS[-1][0]}'"


def seed(box: Any, retirees: int, rng: random.Random) -> list[tuple[str, str]]:
    """Statuses, holds and second factors of ``retirees`` (bulk SQL and COPY); (retiree
    id, factor) pairs."""
    from lifecert.web import staff

    with box.connect() as conn, conn, conn.cursor() as cur:
        cur.execute(_SEED_STATUSES.format(cases=_status_cases()),
                    {"districts": list(DISTRICTS), "channels": list(CHANNELS),
                     "last": retirees - 1})
        cur.execute(_SEED_HOLDS)
    pairs = _register_factors(box, retirees, rng)
    with box.connect() as conn:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("ANALYZE retiree_status")
            cur.execute("ANALYZE open_holds")
            cur.execute("ANALYZE api_second_factors")
        staff.add_user(conn, STAFF[0], STAFF[1], staff.CITY, None)
    return pairs


def _register_factors(box: Any, retirees: int, rng: random.Random,
                      chunk: int = 100_000) -> list[tuple[str, str]]:
    """Every retiree's second factor (4 characters, as ``lifecert api second-factor
    import`` stores them: salted keyed hashes), COPYed in chunks."""
    import io
    import secrets

    from lifecert.api.secondfactor import digest

    key = box.second_factor_key
    pairs: list[tuple[str, str]] = []
    with box.connect() as conn, conn, conn.cursor() as cur:
        for begin in range(0, retirees, chunk):
            lines = []
            for n in range(begin, min(retirees, begin + chunk)):
                rid = f"WEB{n:07d}"
                factor = f"{rng.randrange(1000):03d}{rng.choice('0123456789X')}"
                salt = secrets.token_bytes(16)
                lines.append(f"{rid}\t\\\\x{salt.hex()}\t\\\\x"
                             f"{digest(key, salt, rid, factor).hex()}\n")
                pairs.append((rid, factor))
            cur.copy_expert("COPY api_second_factors (retiree_id, salt, digest) FROM STDIN",
                            io.StringIO("".join(lines)))
    return pairs


async def _post(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                body: bytes) -> int:
    writer.write(b"POST /api/v1/status HTTP/1.1\r\nHost: bench\r\nContent-Type: "
                 b"application/json\r\nContent-Length: " + str(len(body)).encode()
                 + b"\r\n\r\n" + body)
    head = await reader.readuntil(b"\r\n\r\n")
    code = int(head.split(b" ", 2)[1])
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
    await reader.readexactly(length)
    return code


async def load(port: int, pairs: list[tuple[str, str]], rate: float, seconds: float,
               rng: random.Random) -> tuple[list[float], Counter[str], int]:
    """Open-loop load; (latencies in ms after the warm-up, outcomes, requests sent)."""
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    latencies: list[float] = []
    outcomes: Counter[str] = Counter()
    start = time.perf_counter() + 0.5
    total = int((seconds + WARMUP_S) * rate)

    async def one(due: float, rid: str, factor: str) -> None:
        body = json.dumps({"retiree_id": rid, "second_factor": factor}).encode()
        reused = bool(idle)
        conn = idle.pop() if idle else await asyncio.open_connection("127.0.0.1", port)
        try:
            code = await _post(*conn, body)
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            conn[1].close()
            if not reused:
                outcomes[type(exc).__name__] += 1
                return
            # a kept-alive connection the server closed meanwhile: once more, afresh
            # (as any HTTP client does)
            conn = await asyncio.open_connection("127.0.0.1", port)
            try:
                code = await _post(*conn, body)
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc2:
                outcomes[type(exc2).__name__] += 1
                conn[1].close()
                return
        idle.append(conn)
        outcomes[str(code)] += 1
        if due - start >= WARMUP_S:
            latencies.append((time.perf_counter() - due) * 1000)

    tasks = []
    for n in range(total):
        due = start + n / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        rid, factor = rng.choice(pairs)
        tasks.append(asyncio.create_task(one(due, rid, factor)))
    await asyncio.gather(*tasks)
    for _, writer in idle:
        writer.close()
    return latencies, outcomes, total


def dashboard_first_view(url: str) -> float:
    """Milliseconds of the dashboard's first view after the login (``GET /staff``, read
    whole; the login's argon2 check is not counted)."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(url + "/staff/login", timeout=60).read().decode()
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert csrf is not None
    form = urllib.parse.urlencode({"csrf": csrf.group(1), "username": STAFF[0],
                                   "password": STAFF[1]}).encode()
    opener.open(url + "/staff/login", data=form, timeout=60).read()
    started = time.perf_counter()
    with opener.open(url + "/staff", timeout=60) as response:
        body = response.read()
        if response.status != 200 or b"<svg" not in body:
            raise RuntimeError(f"the dashboard answered {response.status} without its charts")
    return (time.perf_counter() - started) * 1000


def run(args: argparse.Namespace) -> int:
    import psycopg2

    from lifecert.dbroles import dsn_as
    from lifecert_dev.api_sandbox import Sandbox
    from lifecert_dev.stack import StackConfig, up
    from lifecert_dev.web_harness import WebError, start_web

    rng = random.Random(2017)
    print("lifecert web bench: starting the local stack", file=sys.stderr)
    stack = up(StackConfig.from_env())
    with tempfile.TemporaryDirectory(prefix="lifecert-web-bench-") as tmp:
        try:
            box = Sandbox.create(stack.postgres_dsn, stack.kafka_bootstrap, Path(tmp))
        except psycopg2.Error as exc:
            print(f"lifecert web bench: PostgreSQL: {exc}", file=sys.stderr)
            return 1
        with box:
            print(f"lifecert web bench: seeding {args.retirees:,} retirees", file=sys.stderr)
            seeding = time.perf_counter()
            pairs = seed(box, args.retirees, rng)
            print(f"lifecert web bench: seeded in {time.perf_counter() - seeding:.1f} s",
                  file=sys.stderr)
            try:
                server = start_web(dsn_as(box.dsn, "web"), box.pki.root,
                                   Path(tmp) / "web.log")
            except WebError as exc:
                print(f"lifecert web bench: {exc}", file=sys.stderr)
                return 1
            try:
                first_view = dashboard_first_view(server.url)
                cpu0 = cpu_seconds(server.process.pid)
                latencies, outcomes, sent = asyncio.run(
                    load(server.port, pairs, args.rate, args.seconds, rng))
                cpu = cpu_seconds(server.process.pid) - cpu0
            finally:
                server.stop()
    ok = outcomes.pop("200", 0)
    figures = Figures(args.rate, args.seconds, sent, ok, dict(outcomes),
                      percentile(latencies, 50), percentile(latencies, 90),
                      percentile(latencies, 99), max(latencies, default=float("nan")),
                      args.retirees, cpu * 1000 / max(1, sent), first_view,
                      float(Path("/proc/loadavg").read_text().split()[0]))
    if args.json:
        print(json.dumps({**figures.__dict__, "target_p99_ms": TARGET_P99_MS,
                          "meets_target": figures.meets_target}))
    else:
        print(report(figures))
    return 0 if figures.meets_target else 1


def report(f: Figures) -> str:
    verdict = "meets" if f.meets_target else "MISSES"
    return "\n".join([
        f"lifecert web bench: POST /api/v1/status at {f.rate:g}/s for {f.seconds:g} s "
        f"(+{WARMUP_S:g} s warm-up), {f.retirees:,} retirees",
        f"  sent {f.sent:,}, 200 OK {f.ok:,}, other {f.errors or 'none'}",
        f"  latency ms: p50 {f.p50_ms:.1f}  p90 {f.p90_ms:.1f}  p99 {f.p99_ms:.1f}  "
        f"max {f.max_ms:.1f}",
        f"  server CPU {f.server_cpu_ms_per_request:.2f} ms/request; machine load average "
        f"{f.load_average:.1f}",
        f"  dashboard first view (GET /staff after login): {f.dashboard_first_view_ms:.0f} ms",
        f"  {verdict} the target: p99 < {TARGET_P99_MS:g} ms at {TARGET_RATE:g}/s",
    ])


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rate", type=float, default=TARGET_RATE, help="requests/s")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds")
    parser.add_argument("--retirees", type=int, default=10_000, help="retirees seeded")
    parser.add_argument("--json", action="store_true", help="figures as one JSON line")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lifecert_dev.bench.web")
    add_bench_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
