"""``lifecert topics create | list``: the Kafka topics of the pipeline (topics.toml).

    lifecert topics create                 # every topic of the layout (existing ones kept)
                                           # and its ACLs (acls.toml, nothing more), as
                                           # the admin
    lifecert topics list [--json]          # what exists, with partitions and config
    lifecert topics create --prefix t42.   # a side-by-side set (tests, trial campaigns)
    lifecert topics tail TOPIC [-n N] [--from-beginning] [--follow] [--json]
                                           # decoded records, one line each (personal
                                           # fields stay sealed), read as the read-only
                                           # `reader` principal (acls.toml)

Exit codes: 0 success; 1 the broker is unreachable or refused, or (``create``) a topic
exists with other partitions or config than topics.toml says.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from lifecert.endpoints import BOOTSTRAP_ENV, kafka_bootstrap
from lifecert.pipeline import acls, broker_clients, broker_errors
from lifecert.pipeline.topics import layout

EXIT_FAILED = 1


def add_broker_arguments(parser: argparse.ArgumentParser) -> None:
    """``--bootstrap`` and ``--prefix``, shared by the pipeline's commands."""
    parser.add_argument(
        "--bootstrap", metavar="HOST:PORT",
        help=f"Kafka broker (default: ${BOOTSTRAP_ENV}, else the local stack's)",
    )
    parser.add_argument(
        "--prefix", metavar="P",
        help="prefix of every topic name (default: $LIFECERT_TOPIC_PREFIX, else none)",
    )


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "topics",
        help="create or list the pipeline's Kafka topics (create | list)",
        description=(
            "The Kafka topics of the live pipeline, as lifecert/pipeline/topics.toml lays "
            "them out: names, partitions, replication and config."
        ),
    )
    actions = parser.add_subparsers(dest="topics_action", required=True, metavar="ACTION")
    create = actions.add_parser(
        "create", help="create every topic that does not exist yet (idempotent)"
    )
    listing = actions.add_parser("list", help="show the topics as the broker has them")
    for action, func in ((create, run_create), (listing, run_list)):
        add_broker_arguments(action)
        action.add_argument("--json", action="store_true", help="print the topics as JSON")
        action.set_defaults(func=func)
    tail = actions.add_parser(
        "tail", help="print a topic's records decoded, one line each",
        description=(
            "Decode the records of one of lifecert's topics (Avro single-object or JSON) "
            "and print one line each: partition@offset, time (Asia/Shanghai), type, key, "
            "fields. Personal fields (names, phones, addresses) and dead letters' raw "
            "bytes stay sealed, as on the log: this command never opens them "
            "(docs/personal-data.md says who may, with `personal.reveal`)."
        ),
    )
    add_broker_arguments(tail)
    tail.add_argument("topic", metavar="TOPIC",
                      help="a role of topics.toml (events, verdicts, ...) or a topic name")
    tail.add_argument("-n", "--lines", type=_count, metavar="N",
                      help="the last N records (default 10); with --from-beginning the "
                           "first N (default all)")
    tail.add_argument("--from-beginning", action="store_true",
                      help="start at the beginning of every partition")
    tail.add_argument("--follow", "-f", action="store_true",
                      help="then keep printing new records until interrupted")
    tail.add_argument("--json", action="store_true",
                      help="one JSON object a line: topic, partition, offset, key, value")
    tail.set_defaults(func=run_tail)


def _count(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"-n takes a count of records (0 or more), not {text!r}")
    return n


def _as_dict(state: broker_clients.TopicState) -> dict[str, Any]:
    return {
        "role": state.spec.role,
        "name": state.spec.name,
        "exists": state.exists,
        "created": state.created,
        "partitions": state.partitions,
        "replication": state.replication,
        "config": dict(sorted(state.config.items())),
        "problems": state.problems if state.exists else [],
    }


