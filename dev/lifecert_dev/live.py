"""Run the whole live pipeline on one campaign file: topics, publish (with clock ticks),
the worker and the projections as child processes, until both are idle.

``lifecert demo`` and the end-to-end tests drive the pipeline through here, so the demo
shows exactly what the tests check. Each run gets its own topic prefix and database, so
runs never see each other's records.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg2
from kafka.errors import KafkaError

from lifecert.databases import create_database, drop_database
from lifecert.dbroles import dsn_as, lock_down
from lifecert.domain.policy import Policy
from lifecert.events.time import isoformat_local, local_date
from lifecert.keystore import CachedKeyStore
from lifecert.keystore.postgres import migrate_as as migrate_keystore
from lifecert.keystore.postgres import open_keystore
from lifecert.pipeline import broker_clients
from lifecert.pipeline.publish import PublishStats, publish_file
from lifecert.pipeline.topics import TopicLayout, layout

if TYPE_CHECKING:
    from projections.lag import LagProbe


@dataclass(frozen=True)
class LiveRun:
    """Where one run lives: its topic prefix, worker group, database and folder."""

    bootstrap: str
    admin_dsn: str  # a database to connect to for CREATE/DROP DATABASE
    prefix: str
    database: str
    work_dir: Path
    policy: str = "foshan-2017"

    @property
    def topics(self) -> TopicLayout:
        return layout(self.prefix)

    @property
    def worker_group(self) -> str:
        return f"{self.prefix}lifecert-worker"

    @property
    def dsn(self) -> str:
        """The run's database as the admin's role (the demo's and the tests' checks)."""
        params = psycopg2.extensions.parse_dsn(self.admin_dsn)
        params["dbname"] = self.database
        return psycopg2.extensions.make_dsn(**params)

    def dsn_for(self, component: str) -> str:
        """The run's database as ``component``'s own role (lifecert/dbroles.py)."""
        return dsn_as(self.dsn, component)

    def _cli(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "lifecert.cli", *args]

    def worker_argv(self, name: str = "worker") -> list[str]:
        """A worker of the run's group; ``name`` names its data folder (each worker of a
        group running at once needs its own)."""
        return self._cli(
            "worker", "--bootstrap", self.bootstrap, "--prefix", self.prefix,
            "--app-id", self.worker_group, "--policy", self.policy,
            "--data-dir", str(self.work_dir / name), "--log-level", "warning",
        )

    def keystore(self) -> CachedKeyStore:
        """The key store of personal data, in the run's database, as its own role (the
        admin applies its migrations, handing it the key tables)."""
        migrate_keystore(self.dsn)
        return open_keystore(self.dsn_for("keystore"))

    def projections_argv(self) -> list[str]:
        return self._cli(
            "projections", "run", "--dsn", self.dsn_for("projections"),
            "--bootstrap", self.bootstrap,
            "--topic-prefix", self.prefix,
        )


def fresh_database(run: LiveRun) -> None:
    """Drop and create the run's database, closed to all but lifecert's roles, with the
    read models' schema made by its owner (the projections then run as their own role,
    which may not change it)."""
    from projections.connection import connect
    from projections.migrate import migrate

    drop_database(run.admin_dsn, run.database)
    create_database(run.admin_dsn, run.database)
    lock_down(run.admin_dsn, run.database)
    conn = connect(run.dsn_for("owner"))
    try:
        migrate(conn)
    finally:
        conn.close()


def drop_topics(bootstrap: str, prefix: str) -> None:
    """Delete every topic whose name starts with ``prefix`` (the run's and its worker's
    changelog topics)."""
    if not prefix:
        raise ValueError("refusing to delete topics without a prefix")
    with broker_clients.admin_client(bootstrap) as admin:
        doomed = [t for t in admin.list_topics() if t.startswith(prefix)]
        if doomed:
            admin.delete_topics(doomed)


def discard(run: LiveRun) -> None:
    """Drop the run's topics and database (what :func:`prepare` made)."""
    drop_topics(run.bootstrap, run.prefix)
    drop_database(run.admin_dsn, run.database)


def prepare(run: LiveRun) -> None:
    """Fresh topics, worker store and database for ``run``."""
    drop_topics(run.bootstrap, run.prefix)
    # The worker's local table store remembers changelog offsets of the dropped topics.
    shutil.rmtree(run.work_dir / "worker", ignore_errors=True)
    # Deleting topics is asynchronous on the broker: wait until they are gone.
    deadline = time.monotonic() + 60
    while True:
        with broker_clients.admin_client(run.bootstrap) as admin:
            left = [t for t in admin.list_topics() if t.startswith(run.prefix)]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    with broker_clients.admin_client(run.bootstrap) as admin:
        broker_clients.ensure_topics(admin, run.topics)
    fresh_database(run)


