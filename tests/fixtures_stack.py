"""The ``stack`` fixture, for every test that needs the real local stack (Kafka broker +
PostgreSQL). Registered for the whole test tree by ``pytest_plugins`` in tests/conftest.py.

``stack`` (session scope) brings the stack of ``StackConfig.from_env()`` up once — the
same one `lifecert stack up` runs, honouring LIFECERT_DATA_DIR, LIFECERT_KAFKA_PORT... —
and yields its :class:`~lifecert_dev.stack.StackStatus` (``.kafka_bootstrap``,
``.postgres_dsn``, ``.config``). At the end of the session it leaves the stack as it found
it: stopped again if the session started it (so CI ends clean), running if it already ran
(so a developer's `lifecert stack up` survives a test run). When the session made
PostgreSQL's fallback folder (/var/tmp/lifecert-<hash>, used when the clone lies in a folder
the `postgres` user cannot enter, as CI's may), it removes it again: it lies outside the
clone, and each CI clone has its own. Set LIFECERT_KEEP_STACK=1 to keep a stack the
session started running, which makes the next run's start instant.

Tests must not stop this shared stack; a test that needs its own lifecycle makes a private
stack (see ``private_stack_env`` in tests/stack/conftest.py).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from lifecert_dev.stack import StackConfig, StackStatus, down, postgres, status, up


@pytest.fixture(scope="session")
def stack() -> Iterator[StackStatus]:
    cfg = StackConfig.from_env()
    was_running = status(cfg).running
    fallback = postgres.locate(cfg).pg_dir
    new_fallback = fallback.parent if fallback and not fallback.parent.exists() else None
    st = up(cfg)
    yield st
    if not was_running and os.environ.get("LIFECERT_KEEP_STACK") != "1":
        down(cfg)
        if new_fallback is not None:
            shutil.rmtree(new_fallback, ignore_errors=True)