def _print(states: list[broker_clients.TopicState], as_json: bool) -> None:
    if as_json:
        print(json.dumps([_as_dict(s) for s in states], indent=2))
        return
    width = max(len(s.spec.name) for s in states)
    for s in states:
        if not s.exists:
            print(f"{s.spec.name:{width}}  missing")
            continue
        config = ", ".join(f"{k}={v}" for k, v in sorted(s.config.items())) or "-"
        mark = "  (created)" if s.created else ""
        print(
            f"{s.spec.name:{width}}  partitions={s.partitions} replication={s.replication}  "
            f"{config}{mark}"
        )


def _fail(message: str) -> int:
    print(f"lifecert topics: {message}", file=sys.stderr)
    return EXIT_FAILED


def run_create(args: argparse.Namespace) -> int:
    bootstrap = kafka_bootstrap(args.bootstrap)
    try:
        with broker_clients.admin_client(bootstrap) as admin:
            states = broker_clients.ensure_topics(admin, layout(args.prefix))
            acls.apply(admin, layout(args.prefix))
            removed = acls.prune(admin, layout(args.prefix))
    except (broker_errors.KafkaUnavailable, broker_errors.TopicProblem) as exc:
        return _fail(str(exc))
    _print(states, args.json)
    for stray in removed:
        print(f"lifecert topics: removed an ACL acls.toml does not grant: {stray}",
              file=sys.stderr)
    problems = [p for s in states for p in s.problems]
    for note in (n for s in states for n in s.notes):
        print(f"lifecert topics: note: {note}", file=sys.stderr)
    if problems:
        return _fail(
            "\n  ".join(["topics differ from lifecert/pipeline/topics.toml:", *problems])
            + "\nDelete and re-create them (their data is lost), or use another --prefix."
        )
    return 0


def run_list(args: argparse.Namespace) -> int:
    bootstrap = kafka_bootstrap(args.bootstrap)
    try:
        with broker_clients.admin_client(bootstrap) as admin:
            states = broker_clients.describe_topics(admin, layout(args.prefix))
    except (broker_errors.KafkaUnavailable, broker_errors.TopicProblem) as exc:
        return _fail(str(exc))
    _print(states, args.json)
    if not args.json:
        for problem in (p for s in states if s.exists for p in s.problems):
            print(f"lifecert topics: warning: {problem}", file=sys.stderr)
        if not all(s.exists for s in states):
            print("lifecert topics: create the missing ones with `lifecert topics create`",
                  file=sys.stderr)
    return 0


def run_tail(args: argparse.Namespace) -> int:
    from lifecert.pipeline import broker_errors, readable, topic_reader

    try:
        name = topic_reader.resolve(layout(args.prefix), args.topic)
    except topic_reader.UnknownTopic as exc:
        return _fail(str(exc))
    show = readable.line_as_json if args.json else readable.line_for_people

    def emit(item: readable.Decoded | topic_reader.Undecodable) -> None:
        if isinstance(item, readable.Decoded):
            print(show(item), flush=True)
        else:
            _topic, partition, offset, why = item
            print(f"lifecert topics: {partition}@{offset}: undecodable: {why}",
                  file=sys.stderr, flush=True)

    bootstrap = kafka_bootstrap(args.bootstrap)
    count = args.lines if args.lines is not None else (None if args.from_beginning else 10)
    try:
        client = broker_clients.consumer(bootstrap)
        try:
            ends = topic_reader.assign(client, name, None if args.from_beginning else count)
            reading = topic_reader.read_up_to(client, ends)
            records = [r for rs in reading.by_partition.values() for r in rs]
            shown = topic_reader.chosen(records, count, args.from_beginning)
            for where in reading.undecodable:
                emit(where)
            for record in shown:
                emit(record)
            if args.follow:
                topic_reader.follow(client, emit, lambda: False)
        finally:
            client.close()
    except (broker_errors.KafkaUnavailable, broker_errors.TopicProblem) as exc:
        return _fail(str(exc))
    except (KeyboardInterrupt, BrokenPipeError):
        return 0
    return 0
