"""The local stack that the README's commands and the tests use: one Apache Kafka broker
(KRaft, jars from Maven Central, run on Java 17) and one PostgreSQL cluster (Debian's
packages), both on 127.0.0.1, both with their data and logs under the stack's data folder
(PostgreSQL's part moves to /var/tmp/lifecert-<hash>/postgres when the server's OS user
cannot reach the default data folder: see :func:`lifecert_dev.stack.postgres.locate`).

    from lifecert_dev.stack import StackConfig, up, down, status

    cfg = StackConfig.from_env()     # LIFECERT_DATA_DIR, LIFECERT_KAFKA_PORT, ...
    st = up(cfg)                     # idempotent: starts what does not run yet
    st.kafka_bootstrap               # "127.0.0.1:19092"
    st.postgres_dsn                  # "postgresql://lifecert@127.0.0.1:15432/lifecert?passfile=..."
    st.postgres_dsn_for("api")       # the API's own role (lifecert/dbroles.py)
    down(cfg)                        # idempotent too

The command line is ``lifecert stack up | down | status [--json]``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lifecert_dev.stack import broker, postgres
from lifecert_dev.stack.stack_config import (
    ENV_VARS,
    KAFKA_VERSION,
    MissingPrerequisite,
    StackConfig,
    StackError,
    file_lock,
    make_dirs,
)

__all__ = [
    "ENV_VARS",
    "KAFKA_VERSION",
    "MissingPrerequisite",
    "StackConfig",
    "StackError",
    "StackStatus",
    "down",
    "status",
    "up",
]

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


@dataclass(frozen=True)
class StackStatus:
    config: StackConfig
    kafka: broker.KafkaState
    postgres: postgres.PostgresState

    @property
    def kafka_bootstrap(self) -> str:
        return self.config.kafka_bootstrap

    @property
    def postgres_dsn(self) -> str:
        """The bootstrap superuser's DSN (tooling: databases, roles, tests' checks)."""
        return self.config.postgres_dsn

    def postgres_dsn_for(self, component: str, database: str | None = None) -> str:
        """A component's own role's DSN (see lifecert/dbroles.py)."""
        return self.config.postgres_dsn_for(component, database)

    @property
    def running(self) -> bool:
        """Both services run and answer."""
        return self.kafka.ready and self.postgres.ready

    @property
    def stopped(self) -> bool:
        return not self.kafka.running and not self.postgres.running

    def to_dict(self) -> dict[str, Any]:
        cfg = self.config
        return {
            "kafka_bootstrap": self.kafka_bootstrap,
            "postgres_dsn": self.postgres_dsn,
            "state": "running" if self.running else "stopped" if self.stopped else "partial",
            "kafka": {
                "state": _state(self.kafka.running, self.kafka.ready),
                "pid": self.kafka.pid,
                "bootstrap": self.kafka_bootstrap,
                "version": self.kafka.version,
                "port": cfg.kafka_port,
                "controller_port": cfg.kafka_controller_port,
                "brokers": cfg.kafka_brokers,
                "nodes": [
                    {"node": node, "pid": pid, "port": cfg.kafka_node_ports(node)[0],
                     "controller_port": cfg.kafka_node_ports(node)[1]}
                    for node, pid in zip(cfg.kafka_nodes, self.kafka.pids, strict=True)],
                "replication": cfg.kafka_replication,
                "min_insync_replicas": cfg.kafka_min_insync,
                "security_protocol": "SASL_PLAINTEXT",
                "sasl_mechanism": "SCRAM-SHA-512",
                "credentials_dir": str(cfg.kafka_dir / "credentials"),
                "log": str(self.kafka.log),
            },
            "postgres": {
                "state": _state(self.postgres.running, self.postgres.ready),
                "pid": self.postgres.pid,
                "dsn": self.postgres_dsn,
                "port": self.postgres.port or cfg.pg_port,
                "database": cfg.pg_database,
                "user": cfg.pg_superuser,
                "passfile": str(cfg.pg_passfile),
                "log": str(self.postgres.log),
                "data_dir": str(cfg.postgres_dir),
                "fallback": cfg.pg_dir is not None,
            },
            "data_dir": str(cfg.data_dir),
            "logs_dir": str(cfg.logs_dir),
            "cache_dir": str(cfg.cache_dir),
        }


def _state(running: bool, ready: bool) -> str:
    if running:
        return "running" if ready else "starting"
    return "stopped"


def status(cfg: StackConfig | None = None) -> StackStatus:
    cfg = postgres.locate(cfg or StackConfig.from_env())
    return StackStatus(cfg, broker.status(cfg), postgres.status(cfg))


def up(cfg: StackConfig | None = None, progress: Progress = _quiet) -> StackStatus:
    """Start whatever of the stack does not run yet; returns once both services answer.
    Every prerequisite (java, mvn, apt-get or initdb, the server's OS user, folder
    permissions) is checked before anything is started."""
    cfg = postgres.locate(cfg or StackConfig.from_env())
    note = postgres.fallback_note(cfg)
    if note:
        progress(note)
    make_dirs(cfg.logs_dir)
    with file_lock(cfg.data_dir / "stack.lock"):
        current = status(cfg)
        if not current.kafka.running:
            broker.preflight(cfg)
        if not current.postgres.running:
            postgres.preflight(cfg)
        t0 = time.monotonic()
        # the broker's JVM boots (~5 s) while PostgreSQL starts
        kafka_pids = broker.launch(cfg, progress)
        postgres.start(cfg, progress)
        broker.wait_ready(cfg, kafka_pids)
        broker.apply_default_acls(cfg)
        final = status(cfg)
        if not final.running:
            raise StackError(f"the stack did not come up: {final.to_dict()}")
        if not current.running:
            progress(f"stack up in {time.monotonic() - t0:.1f} s")
        # The local stack's explicit key step (as `lifecert keys create`): nothing else
        # makes the secret keys (lifecert/keyfiles.py). Under the lock: two processes
        # bringing the stack up at once (parallel test workers) must not both find a key
        # missing and write two different ones.
        from lifecert.commands.keys import create_keys

        for path in create_keys():
            progress(f"made the key {path}")
    return final


def down(cfg: StackConfig | None = None, progress: Progress = _quiet) -> StackStatus:
    """Stop both services (Kafka first, gracefully). Data stays; `up` resumes it."""
    cfg = postgres.locate(cfg or StackConfig.from_env())
    if not cfg.data_dir.exists():
        return status(cfg)
    with file_lock(cfg.data_dir / "stack.lock"):
        if broker.stop(cfg):
            progress("Kafka stopped")
        if postgres.stop(cfg):
            progress("PostgreSQL stopped")
        return status(cfg)