def publish(
    run: LiveRun, events: Path, policy: Policy, until: date,
    on_bytes: Callable[[int], None] | None = None,
) -> PublishStats:
    keys = run.keystore()
    try:
        return publish_file(
            events, policy, bootstrap=run.bootstrap, layout=run.topics, until=until,
            on_bytes=on_bytes, keys=keys,
        )
    finally:
        keys.close()


@contextmanager
def running(argv: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A child process writing to ``log``, stopped with SIGTERM (then SIGKILL) on exit."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        child = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                 env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        yield child
    finally:
        stop(child)


def stop(child: subprocess.Popen[bytes], timeout: float = 30) -> int | None:
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    return child.returncode


def wait_until_idle(
    run: LiveRun,
    timeout: float,
    children: list[subprocess.Popen[bytes]],
    on_progress: Callable[[int, int], None] | None = None,
) -> bool:
    """Poll until the worker and the projections are at the end of every topic they read.
    ``on_progress(worker_behind, projections_behind)`` is called at every poll. Returns
    False on timeout or when a child died."""
    deadline = time.monotonic() + timeout
    probe = _probe(run, deadline)
    conn = _reconnect(run.dsn, deadline)
    try:
        while time.monotonic() < deadline:
            if any(child.poll() is not None for child in children):
                return False
            try:
                worker = sum(lag.behind for lag in probe.worker())
                projections = sum(lag.behind for lag in probe.projections(conn))
            except psycopg2.Error:  # tables not migrated yet, or the database restarting
                conn.close()
                conn = _reconnect(run.dsn, deadline)
                worker, projections = -1, -1
            except KafkaError:  # the broker restarting: measure again with new clients
                probe.close()
                probe = _probe(run, deadline)
                worker, projections = -1, -1
            if on_progress is not None:
                on_progress(worker, projections)
            if worker == 0 and projections == 0:
                return True
            time.sleep(1.0)
        return False
    finally:
        probe.close()
        conn.close()


def _probe(run: LiveRun, deadline: float) -> LagProbe:
    from projections.lag import LagProbe

    while True:
        try:
            return LagProbe(run.bootstrap, run.topics, run.worker_group)
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1.0)


def _reconnect(dsn: str, deadline: float) -> psycopg2.extensions.connection:
    from projections.connection import connect

    while True:
        try:
            return connect(dsn)
        except psycopg2.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1.0)


# What a door assigns in a verdict (EventRejected) that the generated file cannot know: the
# event id of the judged event (the connector derives it from the partner's record) and so
# the verdict's own id, the door's agency as the reporter. The time of day of
# ``performed_at`` where the partner reports a date only (the employers' files).
_DOOR_ASSIGNED = ("event_id", "judged_event_id", "reported_by")


def comparable_verdict(line: str) -> str:
    """A verdict line without what the door it came through assigned (see above), its
    ``performed_at`` reduced to the day in Asia/Shanghai and its ``recorded_at`` to the
    second: the verdict as the partner's record decides it, to compare a campaign played
    through the doors with its replay."""
    verdict = json.loads(comparable_output(line))
    for name in _DOOR_ASSIGNED:
        verdict.pop(name, None)
    if verdict.get("performed_at"):
        verdict["performed_at"] = local_date(datetime.fromisoformat(
            verdict["performed_at"])).isoformat()
    return json.dumps(verdict, sort_keys=True, ensure_ascii=False)


def comparable_output(line: str) -> str:
    """An output event's line with its ``recorded_at`` to the second: the API server stamps
    the time of the call, a few milliseconds after the campaign clock was set to the
    file's time (lifecert_dev.partners.counters), where the file has whole seconds."""
    event = json.loads(line)
    if event.get("recorded_at"):
        at = datetime.fromisoformat(event["recorded_at"]).replace(microsecond=0)
        event["recorded_at"] = isoformat_local(at)
    return json.dumps(event, sort_keys=True, ensure_ascii=False)


def comparable_lines(folder: Path, *, through_doors: bool,
                     absorbed: Collection[str] = ()) -> dict[str, list[str]]:
    """The instructions, verdicts and statuses of an export or a replay, each file's lines
    sorted (partitions decide concurrently); verdicts by :func:`comparable_verdict` when
    the campaign came ``through_doors``, without the verdicts on the events ``absorbed``
    (event ids of the file the API published nothing for: a resent certification it
    records once, a retiree nobody enrolled; replay of the file judges them)."""
    out = {}
    for name in ("instructions.jsonl", "verdicts.jsonl", "status.csv"):
        lines = (folder / name).read_text(encoding="utf-8").splitlines()
        if through_doors and name == "verdicts.jsonl":
            lines = [comparable_verdict(line) for line in lines
                     if not _absorbed(line, absorbed)]
        elif through_doors and name == "instructions.jsonl":
            lines = [comparable_output(line) for line in lines]
        out[name] = sorted(lines)
    return out


def _absorbed(line: str, absorbed: Collection[str]) -> bool:
    if not absorbed:
        return False
    verdict = json.loads(line)
    return verdict.get("judged_event_id") in absorbed
