"""``lifecert bench pipeline``: the live pipeline (Kafka -> worker -> PostgreSQL) against
the raw speed of the same machine, in one run.

On its own topics (a fresh prefix) and database, the benchmark publishes a generated
campaign (cached by size and seed) and measures:

1. the raw consume rate of the events topic: aiokafka reading every record of it, no
   decoding (best of two);
2. the floors: the same topic delivered by faust (the worker's consumer settings) to an
   agent that does nothing, then by the worker's batch data plane to a handler that only
   acknowledges (``python -m streams.floor``), each from its first record to its last:
   what each way of delivering records allows before any decision;
3. the raw COPY rate of PostgreSQL: rows shaped like the status read model, COPY'd into a
   table of the same database in one transaction;
4. the pipeline: ``lifecert worker`` and ``lifecert projections run`` started on the
   published log, until both are idle; records of the events topic per second, from
   their start (the worker's start-up included) and steady (from the worker's first
   commit), with the CPU seconds each process used;
5. a full projection rebuild (``lifecert projections rebuild``) of what the pipeline
   wrote;
6. latency at a steady rate: on a second fresh topic set, with the worker and a
   projection writer running, the campaign's events are published at ``--rate`` events/s
   for ``--latency-seconds`` (events recorded before the campaign's first clock moment:
   a moment is a burst of decisions, not a steady rate); for every event whose decision
   yields a RetireeStatus, the time from handing it to the producer to the commit of the
   projection transaction holding that status (percentiles).

7. the pure replay of the same campaign file (``lifecert replay``, one process, no
   broker or database): the domain's own speed on this machine.

Targets (issue 17, which restated the live-pipeline issue's): the pipeline sustains at
least a quarter of the pure replay's events/s, from start to idle; a rebuild for
1,000,000 retirees takes under five minutes (for a smaller campaign the time is also
scaled linearly to 1,000,000 retirees, an estimate); p99 latency under 500 ms at 1,000
events/s. The raw consume rate and faust's floor are printed beside them.

The machine is shared by the broker, PostgreSQL, the worker and the projections: rates
are per wall-clock second of the whole system, and the CPU seconds each of them used
during the pipeline run are printed beside them (the broker's and PostgreSQL's when they
run on this machine), with the CPU time per event: what a campaign costs the machine.
``python -m lifecert_dev.bench.pipeline projector ...`` is the projection writer of step 6
(``lifecert projections run`` that notes each commit).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

TARGET_RATIO = 0.25  # of the pure replay's events/s
TARGET_REBUILD_S = 300.0  # for 1,000,000 retirees
TARGET_P99_MS = 500.0
REFERENCE_RETIREES = 1_000_000
UNTIL = date(2017, 12, 31)
COPY_CHUNK = 50_000


def add_parser(benches: argparse._SubParsersAction) -> None:
    parser = benches.add_parser(
        "pipeline",
        help="Kafka -> worker -> PostgreSQL against raw consume and COPY rates; rebuild; "
        "latency at a steady rate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--retirees", type=int, default=20_000,
                        help="campaign size (default 20000; the issue's figure: 1000000)")
    parser.add_argument("--seed", type=int, default=2017)
    parser.add_argument(
        "--work-dir", type=Path, default=Path("data/bench"),
        help="where the generated campaign and the runs' logs are kept (default data/bench)",
    )
    parser.add_argument("--bootstrap", help="Kafka broker (default: the local stack's)")
    parser.add_argument(
        "--dsn", help="PostgreSQL DSN used to create and drop the benchmark's databases "
        "(default: $LIFECERT_POSTGRES_DSN, else the local stack's)",
    )
    parser.add_argument("--rate", type=float, default=1000.0,
                        help="events/s of the latency phase (default 1000)")
    parser.add_argument("--latency-seconds", type=float, default=30.0,
                        help="how long the latency phase publishes (default 30)")
    parser.add_argument("--timeout", type=float, default=4 * 3600.0,
                        help="give up on a phase after this many seconds")
    parser.add_argument("--workers", type=int, default=1, choices=range(1, 7),
                        metavar="{1..6}", help="worker processes of the pipeline run "
                        "(default 1; at most the events topic's 6 partitions do work)")
    parser.add_argument("--latency-only", action="store_true",
                        help="run only the latency phase (step 6)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the topics and databases afterwards")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.set_defaults(func=run_pipeline_bench)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ------------------------------------------------------------------ raw rates


async def _consume_all(bootstrap: str, topic: str) -> tuple[int, float, float]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from lifecert.pipeline import broker_clients
    from streams import faust_internals

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
        **broker_clients.client_security(bootstrap=bootstrap).aiokafka(),
        auto_offset_reset="earliest", max_partition_fetch_bytes=4 << 20,
        fetch_max_bytes=64 << 20,
    )
    await consumer.start()
    try:
        await faust_internals.load_topic_metadata(consumer, topic)
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        total = sum((await consumer.end_offsets(tps)).values())
        count = 0
        wall, cpu = time.perf_counter(), time.process_time()
        while count < total:
            batches = await consumer.getmany(timeout_ms=1000, max_records=50_000)
            for records in batches.values():
                count += len(records)
        return count, time.perf_counter() - wall, time.process_time() - cpu
    finally:
        await consumer.stop()


def raw_consume(bootstrap: str, topic: str) -> dict[str, Any]:
    """aiokafka reading every record of ``topic`` (best of two)."""
    runs = [asyncio.run(_consume_all(bootstrap, topic)) for _ in range(2)]
    count = runs[0][0]
    wall = min(r[1] for r in runs)
    cpu = min(r[2] for r in runs)
    return {"records": count, "seconds": round(wall, 3), "cpu_seconds": round(cpu, 3),
            "per_s": round(count / wall), "per_cpu_s": round(count / max(cpu, 1e-6))}


def raw_copy(dsn: str, rows: int) -> dict[str, Any]:
    """COPY ``rows`` status-shaped rows into a fresh table, in one transaction."""
    from projections.connection import connect

    chunk = "".join(
        f"FS{n:08d}\tfoshan-2017\tCERTIFIED\tCHANCHENG\tFOSHAN\tFACE_APP\t"
        f"2017-04-0{1 + n % 9}T10:00:00+08:00\t{uuid.uuid4()}\t2017-04-01T10:00:00+08:00\t"
        f"bench.lifecert.status\t{n % 6}\t{n}\n"
        for n in range(min(rows, COPY_CHUNK))
    )
    conn = connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "CREATE TABLE bench_copy (retiree_id text, policy text, status text, "
                "district text, residence text, completed_by text, completed_at timestamptz, "
                "event_id text, recorded_at timestamptz, source_topic text, "
                "source_partition integer, source_offset bigint)"
            )
        conn.commit()
        left = rows
        started = time.perf_counter()
        with conn.cursor() as cur:
            while left > 0:
                part = chunk if left >= COPY_CHUNK else "".join(
                    chunk.splitlines(keepends=True)[:left])
                cur.copy_expert("COPY bench_copy FROM STDIN", io.StringIO(part))
                left -= min(left, COPY_CHUNK)
        conn.commit()
        seconds = time.perf_counter() - started
        with conn.cursor() as cur:
            cur.execute("DROP TABLE bench_copy")
        conn.commit()
    finally:
        conn.close()
    return {"rows": rows, "seconds": round(seconds, 3), "per_s": round(rows / seconds)}


def faust_floor(run: Any, timeout: float, plane: str = "faust") -> dict[str, Any]:
    """Every record of the events topic delivered to code that only acknowledges it
    (``python -m streams.floor``): by faust to an agent (``plane`` faust), or by the
    worker's batch data plane (batch): the most a worker can take on this machine."""
    from lifecert.pipeline.topics import EVENTS

    topic = run.topics[EVENTS].name
    records = _topic_ends(run.bootstrap, [topic])
    out = run.work_dir / f"floor-{plane}.json"
    out.unlink(missing_ok=True)
    argv = [sys.executable, "-m", "streams.floor", "--bootstrap", run.bootstrap,
            "--topic", topic, "--records", str(records), "--plane", plane,
            "--data-dir", str(run.work_dir / f"floor-{plane}-data"), "--out", str(out)]
    log = run.work_dir / "logs" / f"floor-{plane}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as sink:
        child = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT)
        try:
            child.wait(timeout=timeout)
        except BaseException:
            child.kill()
            raise
    if not out.exists():
        raise SystemExit(f"lifecert bench: the faust floor run gave no figures; see {log}")
    return dict(json.loads(out.read_text(encoding="utf-8")))


