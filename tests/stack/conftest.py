"""Fixtures for tests that need the real local stack (Kafka broker + PostgreSQL).

``stack`` (session scope) brings the stack of ``StackConfig.from_env()`` up once — the
same one `lifecert stack up` runs, honouring LIFECERT_DATA_DIR, LIFECERT_KAFKA_PORT... —
and yields its :class:`~lifecert.stack.StackStatus` (``.kafka_bootstrap``,
``.postgres_dsn``). At the end of the session it leaves the stack as it found it: stopped
again if the session started it (so CI ends clean), running if it already ran (so a
developer's `lifecert stack up` survives a test run). Set LIFECERT_KEEP_STACK=1 to keep a
stack the session started running, which makes the next run's start instant.

Only tests under tests/stack see it; to share it with end-to-end tests elsewhere, move
the fixture to tests/conftest.py (pytest offers a conftest's fixtures to its folder's
tests only).

Tests must not stop this shared stack; a test that needs its own lifecycle makes a
private stack with :func:`private_stack_env`.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from lifecert.stack import StackConfig, StackStatus, down, status, up


@pytest.fixture(scope="session")
def stack() -> Iterator[StackStatus]:
    cfg = StackConfig.from_env()
    was_running = status(cfg).running
    st = up(cfg)
    yield st
    if not was_running and os.environ.get("LIFECERT_KEEP_STACK") != "1":
        down(cfg)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_port_pair() -> tuple[int, int]:
    """Two consecutive free ports (Kafka client port, controller port)."""
    for _ in range(50):
        port = free_port()
        if port < 65535:
            try:
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port + 1))
                return port, port + 1
            except OSError:
                continue
    raise RuntimeError("no two consecutive free ports on 127.0.0.1")


@pytest.fixture
def private_stack_env() -> Iterator[dict[str, str]]:
    """Environment for a separate, throw-away stack: own data folder (beside the shared
    stack's, since pytest's tmp folders are 0700 and the PostgreSQL server's OS user could
    not enter them), own free ports, the shared download cache. Stopped and removed after
    the test."""
    shared = StackConfig.from_env()
    parent = shared.data_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    data_dir = Path(tempfile.mkdtemp(prefix="test-stack-", dir=parent))
    data_dir.chmod(0o755)
    kafka_port, controller_port = free_port_pair()
    env = {
        **os.environ,
        "LIFECERT_DATA_DIR": str(data_dir),
        "LIFECERT_CACHE_DIR": str(shared.cache_dir),
        "LIFECERT_KAFKA_PORT": str(kafka_port),
        "LIFECERT_KAFKA_CONTROLLER_PORT": str(controller_port),
        "LIFECERT_PG_PORT": str(free_port()),
        "LIFECERT_KAFKA_HEAP": "512m",
    }
    try:
        yield env
    finally:
        down(StackConfig.from_env(env))
        shutil.rmtree(data_dir, ignore_errors=True)
