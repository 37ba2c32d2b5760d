"""Fixtures for the tests of the local stack itself.

The shared, session-scoped ``stack`` fixture lives in tests/fixtures_stack.py (every test
of the tree can use it). Tests must not stop that shared stack; a test that needs its own
lifecycle makes a private stack with :func:`private_stack_env`.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from lifecert_dev.stack import StackConfig, down
from lifecert_dev.stack.postgres import FALLBACK_ROOT
from tests.fixtures_stack import require_marker


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
def private_stack_env(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """Environment for a separate, throw-away stack: own data folder (an explicit
    LIFECERT_DATA_DIR in /var/tmp: pytest's tmp folders, and the clone itself in CI, may lie
    in 0700 folders the PostgreSQL server's OS user cannot enter), own free ports, the
    shared download cache. Stopped and removed after the test."""
    require_marker(request.node, ["private_stack_env"])
    shared = StackConfig.from_env()
    data_dir = Path(tempfile.mkdtemp(prefix="lifecert-test-stack-", dir=FALLBACK_ROOT))
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