# ------------------------------------------------------------------ processes


def _cpu_seconds(pid: int, children: bool = False) -> float:
    """user + system CPU of a running process (Linux); with ``children``, also that of
    its children that have exited (PostgreSQL's backends, once a client disconnects)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    used = int(fields[11]) + int(fields[12])
    if children:
        used += int(fields[13]) + int(fields[14])
    return used / os.sysconf("SC_CLK_TCK")


def _service_cpu() -> dict[str, float]:
    """CPU seconds used so far by the local broker (java running kafka.Kafka) and by every
    PostgreSQL process, read from /proc; a service not found here is left out."""
    found: dict[str, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
            cmdline = (entry / "cmdline").read_bytes() if comm == "java" else b""
        except OSError:
            continue
        service = "postgres" if comm == "postgres" else \
            "kafka" if b"kafka.Kafka" in cmdline else None
        if service is not None:
            cpu = _cpu_seconds(int(entry.name), children=True)
            if cpu == cpu:  # not NaN: the process was still there
                found[service] = found.get(service, 0.0) + cpu
    return found


def _topic_ends(bootstrap: str, topics: Sequence[str]) -> int:
    from lifecert.pipeline import broker_clients

    consumer = broker_clients.consumer(bootstrap)
    try:
        return sum(sum(broker_clients.end_offsets(consumer, name).values()) for name in topics)
    finally:
        consumer.close()


@dataclass
class Progress:
    """(seconds since start, worker records behind, projection records behind)."""

    started: float = field(default_factory=time.monotonic)
    samples: list[tuple[float, int, int]] = field(default_factory=list)

    def __call__(self, worker: int, projections: int) -> None:
        now = time.monotonic() - self.started
        if worker >= 0 and projections >= 0:
            self.samples.append((now, worker, projections))
        if not self.samples or len(self.samples) % 15 == 1:
            _say(f"  {now:7.1f} s: worker {worker:,} records behind, "
                 f"projections {projections:,}")


def pipeline(run: Any, timeout: float, workers: int = 1) -> dict[str, Any]:
    """Worker(s) and projections from the start of the published log until idle."""
    from lifecert.pipeline.topics import EVENTS
    from lifecert_dev import live

    records = _topic_ends(run.bootstrap, [run.topics[EVENTS].name])
    logs = run.work_dir / "logs"
    services_before = _service_cpu()
    progress = Progress()
    with contextlib.ExitStack() as running:
        deciders = [running.enter_context(live.running(
            run.worker_argv(f"worker{n or ''}"), logs / f"worker{n or ''}.log"))
            for n in range(workers)]
        projections = running.enter_context(
            live.running(run.projections_argv(), logs / "projections.log"))
        idle = live.wait_until_idle(run, timeout, [*deciders, projections], progress)
        elapsed = time.monotonic() - progress.started
        cpu = {"worker": sum(_cpu_seconds(w.pid) for w in deciders),
               "projections": _cpu_seconds(projections.pid)}
        services_after = _service_cpu()
    services = {name: round(used - services_before.get(name, 0.0), 1)
                for name, used in services_after.items() if name in services_before}
    if not idle:
        raise SystemExit(f"lifecert bench: the pipeline did not finish within {timeout:.0f} s; "
                         f"see {logs}")
    # Steady: from the first measurement where the worker had committed anything.
    first = next((s for s in progress.samples if s[1] < records), None)
    steady = None
    if first is not None and elapsed - first[0] > 1:
        steady = round((first[1]) / (elapsed - first[0]))
    return {
        "workers": workers,
        "records": records,
        "seconds": round(elapsed, 2),
        "per_s": round(records / elapsed),
        "steady_per_s": steady,
        "worker_cpu_seconds": round(cpu["worker"], 1),
        "projections_cpu_seconds": round(cpu["projections"], 1),
        "per_worker_cpu_s": round(records / cpu["worker"]) if cpu["worker"] > 0 else None,
        "service_cpu_seconds": services,
    }


def pure_replay(events: Path, work: Path) -> dict[str, Any]:
    """``lifecert replay`` of the campaign file: the domain's speed without the pipeline."""
    from lifecert_dev.bench.replay import timed_child

    lines = sum(1 for _ in events.open("rb"))
    timing = timed_child(
        [sys.executable, "-m", "lifecert.cli", "replay", str(events), "--policy",
         "foshan-2017", "--until", str(UNTIL), "--out", str(work / "replay-out"), "--quiet"])
    return {"events": lines, "seconds": round(timing.wall_s, 2),
            "cpu_seconds": round(timing.cpu_s, 2), "per_s": round(lines / timing.wall_s),
            "per_cpu_s": round(lines / timing.cpu_s)}


