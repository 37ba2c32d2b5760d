"""``lifecert projections``: the PostgreSQL read models (projections/).

    lifecert projections migrate                 apply pending schema migrations
    lifecert projections run [--until-idle]      consume the topics into the read models
    lifecert projections rebuild                 empty them and replay the topics
    lifecert projections export --out DIR        instructions.jsonl + status.csv, as replay
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from lifecert.pipeline.topics import layout
from lifecert.progress import Progress

if TYPE_CHECKING:
    from projections.writer import WriterOptions

# kafka-python and psycopg2 (the `live` extra) are imported by the actions only, so that
# `lifecert --help` and the offline commands work without them.

_LOGGER = "lifecert.projections"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "projections",
        help="PostgreSQL read models: migrate, run, rebuild, export",
        description=(
            "Keep the PostgreSQL read models (retiree_status, instruction_ledger, "
            "open_holds, campaign_counters) from the status and output topics."
        ),
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    migrate = actions.add_parser("migrate", help="apply pending schema migrations")
    _dsn_option(migrate)
    migrate.set_defaults(func=cmd_migrate)

    run = actions.add_parser(
        "run",
        help="consume the status and output topics into the read models",
        description="Runs until SIGTERM or SIGINT (the batch in flight is committed first).",
    )
    _connection_options(run)
    run.add_argument(
        "--until-idle", "--once", action="store_true", dest="until_idle",
        help="stop once every partition is read to its end",
    )
    _batch_options(run)
    run.set_defaults(func=cmd_run)

    rebuild = actions.add_parser(
        "rebuild", help="empty the read models and offsets, then replay the topics"
    )
    _connection_options(rebuild)
    _batch_options(rebuild)
    rebuild.add_argument("--quiet", action="store_true", help="no progress bar")
    rebuild.set_defaults(func=cmd_rebuild)

    export = actions.add_parser(
        "export", help="write instructions.jsonl and status.csv as `lifecert replay` does"
    )
    _dsn_option(export)
    export.add_argument("--out", type=Path, required=True, help="output folder")
    export.add_argument(
        "--policy", help="policy of the statuses (needed when several are projected)"
    )
    export.set_defaults(func=cmd_export)


def _dsn_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dsn", help="PostgreSQL DSN (default: $LIFECERT_POSTGRES_DSN, else the local stack)"
    )


def _connection_options(parser: argparse.ArgumentParser) -> None:
    _dsn_option(parser)
    parser.add_argument(
        "--bootstrap",
        help="Kafka bootstrap servers (default: $LIFECERT_KAFKA_BOOTSTRAP, else 127.0.0.1:19092)",
    )
    parser.add_argument(
        "--topic-prefix", help="prefix of every topic name (default: $LIFECERT_TOPIC_PREFIX)"
    )


def _batch_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--batch-records", type=_positive_int, default=20_000,
        help="most records per transaction (default 20000)",
    )
    parser.add_argument(
        "--batch-seconds", type=float, default=0.1,
        help="most time spent gathering one batch (default 0.1)",
    )


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


def setup_logging() -> None:
    logger = logging.getLogger(_LOGGER)
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("lifecert projections: %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(logging.INFO)


def _fail(message: str) -> int:
    print(f"lifecert projections: {message}", file=sys.stderr)
    return 1


@contextmanager
def _stop_on_signals(stop: Callable[[], None]) -> Iterator[None]:
    """SIGTERM and SIGINT ask for a clean stop (when run in the main thread)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        stop()  # no logging here: a signal handler must not take the logging lock

    previous = {}
    try:
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, handler)
    except ValueError:  # not the main thread: the caller stops the writer itself
        pass
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


# ------------------------------------------------------------------ actions


def cmd_migrate(args: argparse.Namespace) -> int:
    import psycopg2

    from lifecert.endpoints import postgres_dsn
    from lifecert.migrations import MigrationError
    from projections.connection import connect
    from projections.migrate import applied_versions, migrate

    try:
        conn = connect(postgres_dsn(args.dsn, "owner"))
    except psycopg2.Error as exc:
        return _fail(f"cannot connect to PostgreSQL: {str(exc).strip()}")
    try:
        done = migrate(conn)
        versions = applied_versions(conn)
    except (MigrationError, psycopg2.Error) as exc:
        return _fail(str(exc).strip())
    finally:
        conn.close()
    for migration in done:
        print(f"applied {migration.version}_{migration.name}.sql", file=sys.stderr)
    print(f"schema at {versions[-1] if versions else 'nothing'} "
          f"({len(done)} applied now)", file=sys.stderr)
    return 0


