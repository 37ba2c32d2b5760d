"""Where the projections find PostgreSQL and Kafka: an explicit value, else the environment
(``LIFECERT_POSTGRES_DSN``, ``LIFECERT_KAFKA_BOOTSTRAP``), else the local stack's."""

from __future__ import annotations

import os
from typing import Any

import psycopg2
import psycopg2.extensions

DSN_ENV = "LIFECERT_POSTGRES_DSN"
BOOTSTRAP_ENV = "LIFECERT_KAFKA_BOOTSTRAP"
APPLICATION_NAME = "lifecert-projections"

_FALLBACK_DSN = "postgresql://lifecert@127.0.0.1:15432/lifecert"
_FALLBACK_BOOTSTRAP = "127.0.0.1:19092"


def _stack_defaults() -> tuple[str, str]:
    try:
        from lifecert.stack.config import StackConfig

        cfg = StackConfig.from_env()
    except Exception:  # a bad LIFECERT_* override must not hide an explicit --dsn
        return _FALLBACK_DSN, _FALLBACK_BOOTSTRAP
    return cfg.postgres_dsn, cfg.kafka_bootstrap


def resolve_dsn(explicit: str | None = None) -> str:
    return explicit or os.environ.get(DSN_ENV) or _stack_defaults()[0]


def resolve_bootstrap(explicit: str | None = None) -> str:
    return explicit or os.environ.get(BOOTSTRAP_ENV) or _stack_defaults()[1]


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