def rebuild(run: Any, timeout: float) -> dict[str, Any]:
    from projections.writer import read_topics

    records = _topic_ends(run.bootstrap, read_topics(run.topics))
    argv = [sys.executable, "-m", "lifecert.cli", "projections", "rebuild",
            "--dsn", run.dsn_for("projections"), "--bootstrap", run.bootstrap,
            "--topic-prefix", run.prefix, "--quiet"]
    log = run.work_dir / "logs" / "rebuild.log"
    started = time.perf_counter()
    with log.open("wb") as out:
        child = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        try:
            _, status, usage = os.wait4(child.pid, 0)
        except BaseException:
            child.kill()
            raise
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"lifecert bench: the rebuild failed; see {log}")
    return {"records": records, "seconds": round(seconds, 2),
            "per_s": round(records / seconds),
            "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1)}


# ------------------------------------------------------------------ latency


def _planned(events: Path, policy: Any, count: int, keys: Any) -> list[Any]:
    """Up to the first ``count`` events of the campaign, ready to send: those recorded
    before its first clock moment. A moment decides every retiree of a partition at once
    (holds at the deadline): a burst of work, not a steady rate, so the latency window
    holds none."""
    from lifecert.pipeline.publish import plan

    def malformed(line_no: int, raw: bytes, error: Any) -> None:
        raise SystemExit(f"lifecert bench: line {line_no} of {events}: {error}")

    steps: list[Any] = []
    with events.open("rb") as lines:
        for kind, item in plan(lines, policy, malformed, keys=keys):
            if kind == "tick" or len(steps) >= count:
                break
            steps.append(item)
    return steps


def latency(run: Any, events: Path, policy: Any, rate: float, seconds: float,
            timeout: float) -> dict[str, Any]:
    """Publish at ``rate`` events/s with the worker and a noting projection writer
    running; publish-to-commit latency of every event that yields a status."""
    from lifecert.domain.fold import uuid5
    from lifecert.pipeline import broker_clients
    from lifecert.pipeline.topics import EVENTS
    from lifecert_dev import live

    warmup = 200
    keys = run.keystore()
    try:
        steps = _planned(events, policy, warmup + int(rate * seconds), keys)
    finally:
        keys.close()
    if len(steps) < warmup + rate:
        raise SystemExit(f"lifecert bench: {events} has too few events before its first "
                         f"clock moment for the latency phase; use more --retirees")
    logs = run.work_dir / "logs"
    commits = run.work_dir / "commits.tsv"
    projector = [sys.executable, "-m", "lifecert_dev.bench.pipeline", "projector",
                 "--dsn", run.dsn, "--bootstrap", run.bootstrap, "--topic-prefix", run.prefix,
                 "--out", str(commits)]
    producer = broker_clients.producer(run.bootstrap)
    topic = run.topics[EVENTS].name
    sent: dict[str, float] = {}
    try:
        with (
            live.running(run.worker_argv(), logs / "latency-worker.log") as worker,
            live.running(projector, logs / "latency-projector.log") as writer,
        ):
            children = [worker, writer]
            # Warm up: both running and caught up before the clock starts.
            for item in steps[:warmup]:
                producer.send(topic, value=item.value, key=item.key)
            producer.flush(60)
            if not live.wait_until_idle(run, min(timeout, 300), children):
                raise SystemExit(f"lifecert bench: the latency run did not warm up; see {logs}")
            _say(f"  publishing {len(steps) - warmup:,} records at {rate:,.0f} events/s ...")
            interval = 1.0 / rate
            started = time.perf_counter()
            n = 0
            for item in steps[warmup:]:
                due = started + n * interval
                ahead = due - time.perf_counter()
                if ahead > 0.001:
                    time.sleep(ahead)
                event = item.event
                status_id = uuid5(f"{policy.name}|RetireeStatus|{event['retiree_id']}|"
                                  f"{event['event_id']}")
                sent[status_id] = time.time()
                producer.send(topic, value=item.value, key=item.key)
                n += 1
            producer.flush(60)
            published_in = time.perf_counter() - started
            if not live.wait_until_idle(run, timeout, children):
                raise SystemExit(f"lifecert bench: the latency run did not finish; see {logs}")
    finally:
        producer.close(timeout=10)
    committed: dict[str, float] = {}
    for line in commits.read_text(encoding="utf-8").splitlines():
        event_id, _, at = line.partition("\t")
        committed.setdefault(event_id, float(at))
    found = sorted((committed[k] - t) * 1000 for k, t in sent.items() if k in committed)
    if not found:
        raise SystemExit("lifecert bench: no published event reached the projections")
    # The worker's part: until the producer of the worker stamped the status record.
    produced = _status_times(run)
    worker_part = sorted((produced[k] - t) * 1000 for k, t in sent.items() if k in produced)
    with (run.work_dir / "latency.tsv").open("w", encoding="utf-8") as out:
        out.write("published\tstatus_made\tcommitted\n")  # epoch seconds, per event
        for k, t in sorted(sent.items(), key=lambda item: item[1]):
            out.write(f"{t:.6f}\t{produced.get(k, '')}\t{committed.get(k, '')}\n")
    return {
        "rate": rate,
        "published": n,
        "achieved_rate": round(n / published_in),
        "measured": len(found),
        "ms": _percentiles(found),
        "worker_ms": _percentiles(worker_part),
    }


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}

    def pct(p: float) -> float:
        return round(values[min(len(values) - 1, int(p / 100 * len(values)))], 1)

    return {"p50": pct(50), "p90": pct(90), "p95": pct(95), "p99": pct(99),
            "p99.9": pct(99.9), "max": round(values[-1], 1)}


