"""How the projections (and the tools that read their read models) connect to PostgreSQL.
Where PostgreSQL and the broker are is :mod:`lifecert.endpoints`'s to say."""

from __future__ import annotations

from typing import Any

import psycopg2
import psycopg2.extensions

APPLICATION_NAME = "lifecert-projections"


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
