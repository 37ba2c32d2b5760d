"""One generated campaign through `replay` and through Kafka -> worker -> PostgreSQL gives
identical instructions and statuses, cleanly and across faults (the live-pipeline issue).

The worker and the projections run as separate processes (`lifecert worker`, `lifecert
projections run`) against the shared local stack, each test on its own topic prefix and
database (lifecert_dev.live).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from lifecert_dev import live
from lifecert_dev.stack import StackStatus, broker, postgres
from tests.pipeline.live_helpers import (
    POLICY,
    UNTIL,
    assert_dump_replays_as_live,
    assert_live_equals_replay,
    campaign,
)

pytestmark = pytest.mark.stack


def wait_for_progress(run: live.LiveRun, children: list, fraction: float) -> None:
    """Until the worker has decided about ``fraction`` of the events topic."""
    total: list[int] = []

    def seen(worker_behind: int, _: int) -> None:
        if worker_behind >= 0:
            total.append(worker_behind)

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        died = [child.args[3] for child in children if child.poll() is not None]
        assert not died, f"{died} exited; see {run.work_dir}/logs/"
        live.wait_until_idle(run, 1.5, children, seen)
        if total and total[-1] <= max(total) * (1 - fraction):
            return
    raise AssertionError("the worker made no progress")


def test_clean_run_and_a_batch_published_twice_equal_replay(
    run: live.LiveRun, tmp_path: Path
) -> None:
    events = campaign(tmp_path, 800, seed=11)
    first = live.publish(run, events, POLICY, UNTIL)
    again = live.publish(run, events, POLICY, UNTIL)  # every event delivered twice
    assert again.events == first.events
    logs = tmp_path / "logs"
    with (
        live.running(run.worker_argv(), logs / "worker.log") as worker,
        live.running(run.projections_argv(), logs / "projections.log") as projections,
    ):
        assert live.wait_until_idle(run, 300, [worker, projections]), (
            (logs / "worker.log").read_text()[-3000:]
        )
    assert_live_equals_replay(run, events)
    # The log as the broker holds it (every event twice), dumped and replayed offline.
    assert_dump_replays_as_live(run)


@pytest.mark.exclusive  # stops the shared broker and database: nothing may run beside it
def test_broker_and_database_restarts_lose_and_double_nothing(
    run: live.LiveRun, stack: StackStatus, tmp_path: Path
) -> None:
    events = campaign(tmp_path, 2500, seed=12)
    live.publish(run, events, POLICY, UNTIL)
    logs = tmp_path / "logs"
    with (
        live.running(run.worker_argv(), logs / "worker.log") as worker,
        live.running(run.projections_argv(), logs / "projections.log") as projections,
    ):
        children = [worker, projections]
        wait_for_progress(run, children, 0.25)
        broker.stop(stack.config)
        time.sleep(2)
        broker.start(stack.config)
        wait_for_progress(run, children, 0.5)
        postgres.stop(stack.config)
        time.sleep(2)
        postgres.start(stack.config)
        assert live.wait_until_idle(run, 600, children), (
            (logs / "worker.log").read_text()[-3000:]
            + (logs / "projections.log").read_text()[-3000:]
        )
    assert_live_equals_replay(run, events)
