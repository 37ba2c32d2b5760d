"""``lifecert log dump``: a topic written out as interchange JSON lines.

    lifecert log dump --out events.jsonl              # the input log, for `lifecert replay`
    lifecert log dump --topic verdicts --out v.jsonl  # any lifecert topic, for an audit

The events topic is read from the beginning to its end as the command starts; its input
events are written in the order ``lifecert replay`` needs: every partition's records in
their offset order (so every retiree's events in the order the worker decided them),
partitions merged by recorded_at. Its ClockTicks are left out (replay runs the clock on
recorded_at and ``--until``); redeliveries stay (replay rejects them as the worker did).
Any other topic is written record by record (offset order within a partition, partitions
merged by record time), each line an event's interchange form or, for the pipeline's own
records, its fields. Personal fields stay sealed, as on the log.

Exit codes: 0 written; 1 the broker is unreachable or refused, or a record could not be
decoded (written to ``--undecodable FILE`` when given, then the dump goes on and exits 0);
2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from lifecert.commands.topics import add_broker_arguments
from lifecert.endpoints import kafka_bootstrap
from lifecert.pipeline import broker_clients, broker_errors
from lifecert.pipeline.topics import EVENTS, layout

EXIT_FAILED = 1
EXIT_USAGE = 2


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "log",
        help="write a topic out as interchange JSON lines (dump)",
        description="Export lifecert's event log (or any of its topics) to a file.",
    )
    actions = parser.add_subparsers(dest="log_action", required=True, metavar="ACTION")
    dump = actions.add_parser(
        "dump", help="write a topic as interchange JSON lines (`lifecert replay` reads "
                     "the events topic's)",
        description=__doc__.split("\n\n", 2)[2] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_broker_arguments(dump)
    dump.add_argument("--topic", default=EVENTS, metavar="T",
                      help="a role of topics.toml or a topic name (default: events)")
    dump.add_argument("--out", type=Path, required=True, metavar="FILE",
                      help="where to write (replaced; written aside and renamed when done)")
    dump.add_argument("--undecodable", type=Path, metavar="FILE",
                      help="set records that cannot be decoded aside here (position and "
                           "reason, one JSON line each) and go on; without it they stop "
                           "the dump")
    dump.set_defaults(func=run_dump)


def _fail(message: str, code: int = EXIT_FAILED) -> int:
    print(f"lifecert log dump: {message}", file=sys.stderr)
    return code


def run_dump(args: argparse.Namespace) -> int:
    from lifecert.pipeline import readable, topic_reader

    topics = layout(args.prefix)
    try:
        name = topic_reader.resolve(topics, args.topic)
    except topic_reader.UnknownTopic as exc:
        return _fail(str(exc), EXIT_USAGE)
    bootstrap = kafka_bootstrap(args.bootstrap)
    try:
        client = broker_clients.consumer(bootstrap)
        try:
            ends = topic_reader.assign(client, name, None)
            reading = topic_reader.read_up_to(client, ends, timeout=600.0)
        finally:
            client.close()
    except (broker_errors.KafkaUnavailable, broker_errors.TopicProblem) as exc:
        return _fail(str(exc))
    if reading.undecodable:
        first = reading.undecodable[0]
        if args.undecodable is None:
            return _fail(
                f"{len(reading.undecodable)} records of {name} cannot be decoded, the first "
                f"at partition {first[1]} offset {first[2]}: {first[3]}. Nothing was "
                "written; pass --undecodable FILE to set them aside and dump the rest.")
        with args.undecodable.open("w", encoding="utf-8") as fh:
            for topic, partition, offset, why in reading.undecodable:
                fh.write(json.dumps({"topic": topic, "partition": partition,
                                     "offset": offset, "reason": why}) + "\n")
    parts = [reading.by_partition[p] for p in sorted(reading.by_partition)]
    events_topic = name == topics[EVENTS].name
    if events_topic:
        records = readable.replay_order(parts)
    else:
        records = iter(sorted((r for rs in parts for r in rs),
                              key=lambda r: (r.timestamp_ms, r.partition, r.offset)))
    written = skipped = 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(f".{args.out.name}.tmp-{os.getpid()}")
    try:
        with tmp.open("w", encoding="utf-8") as fh:
            for record in records:
                if record.value is None or (events_topic and not readable.replayable(record)):
                    skipped += 1
                    continue
                fh.write(json.dumps(record.value, ensure_ascii=False, separators=(",", ":")))
                fh.write("\n")
                written += 1
        os.replace(tmp, args.out)
    finally:
        tmp.unlink(missing_ok=True)
    left = (f", {skipped} left out (clock ticks and tombstones)" if skipped else "")
    aside = (f", {len(reading.undecodable)} undecodable set aside in {args.undecodable}"
             if reading.undecodable else "")
    print(f"lifecert log dump: {written} records of {name} written to {args.out}{left}{aside}",
          file=sys.stderr)
    return 0
