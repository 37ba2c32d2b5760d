"""Where the projections (and lifecert's other PostgreSQL clients) find PostgreSQL and
Kafka: an explicit value, else the environment (``LIFECERT_POSTGRES_DSN``,
``LIFECERT_KAFKA_BOOTSTRAP``), else the local stack's, as the component's own role."""

from __future__ import annotations

import os
from typing import Any

import psycopg2
import psycopg2.extensions

from lifecert.pipeline.kafka import bootstrap_servers

DSN_ENV = "LIFECERT_POSTGRES_DSN"
APPLICATION_NAME = "lifecert-projections"

def resolve_dsn(explicit: str | None = None, component: str | None = None) -> str:
    """``explicit`` (``--dsn``), else ``LIFECERT_POSTGRES_DSN`` (in production: each
    component's process gets its own role's DSN there), else the local stack's DSN for
    ``component``'s own role (lifecert/dbroles.py: owner, projections, api, reader; None:
    the stack's superuser, for tooling that creates databases). The stack's DSNs carry
    no password: libpq reads it from the stack's password file."""
    if explicit or os.environ.get(DSN_ENV):
        return explicit or os.environ[DSN_ENV]
    from lifecert_dev.stack.config import StackConfig  # the stack's defaults, read lazily

    cfg = StackConfig.from_env()
    return cfg.postgres_dsn if component is None else cfg.postgres_dsn_for(component)


def resolve_bootstrap(explicit: str | None = None) -> str:
    """The broker, found as every other part of lifecert finds it."""
    return bootstrap_servers(explicit)


def connect(dsn: str, **kwargs: Any) -> psycopg2.extensions.connection:
    """A connection that notices a dead server within seconds (keepalives), named in
    ``pg_stat_activity`` as ``lifecert-projections``."""
    options: dict[str, Any] = {
        "application_name": APPLICATION_NAME,
        "connect_timeout": 10,
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 5,
        "keepalives_count": 3,
        # CREATE TEMP TABLE IF NOT EXISTS in every batch would otherwise log a notice.
        "options": "-c client_min_messages=warning",
    }
    options.update(kwargs)
    return psycopg2.connect(dsn, **options)
