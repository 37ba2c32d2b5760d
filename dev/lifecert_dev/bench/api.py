"""Status-query latency of the API server at a fixed request rate (``lifecert api bench``,
or ``python -m lifecert_dev.bench.api``). Target: p99 under 20 ms at 500 requests/s.

It builds a sandbox on the local stack (started if needed): its own PKI, database and
topic prefix; N retirees enrolled on the events topic, their statuses and open holds in
the read models as the projections write them, and their second factors. Then it starts
the real server process (mutual TLS on loopback) and sends GetStatus requests from a
PORTAL client on a fixed schedule (open loop: a slow answer does not delay the next
request). Latency is measured from each request's scheduled time to its answer, so a
client or server that falls behind shows in the figures. 2 s of warm-up are not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TARGET_P99_MS = 20.0
WARMUP_S = 2.0
STATUSES = (("CERTIFIED", 0.70), ("NOT_CERTIFIED", 0.12), ("SUSPENDED", 0.08),
            ("PENDING_DOCUMENTS", 0.05), ("EXEMPT", 0.03), ("DECEASED", 0.02))


@dataclass(frozen=True)
class Figures:
    rate: float
    seconds: float
    sent: int
    achieved_rate: float
    ok: int
    errors: dict[str, int]
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    retirees: int
    server_cpu_ms_per_request: float
    database_cpu_ms_per_request: float
    client_cpu_ms_per_request: float
    load_average: float
    sent_p50_ms: float
    sent_p99_ms: float
    baseline_p50_ms: float | None = None
    baseline_p99_ms: float | None = None

    @property
    def meets_target(self) -> bool:
        return self.p99_ms < TARGET_P99_MS and not self.errors


@dataclass(frozen=True)
class Measured:
    latencies: list[float]  # ms, from each request's scheduled time to its answer
    service: list[float]  # ms, from the moment it was sent (client lag excluded)
    errors: Counter[str]
    sent: int
    elapsed: float


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = q / 100 * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), 0.0 where unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def database_cpu(box: Any) -> dict[int, float]:
    """CPU seconds of the PostgreSQL backends serving the API server (its status, audit
    and other connections) by process id: readable when PostgreSQL runs on this machine,
    as the local stack does (else empty)."""
    pids = box.query(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
        "AND application_name LIKE 'lifecert-api%%'"
    )
    return {pid: cpu_seconds(pid) for (pid,) in pids}


def _id_number(rng: random.Random) -> str:
    digits = "".join(rng.choice("0123456789") for _ in range(17))
    return digits + rng.choice("0123456789X")


def seed(box: Any, retirees: int, rng: random.Random) -> list[tuple[str, str]]:
    """Enroll, project and register ``retirees``; returns (retiree id, second factor)."""
    from lifecert.events.interchange import parse_event
    from lifecert.pipeline.topics import EVENTS

    ids = [f"BENCH{i:07d}" for i in range(retirees)]
    events = []
    for rid in ids:
        events.append((EVENTS, parse_event({
            "type": "RetireeEnrolled", "event_id": f"bench-enroll-{rid}",
            "recorded_at": "2017-01-02T09:00:00+08:00", "retiree_id": rid, "name": "bench",
            "birth_date": "1950-03-15", "scheme": "URBAN_EMPLOYEE", "category": "REGULAR",
            "residence": "FOSHAN", "district": "NANHAI", "country": "CN",
            "pension_start": "2010-01-01", "monthly_amount_fen": 300_000, "disabled": False,
            "managing_unit": None,
        })))
    box.publish(events)
    statuses, weights = zip(*STATUSES, strict=True)
    rows, holds = [], []
    for rid in ids:
        status = rng.choices(statuses, weights)[0]
        row: dict[str, Any] = {"retiree_id": rid, "status": status, "residence": "FOSHAN",
                               "district": "NANHAI"}
        if status in ("CERTIFIED", "PENDING_DOCUMENTS"):
            row["completed_by"] = "FACE_APP"
            row["completed_at"] = "2017-05-02T09:30:00+08:00"
        if status == "SUSPENDED":
            holds.append((rid, "2017-07"))
        rows.append(row)
    box.seed_statuses(rows, holds)
    id_numbers = {rid: _id_number(rng) for rid in ids}
    box.register_second_factors(id_numbers.items())
    return [(rid, number[-4:]) for rid, number in id_numbers.items()]


async def load(
    server: Any, pairs: list[tuple[str, str]], rate: float, seconds: float,
    wrong_rate: float, rng: random.Random, *, health: bool = False,
) -> Measured:
    """Send GetStatus on a fixed schedule; latencies (ms) of the measured part. With
    ``health``, the gRPC health check instead (the same channel, TLS and scheduling with
    none of lifecert's work: the baseline of this machine)."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from lifecert.api.lockouts import CLIENT_ADDRESS_HEADER
    from lifecert.api.protos import status_query_pb2 as sq
    from lifecert.api.protos import status_query_pb2_grpc as sq_grpc

    channel = server.aio_channel("BENCH-PORTAL", "PORTAL")
    stub = sq_grpc.StatusQueryStub(channel)
    health_stub = health_pb2_grpc.HealthStub(channel)
    check = health_pb2.HealthCheckRequest(service="")
    await channel.channel_ready()
    total = int((WARMUP_S + seconds) * rate)
    warm = int(WARMUP_S * rate)
    latencies: list[float] = []
    service: list[float] = []  # from the moment the request was actually sent
    errors: Counter[str] = Counter()
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.1

    async def one(n: int, due: float, rid: str, factor: str) -> None:
        sent_at = loop.time()
        try:
            if health:
                # types-grpcio-health-checking's HealthStub declares no methods.
                await health_stub.Check(check, timeout=5)  # type: ignore[attr-defined]
            else:
                # The portal names each visitor's address (198.18.0.0/15: benchmarking).
                address = f"198.18.{(n >> 8) & 255}.{n & 255}"
                await stub.GetStatus(
                    sq.GetStatusRequest(retiree_id=rid, second_factor=factor), timeout=5,
                    metadata=[(CLIENT_ADDRESS_HEADER, address)],
                )
            code = "OK"
        except grpc.aio.AioRpcError as exc:
            code = exc.code().name
        if n >= warm:
            done = loop.time()
            latencies.append((done - due) * 1000)
            service.append((done - sent_at) * 1000)
            if code != "OK" and not (code == "NOT_FOUND" and factor == "0000"):
                errors[code] += 1

    tasks = []
    for n in range(total):
        due = start + n / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        rid, factor = rng.choice(pairs)
        if wrong_rate and rng.random() < wrong_rate:
            factor = "0000"
        tasks.append(asyncio.create_task(one(n, due, rid, factor)))
    measured_start = start + warm / rate
    await asyncio.gather(*tasks)
    elapsed = loop.time() - measured_start
    await channel.close()
    return Measured(latencies, service, errors, total - warm, elapsed)


@dataclass(frozen=True)
class Run:
    """What one measured run gives: the load's figures and the CPU each side spent per
    request (ms), and the baseline's latencies (empty without ``--baseline``)."""

    measured: Measured
    server_cpu_ms: float
    database_cpu_ms: float
    client_cpu_ms: float
    baseline: list[float]


def run(args: argparse.Namespace) -> int:
    import psycopg2

    from lifecert.api.build_protos import ensure_built
    from lifecert_dev.api_sandbox import Sandbox
    from lifecert_dev.stack import StackConfig, up

    ensure_built()
    rng = random.Random(2017)
    print("lifecert api bench: starting the local stack", file=sys.stderr)
    stack = up(StackConfig.from_env())
    with tempfile.TemporaryDirectory(prefix="lifecert-api-bench-") as tmp:
        try:
            box = Sandbox.create(stack.postgres_dsn, stack.kafka_bootstrap, Path(tmp))
        except psycopg2.Error as exc:
            print(f"lifecert api bench: PostgreSQL: {exc}", file=sys.stderr)
            return 1
        with box:
            measured = measure(box, args, rng)
            if measured is None:
                return 1
    figures = figures_of(args, measured)
    if args.json:
        print(json.dumps({**figures.__dict__, "target_p99_ms": TARGET_P99_MS,
                          "meets_target": figures.meets_target}))
    else:
        print(report(figures))
    return 0 if figures.meets_target else 1


def measure(box: Any, args: argparse.Namespace, rng: random.Random) -> Run | None:
    """Seed the sandbox, start the server, send the load (and the baseline's); None
    when the server does not start (said on stderr)."""
    from lifecert_dev.api_sandbox import SandboxError

    t0 = time.perf_counter()
    pairs = seed(box, args.retirees, rng)
    print(f"lifecert api bench: {args.retirees:,} retirees seeded in "
          f"{time.perf_counter() - t0:.1f} s; starting the server", file=sys.stderr)
    try:
        # Its wrong factors (--wrong-rate) measure the failure path, not the
        # failure budgets.
        server = box.start_server("--no-face", "--public-failure-budget",
                                  "1000000000", "--failure-budget", "1000000000",
                                  verbose=False)
    except SandboxError as exc:
        print(f"lifecert api bench: {exc}", file=sys.stderr)
        return None
    print(f"lifecert api bench: {args.rate:g} requests/s for {args.seconds:g} s "
          f"(+{WARMUP_S:g} s warm-up)", file=sys.stderr)
    # The client's own garbage collections would show as server latency: what
    # seeding and start-up left is frozen out of their reach, as in the server.
    gc.collect()
    gc.freeze()
    server_cpu, client_cpu = cpu_seconds(server.process.pid), time.process_time()
    database_before = database_cpu(box)
    measured = asyncio.run(
        load(server, pairs, args.rate, args.seconds, args.wrong_rate, rng)
    )
    database = sum(cpu - database_before.get(pid, 0.0)
                   for pid, cpu in database_cpu(box).items())
    total = measured.sent + int(WARMUP_S * args.rate)
    server_cpu = (cpu_seconds(server.process.pid) - server_cpu) / total * 1000
    client_cpu = (time.process_time() - client_cpu) / total * 1000
    database = database / total * 1000
    baseline: list[float] = []
    if args.baseline:
        baseline = asyncio.run(
            load(server, pairs, args.rate, args.seconds, 0.0, rng, health=True)
        ).latencies
    return Run(measured, server_cpu, database, client_cpu, baseline)


def figures_of(args: argparse.Namespace, run: Run) -> Figures:
    measured, baseline = run.measured, run.baseline
    latencies, errors, sent, elapsed = (
        measured.latencies, measured.errors, measured.sent, measured.elapsed
    )
    return Figures(
        rate=args.rate, seconds=args.seconds, sent=sent,
        achieved_rate=round(sent / elapsed, 1) if elapsed > 0 else 0.0,
        ok=len(latencies) - sum(errors.values()), errors=dict(errors),
        p50_ms=round(percentile(latencies, 50), 2), p90_ms=round(percentile(latencies, 90), 2),
        p99_ms=round(percentile(latencies, 99), 2),
        p999_ms=round(percentile(latencies, 99.9), 2),
        max_ms=round(max(latencies, default=float("nan")), 2), retirees=args.retirees,
        sent_p50_ms=round(percentile(measured.service, 50), 2),
        sent_p99_ms=round(percentile(measured.service, 99), 2),
        server_cpu_ms_per_request=round(run.server_cpu_ms, 3),
        database_cpu_ms_per_request=round(run.database_cpu_ms, 3),
        client_cpu_ms_per_request=round(run.client_cpu_ms, 3),
        load_average=round(os.getloadavg()[0], 2),
        baseline_p50_ms=round(percentile(baseline, 50), 2) if baseline else None,
        baseline_p99_ms=round(percentile(baseline, 99), 2) if baseline else None,
    )


def report(figures: Figures) -> str:
    """The figures as the lines a person reads."""
    lines = [
        f"status query over mutual TLS, {figures.sent:,} requests at {figures.rate:g}/s "
        f"(achieved {figures.achieved_rate:g}/s), {figures.retirees:,} retirees:",
        f"  p50 {figures.p50_ms:.2f} ms   p90 {figures.p90_ms:.2f} ms   "
        f"p99 {figures.p99_ms:.2f} ms   p99.9 {figures.p999_ms:.2f} ms   "
        f"max {figures.max_ms:.2f} ms",
        f"  from the moment sent (without the client's own lag): p50 "
        f"{figures.sent_p50_ms:.2f} ms   p99 {figures.sent_p99_ms:.2f} ms",
        f"  errors: {figures.errors or 'none'}",
        f"  CPU per request: server {figures.server_cpu_ms_per_request:.3f} ms, "
        f"PostgreSQL {figures.database_cpu_ms_per_request:.3f} ms, client "
        f"{figures.client_cpu_ms_per_request:.3f} ms; load average "
        f"{figures.load_average:g} on {os.cpu_count()} CPUs (other work on the machine "
        "shows in the latencies)",
    ]
    if figures.baseline_p99_ms is not None:
        lines.append(
            f"  baseline (gRPC health check, same rate and channel): p50 "
            f"{figures.baseline_p50_ms:.2f} ms   p99 {figures.baseline_p99_ms:.2f} ms"
        )
    lines.append(f"  target p99 < {TARGET_P99_MS:g} ms: "
                 f"{'met' if figures.meets_target else 'NOT met'}")
    return "\n".join(lines)


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rate", type=float, default=500.0,
                        help="status queries per second, sent on a fixed schedule "
                        "(default 500)")
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="measured duration (default 10), after 2 s of warm-up")
    parser.add_argument("--retirees", type=int, default=2000,
                        help="retirees seeded in the benchmark's own database (default 2000)")
    parser.add_argument("--wrong-rate", type=float, default=0.0,
                        help="share of queries with a wrong second factor (default 0)")
    parser.add_argument("--baseline", action="store_true",
                        help="also measure the gRPC health check at the same rate (what "
                        "this machine's gRPC, TLS and load allow without lifecert's work)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lifecert api bench",
                                     description=__doc__.split("\n\n")[0])
    add_bench_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
