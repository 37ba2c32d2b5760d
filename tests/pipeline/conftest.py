"""The ``run`` fixture: one live-pipeline run (its own topic prefix, worker group and
database on the shared local stack), cleaned up afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lifecert_dev import live
from lifecert_dev.stack import StackStatus


@pytest.fixture
def run(stack: StackStatus, tmp_path: Path) -> Iterator[live.LiveRun]:
    tag = uuid.uuid4().hex[:10]
    run = live.LiveRun(stack.kafka_bootstrap, stack.postgres_dsn, f"e2e{tag}.",
                       f"lifecert_e2e_{tag}", tmp_path)
    live.prepare(run)
    yield run
    live.discard(run)