def _status_times(run: Any) -> dict[str, float]:
    """Status event id -> the record's timestamp (when the worker's producer made it)."""
    from lifecert.events import codec
    from lifecert.pipeline import broker_clients
    from lifecert.pipeline.topics import STATUS

    consumer = broker_clients.consumer(run.bootstrap)
    try:
        return {
            codec.decode(record.value)["event_id"]: record.timestamp / 1000
            for record in broker_clients.read_to_end(consumer, run.topics[STATUS].name, timeout=60)
        }
    finally:
        consumer.close()


def projector_main(argv: Sequence[str] | None = None) -> int:
    """A projection writer (as ``lifecert projections run``) that appends, after each
    committed transaction, one line per status it held: event id and commit time."""
    from lifecert.pipeline.topics import layout
    from projections.writer import ProjectionWriter, WriterOptions

    parser = argparse.ArgumentParser(prog="python -m lifecert_dev.bench.pipeline")
    parser.add_argument("role", choices=["projector"])
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic-prefix", required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    from lifecert.pipeline.credentials import set_process_component

    set_process_component("projections")
    out = args.out.open("a", encoding="utf-8")

    def noted(batch: Any) -> None:
        at = time.time()
        out.write("".join(f"{row.event_id}\t{at:.6f}\n" for row in batch.statuses.values()))
        out.flush()

    writer = ProjectionWriter(args.dsn, args.bootstrap, layout(args.topic_prefix),
                              WriterOptions(), on_commit=noted)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: writer.stop())
    try:
        writer.run()
    finally:
        out.close()
    return 0


