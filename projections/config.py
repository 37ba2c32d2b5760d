"""Where the projections find PostgreSQL and Kafka: an explicit value, else the environment
(``LIFECERT_POSTGRES_DSN``, ``LIFECERT_KAFKA_BOOTSTRAP``), else the local stack's."""

from __future__ import annotations

import os
from typing import Any

import psycopg2
import psycopg2.extensions

from lifecert.pipeline.kafka import bootstrap_servers

DSN_ENV = "LIFECERT_POSTGRES_DSN"
APPLICATION_NAME = "lifecert-projections"

def resolve_dsn(explicit: str | None = None) -> str:
    """``explicit`` (``--dsn``), else ``LIFECERT_POSTGRES_DSN``, else the local stack's."""
    if explicit or os.environ.get(DSN_ENV):
        return explicit or os.environ[DSN_ENV]
    from lifecert.stack.config import StackConfig  # the stack's defaults, read lazily

    return StackConfig.from_env().postgres_dsn


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
