"""Run the worker until SIGTERM/SIGINT: ``python -m streams.worker [options]``, which is
also what ``lifecert worker`` runs (the options are defined in streams/options.py).

faust is imported only when the worker runs.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from lifecert.endpoints import kafka_bootstrap
from lifecert.pipeline.topics import EVENTS, TopicLayout, layout
from streams.options import DEFAULT_APP_ID, add_arguments

if TYPE_CHECKING:
    import faust

    from streams.app import WorkerSettings

LOG_FORMAT = "[%(asctime)s] %(levelname)s %(name)s: %(message)s"


def settings_from(args: argparse.Namespace) -> WorkerSettings:
    from streams.app import WorkerSettings

    prefix = args.topic_prefix
    if prefix is None:
        prefix = os.environ.get("LIFECERT_TOPIC_PREFIX", "")
    app_id = args.app_id or f"{prefix}{DEFAULT_APP_ID}"
    if not app_id.startswith(f"{prefix}{DEFAULT_APP_ID}"):
        raise ValueError(
            f"--app-id {app_id!r}: the worker's Kafka ACLs (lifecert/pipeline/acls.toml) "
            f"cover its consumer group and its changelog topics only when the app id begins "
            f"with {prefix + DEFAULT_APP_ID!r} (the topic prefix, then {DEFAULT_APP_ID!r}); "
            "choose one that does"
        )
    bootstrap = kafka_bootstrap(args.bootstrap)
    data_dir = args.data_dir or Path("data") / "worker" / app_id
    return WorkerSettings(
        bootstrap=bootstrap,
        app_id=app_id,
        data_dir=data_dir,
        policy=args.policy,
        topic_prefix=prefix,
        store=args.store,
        commit_interval=args.commit_interval,
        session_timeout=args.session_timeout,
    )


def run(args: argparse.Namespace) -> int:
    """Run until stopped; the exit code."""
    from lifecert.domain.policy import PolicyError, load_policy
    from lifecert.pipeline import broker_errors
    from streams.app import create_app, store_url

    logging.basicConfig(level=args.log_level.upper(), format=LOG_FORMAT, stream=sys.stderr)
    loop = use_uvloop()
    logging.getLogger("kafka").setLevel(logging.WARNING)  # kafka-python's admin chatter
    log = logging.getLogger("lifecert.worker")
    try:
        settings = settings_from(args)
        load_policy(settings.policy)
        store_url(settings.store)
    except (PolicyError, ValueError) as exc:
        print(f"lifecert worker: {exc}", file=sys.stderr)
        return 2
    try:
        replication = _ensure_topics(settings.bootstrap, layout(settings.topic_prefix))
    except (broker_errors.KafkaUnavailable, broker_errors.TopicProblem) as exc:
        print(f"lifecert worker: {exc}", file=sys.stderr)
        return 1
    try:
        app, _ = create_app(replace(settings, changelog_replication=replication))
    except (PolicyError, ValueError) as exc:
        print(f"lifecert worker: {exc}", file=sys.stderr)
        return 2
    log.info(
        "worker %s: policy %s, events topic %s, store %s, data in %s, event loop %s",
        settings.app_id, settings.policy, layout(settings.topic_prefix)[EVENTS].name,
        app.conf.store, settings.data_dir, loop,
    )
    with running_marker(settings.data_dir, Path(app.conf.tabledir)) as clean:
        code = execute(app, args.log_level)
        clean(code == 0)
    return code


def execute(app: faust.App, log_level: str) -> int:
    """Run ``app`` as a faust worker until it stops (SIGTERM/SIGINT); the exit code."""
    import faust

    worker = faust.Worker(app, loglevel=log_level, quiet=True, stdout=sys.stderr)
    # No progress spinner: to spin at every log record, faust sets the root logger to
    # DEBUG, and every library's debug call then builds a record (per message sent).
    worker.spinner = None
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    return 0


def use_uvloop() -> str:
    """Run on uvloop when it is installed (the ``live`` extra has it): the worker spends
    much of its time in the event loop's own bookkeeping (faust hands each record over
    through several tasks), which uvloop does in C. Set LIFECERT_WORKER_LOOP=asyncio to
    keep the standard loop."""
    if os.environ.get("LIFECERT_WORKER_LOOP", "auto") == "asyncio":
        return "asyncio"
    try:
        import mode.loop

        mode.loop.use("uvloop")
    except ImportError:
        return "asyncio"
    return "uvloop"


@contextmanager
def running_marker(data_dir: Path, tabledir: Path) -> Iterator[Callable[[bool], None]]:
    """Keep the local table store only across clean stops.

    faust writes a table's local RocksDB store at once, and its changelog through the
    producer's buffer, flushed before each offset commit and at a clean stop. After a
    crash the local store can be ahead of the changelog, and a record re-decided from it
    is a duplicate that writes nothing, so the changelog would never get that state (a
    later recovery elsewhere would lose it). So a marker file lives while the worker
    runs; finding it at start means the last run crashed, and the local store is dropped
    to be rebuilt from the changelog."""
    log = logging.getLogger("lifecert.worker")
    data_dir.mkdir(parents=True, exist_ok=True)
    marker = data_dir / "worker.running"
    if marker.exists() and tabledir.exists():
        log.warning(
            "the last run did not stop cleanly: dropping the local table store %s, to be "
            "rebuilt from the changelog", tabledir,
        )
        shutil.rmtree(tabledir)
    marker.write_text(f"{os.getpid()}\n", encoding="utf-8")
    stopped_cleanly = False

    def clean(ok: bool) -> None:
        nonlocal stopped_cleanly
        stopped_cleanly = ok

    try:
        yield clean
    finally:
        if stopped_cleanly:
            marker.unlink(missing_ok=True)


def _ensure_topics(bootstrap: str, topics: TopicLayout) -> int:
    """Create the layout's missing topics; refuse an events topic whose partition count
    differs from the layout's (the table's changelog is co-partitioned with it). Returns
    the events topic's replication, which the changelog takes."""
    from lifecert.pipeline import broker_clients, broker_errors

    log = logging.getLogger("lifecert.worker")
    with broker_clients.admin_client(bootstrap) as admin:
        states = broker_clients.ensure_topics(admin, topics)
    for state in states:
        if state.created:
            log.info("created topic %s (%d partitions)", state.spec.name, state.partitions)
        for problem in state.problems:
            if state.spec.role == EVENTS and state.partitions != state.spec.partitions:
                raise broker_errors.TopicProblem(problem)
            log.warning("%s", problem)
    return next(s.replication for s in states if s.spec.role == EVENTS)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m streams.worker",
        description="Decide the events topic live (the faust worker of lifecert).",
    )
    add_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from lifecert.pipeline.credentials import acting_as

    with acting_as("worker"):
        return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