# ------------------------------------------------------------------ the run


def _new_run(bootstrap: str, admin_dsn: str, work: Path, tag: str) -> Any:
    from lifecert_dev import live

    run = live.LiveRun(bootstrap, admin_dsn, f"bench{tag}.", f"lifecert_bench_{tag}",
                       work / f"run-{tag}")
    live.prepare(run)
    return run


def run_pipeline_bench(args: argparse.Namespace) -> int:
    from lifecert.domain.policy import load_policy
    from lifecert.endpoints import kafka_bootstrap, postgres_dsn
    from lifecert.pipeline import broker_errors
    from lifecert.pipeline.topics import EVENTS
    from lifecert_dev import live
    from lifecert_dev.bench.replay import campaign_file

    bootstrap = kafka_bootstrap(args.bootstrap)
    admin_dsn = postgres_dsn(args.dsn)
    policy = load_policy("foshan-2017")
    work = args.work_dir.resolve()
    events = campaign_file(work, args.retirees, args.seed)
    tag = uuid.uuid4().hex[:8]
    figures: dict[str, Any] = {"retirees": args.retirees}
    runs = []
    try:
        if args.latency_only:
            second = _new_run(bootstrap, admin_dsn, work, tag + "l")
            runs.append(second)
            figures["latency"] = latency(second, events, policy, args.rate,
                                         args.latency_seconds, args.timeout)
            print(json.dumps(figures, indent=2))
            return 0
        run = _new_run(bootstrap, admin_dsn, work, tag)
        runs.append(run)
        _say(f"publishing {events.name} to {run.topics[EVENTS].name} ...")
        published = live.publish(run, events, policy, UNTIL)
        figures["publish"] = {"events": published.events, "records": published.records,
                              "seconds": round(published.seconds, 1)}
        _say("raw consume rate (aiokafka, best of two) ...")
        figures["raw_consume"] = raw_consume(bootstrap, run.topics[EVENTS].name)
        _say("faust floor: an agent that only acknowledges records ...")
        figures["faust_floor"] = faust_floor(run, args.timeout)
        _say("batch floor: the worker's data plane, a handler that only acknowledges ...")
        figures["batch_floor"] = faust_floor(run, args.timeout, plane="batch")
        _say("raw COPY rate ...")
        figures["raw_copy"] = raw_copy(run.dsn, figures["raw_consume"]["records"])
        _say("pure replay of the same campaign (lifecert replay) ...")
        figures["replay"] = pure_replay(events, work)
        _say("pipeline: worker + projections until idle ...")
        figures["pipeline"] = pipeline(run, args.timeout, args.workers)
        _say("projection rebuild ...")
        figures["rebuild"] = rebuild(run, args.timeout)
        _say(f"latency at {args.rate:,.0f} events/s ...")
        second = _new_run(bootstrap, admin_dsn, work, tag + "l")
        runs.append(second)
        figures["latency"] = latency(second, events, policy, args.rate,
                                     args.latency_seconds, args.timeout)
    except broker_errors.KafkaUnavailable as exc:
        raise SystemExit(f"lifecert bench: {exc}") from None
    finally:
        if not args.keep:
            for made in runs:
                try:
                    live.discard(made)
                except Exception as exc:  # cleanup must not hide the figures' failure
                    _say(f"could not remove {made.prefix}*: {exc}")
    _judge(figures)
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print(_describe(figures))
    return 0


