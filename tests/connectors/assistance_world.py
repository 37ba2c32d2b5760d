"""The rig of the assistance-case end-to-end tests (Macau SSF, Guangdong): a database and a
topic set of their own on the real stack, one partner simulator, and that partner's two
connectors (its feed in, Foshan's answers and requests out) as `lifecert connectors run`
processes."""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connectors.sdk.process import ConnectorProcess, InstanceSpec, write_config
from lifecert.databases import create_database, drop_database
from lifecert.domain import assistance
from lifecert.domain.fold import uuid5
from lifecert.events import codec
from lifecert.events.time import SHANGHAI
from lifecert.pipeline import broker_clients
from lifecert.pipeline.credentials import ADMIN, acting_as
from lifecert.pipeline.topics import ASSISTANCE_RESULTS, layout
from lifecert_dev.testkit.contract import started
from lifecert_dev.testkit.reading import read_events
from projections.writer import run_until_idle

RUNNER = {"batch_size": 25, "retry_initial": 0.1, "retry_max": 1.0, "idle_interval": 0.2}
FAST = {"batch_seconds": 0.05, "poll_ms": 100, "backoff_initial": 0.05, "backoff_max": 0.5}


class AssistanceWorld:
    """Subclasses start their partner's simulator, call :meth:`configure` with its
    connector instances, and stop the simulator in :meth:`stop_partner`."""

    def __init__(self, bootstrap: str, work: Path, admin_dsn: str, tag: str) -> None:
        self.bootstrap, self.work = bootstrap, work
        self.admin_dsn, self.database = admin_dsn, f"lifecert_test_{uuid.uuid4().hex[:12]}"
        self.dsn = create_database(admin_dsn, self.database)
        self.prefix = f"{tag}-{uuid.uuid4().hex[:10]}."
        self.topics = layout(self.prefix)
        with broker_clients.admin_client(bootstrap, component=ADMIN) as admin:
            broker_clients.ensure_topics(admin, self.topics)
        self.procs: dict[str, ConnectorProcess] = {}

    def configure(self, instances: dict[str, InstanceSpec]) -> None:
        self.config = write_config(self.work / "connectors.toml", bootstrap=self.bootstrap,
                                   topic_prefix=self.prefix, instances=instances)

    def stop_partner(self) -> None:
        raise NotImplementedError

    def start(self, name: str) -> ConnectorProcess:
        proc = ConnectorProcess(self.config, name, self.work / f"{name}.log")
        self.procs[name] = proc
        return started(proc)

    def read(self, role: str) -> list[dict[str, Any]]:
        return read_events(self.bootstrap, self.topics[role].name)

    def publish(self, events: list[dict[str, Any]], role: str = ASSISTANCE_RESULTS) -> None:
        producer = broker_clients.producer(self.bootstrap, component=ADMIN)
        try:
            for event in events:
                producer.send(self.topics[role].name,
                              key=event["retiree_id"].encode(), value=codec.encode(event))
            producer.flush(30)
        finally:
            producer.close()

    def project(self) -> None:
        with acting_as("projections"):
            run_until_idle(self.dsn, self.bootstrap, self.topics, **FAST)

    def ask(self, at: str) -> str:
        """`lifecert assistance request` at ``at``: its output."""
        done = subprocess.run(
            [sys.executable, "-m", "lifecert.cli", "assistance", "request", "--at", at,
             "--policy", "foshan-2017", "--dsn", self.dsn, "--bootstrap", self.bootstrap,
             "--prefix", self.prefix], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def close(self) -> None:
        for proc in self.procs.values():
            proc.kill()
        self.stop_partner()
        drop_database(self.admin_dsn, self.database)


def status_event(retiree_id: str, residence: str, status: str) -> dict[str, Any]:
    """The RetireeStatus the worker publishes for a retiree of the 2017 campaign."""
    return {"type": "RetireeStatus", "event_id": uuid5(f"status|{retiree_id}"),
            "recorded_at": datetime(2017, 5, 2, 9, 0, tzinfo=SHANGHAI),
            "source_agency": "lifecert", "retiree_id": retiree_id, "policy": "foshan-2017",
            "status": status, "district": None, "residence": residence,
            "completed_by": None, "completed_at": None, "revocations": 0, "retractions": 0,
            "performed_on": None, "death_source": None, "death_recorded_at": None}


def case_in_utc(case: assistance.Case) -> tuple[Any, ...]:
    """A case's fields with its times in UTC (the read model's and the fold's compare)."""
    return tuple(v.astimezone(UTC) if hasattr(v, "astimezone") and hasattr(v, "hour") else v
                 for v in (case.partner, case.case_id, case.retiree_id, case.direction,
                           case.status, case.requested_at, case.due_on, case.answered_at,
                           case.outcome, case.result_id, case.received_at, case.receipt))
