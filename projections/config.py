"""Where the projections (and lifecert's other PostgreSQL clients) find PostgreSQL and
Kafka: an explicit value, else the environment (``LIFECERT_POSTGRES_DSN``,
``LIFECERT_KAFKA_BOOTSTRAP``), else the local stack's, as the component's own role
(:mod:`lifecert.endpoints`); and how they connect."""

from __future__ import annotations

from typing import Any

import psycopg2
import psycopg2.extensions

from lifecert.endpoints import DSN_ENV, kafka_bootstrap
from lifecert.endpoints import postgres_dsn as resolve_dsn

__all__ = ["APPLICATION_NAME", "DSN_ENV", "connect", "resolve_bootstrap", "resolve_dsn"]

APPLICATION_NAME = "lifecert-projections"


def resolve_bootstrap(explicit: str | None = None) -> str:
    """The broker, found as every other part of lifecert finds it."""
    return kafka_bootstrap(explicit)


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