def _judge(f: dict[str, Any]) -> None:
    pipe, raw, replay = f["pipeline"], f["raw_consume"], f["replay"]
    # Events per second on both sides: the pipeline's records less the clock ticks.
    events_per_s = f["publish"]["events"] / pipe["seconds"]
    ratio = events_per_s / replay["per_s"]
    scaled = f["rebuild"]["seconds"] * REFERENCE_RETIREES / f["retirees"]
    f["targets"] = {
        "pipeline_events_per_s": round(events_per_s),
        "ratio": round(ratio, 4),
        "raw_consume_ratio": round(pipe["per_s"] / raw["per_s"], 4),
        "ratio_target": TARGET_RATIO,
        "ratio_met": ratio >= TARGET_RATIO,
        "rebuild_seconds_for_1m": round(scaled, 1),
        "rebuild_scaled": f["retirees"] != REFERENCE_RETIREES,
        "rebuild_target_seconds": TARGET_REBUILD_S,
        "rebuild_met": scaled < TARGET_REBUILD_S,
        "p99_ms": f["latency"]["ms"]["p99"],
        "p99_target_ms": TARGET_P99_MS,
        "p99_met": f["latency"]["ms"]["p99"] < TARGET_P99_MS,
    }


def _cpu_per_event(f: dict[str, Any]) -> str:
    """CPU microseconds each part of the pipeline run spent per event."""
    pipe = f["pipeline"]
    events = f["publish"]["events"]
    parts = {"worker": pipe["worker_cpu_seconds"], "projections": pipe["projections_cpu_seconds"],
             **pipe.get("service_cpu_seconds", {})}
    shown = ", ".join(f"{name} {seconds / events * 1e6:,.0f}" for name, seconds in parts.items())
    total = sum(parts.values())
    return (f"    CPU per event (us): {shown}; all {total / events * 1e6:,.0f} "
            f"(the pure replay: {f['replay']['cpu_seconds'] / events * 1e6:,.1f})")