def _writer_options(args: argparse.Namespace, until_idle: bool) -> WriterOptions:
    from projections.writer import WriterOptions

    return WriterOptions(
        batch_records=args.batch_records, batch_seconds=args.batch_seconds,
        until_idle=until_idle,
    )


def cmd_run(args: argparse.Namespace) -> int:
    import psycopg2
    from kafka.errors import KafkaError

    from lifecert.endpoints import kafka_bootstrap, postgres_dsn
    from lifecert.migrations import MigrationError
    from projections.writer import ProjectionWriter

    setup_logging()
    writer = ProjectionWriter(
        postgres_dsn(args.dsn, "projections"), kafka_bootstrap(args.bootstrap),
        layout(args.topic_prefix),
        _writer_options(args, args.until_idle),
    )
    try:
        with _stop_on_signals(writer.stop):
            stats = writer.run()
    except KafkaError as exc:
        return _fail(f"Kafka: {exc}")
    except (psycopg2.Error, MigrationError) as exc:
        return _fail(f"PostgreSQL: {str(exc).strip()}")
    print(
        f"lifecert projections: {stats.records:,} records in {stats.batches:,} batches: "
        f"{stats.new_instructions:,} new instructions, {stats.statuses:,} statuses, "
        f"{stats.dead_letters:,} dead letters, {stats.reconnects} reconnections",
        file=sys.stderr,
    )
    return 0


def cmd_rebuild(args: argparse.Namespace) -> int:
    import psycopg2
    from kafka.errors import KafkaError

    from lifecert.endpoints import kafka_bootstrap, postgres_dsn
    from projections.connection import connect
    from projections.lag import backlog
    from projections.migrate import migrate
    from projections.store import Store
    from projections.writer import ProjectionWriter, read_topics

    setup_logging()
    dsn = postgres_dsn(args.dsn, "projections")
    bootstrap, topics = kafka_bootstrap(args.bootstrap), layout(args.topic_prefix)
    try:
        conn = connect(dsn)
        try:
            migrate(conn)
            Store(conn).reset()
        finally:
            conn.close()
    except psycopg2.Error as exc:
        return _fail(f"PostgreSQL: {str(exc).strip()}")
    try:
        total = backlog(bootstrap, read_topics(topics))
        progress = None if args.quiet else Progress(total, "rebuild", unit="records")
        writer = ProjectionWriter(
            dsn, bootstrap, topics, _writer_options(args, True),
            on_batch=progress.advance if progress is not None else None,
        )
        with _stop_on_signals(writer.stop):
            stats = writer.run()
    except KafkaError as exc:
        return _fail(f"Kafka: {exc}")
    except psycopg2.Error as exc:
        return _fail(f"PostgreSQL: {str(exc).strip()}")
    if progress is not None:
        progress.close(
            f"{stats.new_instructions:,} instructions, {stats.dead_letters:,} dead letters"
            + ("; stopped before the end" if writer.stopping else "")
        )
    return 1 if writer.stopping else 0


def cmd_export(args: argparse.Namespace) -> int:
    import psycopg2

    from lifecert.endpoints import postgres_dsn
    from projections.connection import connect
    from projections.queries import ExportError, export

    try:
        conn = connect(postgres_dsn(args.dsn, "reader"))
    except psycopg2.Error as exc:
        return _fail(f"cannot connect to PostgreSQL: {str(exc).strip()}")
    try:
        result = export(conn, args.out, args.policy)
    except (ExportError, psycopg2.Error) as exc:
        return _fail(str(exc).strip())
    finally:
        conn.close()
    print(
        f"lifecert projections: {result.instructions:,} instructions and "
        f"{result.statuses:,} statuses ({result.policy or 'no policy'}) written to {args.out}/",
        file=sys.stderr,
    )
    return 0
