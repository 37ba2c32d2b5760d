"""``lifecert bench transactions``: what one Kafka transaction per worker batch would cost.

Issue 17, item 2: the worker's outputs, changelog entries and offsets could commit in one
Kafka transaction per batch. This measures, on the broker of the local stack, the same
batches sent by an aiokafka producer as the worker sends them (the records of a batch,
then one wait for every acknowledgement), first without a transaction, then each batch in
one transaction with its consumer offsets (``send_offsets_to_transaction``). The records
are shaped like the worker's (about 300-byte values keyed by retiree id, spread over the
partitions of three output topics and a changelog), on fresh topics of the events topic's
partition count, deleted afterwards. Each mode runs twice, alternating; the best run of
each is kept. Printed: seconds and CPU seconds per batch for each mode, the difference,
and what it would be per record.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from typing import Any

TOPICS = ("outputs", "statuses", "verdicts", "changelog")


def add_parser(benches: argparse._SubParsersAction) -> None:
    parser = benches.add_parser(
        "transactions",
        help="one Kafka transaction per worker batch against none (issue 17, item 2)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--batches", type=int, default=60, help="batches per run (default 60)")
    parser.add_argument("--batch", type=int, default=2000,
                        help="records per batch (default 2000, the worker's BATCH_MAX)")
    parser.add_argument("--bootstrap", help="Kafka broker (default: the local stack's)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.set_defaults(func=run_transactions_bench)


async def _run(bootstrap: str, topics: list[str], partitions: int, batches: int, size: int,
               transactional: bool) -> dict[str, float]:
    from aiokafka import AIOKafkaProducer, TopicPartition

    from lifecert.pipeline.broker_clients import client_security

    options: dict[str, Any] = {"transactional_id": f"bench-txn-{uuid.uuid4().hex[:8]}"} \
        if transactional else {}
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                enable_idempotence=True, linger_ms=0,
                                **client_security(bootstrap=bootstrap).aiokafka(), **options)
    await producer.start()
    value = os.urandom(300)
    group = f"bench-txn-{uuid.uuid4().hex[:8]}"
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        for b in range(batches):
            if transactional:
                await producer.begin_transaction()
            futures = []
            for n in range(size):
                key = b"FS%08d" % ((b * size + n) * 7919 % 10_000_000)
                topic = topics[n % len(topics)]
                futures.append(await producer.send(topic, value, key=key))
            if transactional:
                offsets = {TopicPartition(topics[0], p): (b + 1) * size for p in range(partitions)}
                await producer.send_offsets_to_transaction(offsets, group)
                await producer.commit_transaction()
            for future in futures:
                await future
        return {"seconds": time.perf_counter() - wall, "cpu_seconds": time.process_time() - cpu}
    finally:
        await producer.stop()


def run_transactions_bench(args: argparse.Namespace) -> int:
    from kafka.admin import NewTopic

    from lifecert.endpoints import kafka_bootstrap
    from lifecert.pipeline import broker_clients
    from lifecert.pipeline.credentials import ADMIN, acting_as
    from lifecert.pipeline.topics import EVENTS, layout

    bootstrap = kafka_bootstrap(args.bootstrap)
    partitions = layout(None)[EVENTS].partitions
    tag = uuid.uuid4().hex[:8]
    topics = [f"bench{tag}.{name}" for name in TOPICS]
    runs: dict[str, list[dict[str, float]]] = {"plain": [], "transactional": []}
    with acting_as(ADMIN):
        with broker_clients.admin_client(bootstrap) as admin:
            admin.create_topics([NewTopic(t, partitions, -1) for t in topics])
        try:
            for _ in range(2):
                for mode in runs:
                    print(f"{mode}: {args.batches} batches of {args.batch:,} records ...",
                          file=sys.stderr, flush=True)
                    runs[mode].append(asyncio.run(_run(
                        bootstrap, topics, partitions, args.batches, args.batch,
                        mode == "transactional")))
        finally:
            with broker_clients.admin_client(bootstrap) as admin:
                admin.delete_topics(topics)
    best = {mode: min(found, key=lambda r: r["seconds"]) for mode, found in runs.items()}
    per_batch = {mode: {k: v / args.batches for k, v in r.items()} for mode, r in best.items()}
    extra = per_batch["transactional"]["seconds"] - per_batch["plain"]["seconds"]
    extra_cpu = per_batch["transactional"]["cpu_seconds"] - per_batch["plain"]["cpu_seconds"]
    figures = {
        "batches": args.batches, "records_per_batch": args.batch, "partitions": partitions,
        "per_batch_ms": {m: round(v["seconds"] * 1000, 2) for m, v in per_batch.items()},
        "per_batch_cpu_ms": {m: round(v["cpu_seconds"] * 1000, 2) for m, v in per_batch.items()},
        "transaction_ms_per_batch": round(extra * 1000, 2),
        "transaction_cpu_ms_per_batch": round(extra_cpu * 1000, 2),
        "transaction_us_per_record": round(extra / args.batch * 1e6, 2),
        "records_per_s": {m: round(args.batch / v["seconds"]) for m, v in per_batch.items()},
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    pb, pc = figures["per_batch_ms"], figures["per_batch_cpu_ms"]
    print(f"\ntransactions benchmark: {args.batches} batches of {args.batch:,} records over "
          f"{len(TOPICS)} topics of {partitions} partitions (best of two runs each)\n"
          f"  without a transaction   {pb['plain']:>8} ms per batch ({pc['plain']} ms CPU), "
          f"{figures['records_per_s']['plain']:,} records/s\n"
          f"  one per batch           {pb['transactional']:>8} ms per batch "
          f"({pc['transactional']} ms CPU), {figures['records_per_s']['transactional']:,} "
          f"records/s\n"
          f"  the transaction costs   {figures['transaction_ms_per_batch']:>8} ms per batch "
          f"({figures['transaction_cpu_ms_per_batch']} ms CPU of the producer), "
          f"{figures['transaction_us_per_record']} us per record")
    return 0