def _describe(f: dict[str, Any]) -> str:
    raw, copy, pipe, reb, lat, t = (f["raw_consume"], f["raw_copy"], f["pipeline"],
                                    f["rebuild"], f["latency"], f["targets"])
    floor, batch, replay = f["faust_floor"], f["batch_floor"], f["replay"]
    services = pipe.get("service_cpu_seconds", {})

    def ok(met: bool) -> str:
        return "met" if met else "MISSED"

    ms, wms = lat["ms"], lat["worker_ms"]
    scaled = "estimate, scaled linearly" if t["rebuild_scaled"] else "measured"
    return "\n".join([
        "",
        f"pipeline benchmark: {f['retirees']:,} retirees, {raw['records']:,} records on the "
        f"events topic ({f['publish']['events']:,} events and the clock ticks)",
        f"  pure replay (lifecert replay) {replay['per_s']:>10,} events/s  "
        f"({replay['per_cpu_s']:,} per CPU second; {replay['seconds']} s)",
        f"  raw consume (aiokafka)       {raw['per_s']:>10,} records/s  "
        f"({raw['per_cpu_s']:,} per CPU second)",
        f"  faust floor (agent only acks){floor['per_s']:>10,} records/s  "
        f"({floor['per_cpu_s']:,} per CPU second; "
        f"{floor['per_s'] / raw['per_s']:.4f} of raw consume)",
        f"  batch floor (data plane, acks){batch['per_s']:>9,} records/s  "
        f"({batch['per_cpu_s']:,} per CPU second; {batch['per_s'] / raw['per_s']:.4f} of raw "
        f"consume; {batch['batches']:,} fetches, up to {batch['largest_batch']:,} records)",
        f"  raw COPY (PostgreSQL)        {copy['per_s']:>10,} rows/s",
        f"  pipeline Kafka->worker->PG   {t['pipeline_events_per_s']:>10,} events/s start to "
        f"idle ({pipe['seconds']:,} s, the worker's start-up included; "
        f"{pipe['per_s']:,} records/s)",
        f"                               {pipe['steady_per_s'] or 0:>10,} records/s steady "
        f"(from the worker's first commit)",
        f"    {pipe['workers']} worker(s) {pipe['worker_cpu_seconds']} CPU s "
        f"({pipe['per_worker_cpu_s'] or 0:,} records per worker CPU second), "
        f"projections {pipe['projections_cpu_seconds']} CPU s"
        + "".join(f", {name} {seconds} CPU s" for name, seconds in services.items()),
        _cpu_per_event(f),
        f"  pipeline / pure replay       {t['ratio']:>10.4f} start to idle "
        f"(target >= {TARGET_RATIO}): {ok(t['ratio_met'])}; / raw consume "
        f"{t['raw_consume_ratio']:.4f}; / faust floor {pipe['per_s'] / floor['per_s']:.2f}",
        f"  projection rebuild           {reb['seconds']:>10,} s for {reb['records']:,} records "
        f"({reb['per_s']:,}/s, {reb['cpu_seconds']} CPU s)",
        f"    for 1,000,000 retirees     {t['rebuild_seconds_for_1m']:>10,} s ({scaled}; "
        f"target < {TARGET_REBUILD_S:.0f} s): {ok(t['rebuild_met'])}",
        f"  latency publish->commit at {lat['rate']:,.0f} events/s (achieved "
        f"{lat['achieved_rate']:,}/s, {lat['measured']:,} of {lat['published']:,} events "
        f"measured)",
        f"    p50 {ms['p50']} ms, p90 {ms['p90']} ms, p95 {ms['p95']} ms, p99 {ms['p99']} ms, "
        f"p99.9 {ms['p99.9']} ms, max {ms['max']} ms (target p99 < {TARGET_P99_MS:.0f} ms): "
        f"{ok(t['p99_met'])}",
        f"    of which publish->status record made by the worker: p50 {wms.get('p50')} ms, "
        f"p99 {wms.get('p99')} ms, max {wms.get('max')} ms",
    ])


if __name__ == "__main__":
    sys.exit(projector_main())
