"""The campaign clock of the live pipeline: the pure tick placement (no broker) checked
against replay's Campaign, and ``lifecert clock advance`` against the real broker."""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from lifecert.domain.campaign import Campaign
from lifecert.domain.policy import DEADLINE, HOME_VISIT_SWEEP, Moment, load_policy
from lifecert.events import codec
from lifecert.events.interchange import MalformedEvent, parse_line
from lifecert.pipeline import broker_clients, broker_errors, scheduler
from lifecert.pipeline import credentials as creds
from lifecert.pipeline.topics import CLOCK, EVENTS, TopicLayout, layout
from lifecert_dev.generate import write_campaign_file
from tests.helpers import cert, enroll

POLICY = load_policy("foshan-2017")
SWEEP_AT = datetime(2017, 5, 31, 16, tzinfo=UTC)  # 2017-06-01T00:00+08:00
DEADLINE_AT = datetime(2017, 6, 20, 16, tzinfo=UTC)  # 2017-06-21T00:00+08:00


# ------------------------------------------------------------------ replay's positions


def replay_positions(
    events: list[dict[str, Any]], until: date | None = None
) -> list[tuple[int, str]]:
    """(index of the event a moment is decided before, moment kind), as replay's Campaign
    decides them: the reference the tick placement must agree with. A moment decided at
    the end (``until``) gets index ``len(events)``."""
    campaign = Campaign(POLICY)
    out: list[tuple[int, str]] = []
    for i, event in enumerate(events):
        before = campaign.pending_moments
        campaign.decide(dict(event))
        fired = before[: len(before) - len(campaign.pending_moments)]
        out.extend((i, m.kind) for m in fired)
    if until is not None:
        before = campaign.pending_moments
        campaign.advance_to(scheduler.cutoff(until))
        fired = before[: len(before) - len(campaign.pending_moments)]
        out.extend((len(events), m.kind) for m in fired)
    return out


def placed_positions(
    events: list[dict[str, Any]], until: date | None = None, fired: tuple[str, ...] = ()
) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    index = 0
    placed = scheduler.place_ticks(
        events, POLICY.moments, until=scheduler.cutoff(until) if until else None, fired=fired
    )
    for kind, item in placed:
        if kind == scheduler.TICK:
            assert isinstance(item, Moment)
            out.append((index, item.kind))
        else:
            assert item is events[index]
            index += 1
    assert index == len(events)
    return out


def parsed(lines: list[str]) -> list[dict[str, Any]]:
    out = []
    for n, line in enumerate(lines, 1):
        try:
            out.append(parse_line(line, n))
        except MalformedEvent:
            continue
    return out


def at(text: str) -> str:
    return f"2017-{text}+08:00"


# ---------------------------------------------------------------------------- pure


def test_moment_clock_fires_at_or_after_the_instant_in_time_order() -> None:
    clock = scheduler.MomentClock(reversed(POLICY.moments))
    assert [m.kind for m in clock.pending] == [HOME_VISIT_SWEEP, DEADLINE]
    assert clock.next_at == SWEEP_AT
    assert clock.due(SWEEP_AT - timedelta(microseconds=1)) == []
    assert [m.kind for m in clock.due(SWEEP_AT)] == [HOME_VISIT_SWEEP]  # at: fires
    assert clock.next_at == DEADLINE_AT
    assert [m.kind for m in clock.due(DEADLINE_AT + timedelta(days=90))] == [DEADLINE]
    assert clock.next_at is None and clock.due(datetime.max.replace(tzinfo=UTC)) == []
    assert [m.kind for m in scheduler.MomentClock(POLICY.moments, fired={DEADLINE}).pending] == [
        HOME_VISIT_SWEEP
    ]


def test_cutoff_is_the_end_of_the_local_day() -> None:
    assert scheduler.cutoff(date(2017, 6, 20)) == DEADLINE_AT
    assert scheduler.cutoff(date(2017, 5, 31)) == SWEEP_AT


def test_ticks_go_before_the_first_event_recorded_at_or_after_the_moment() -> None:
    lines = [
        enroll("R1"),
        cert("C1", "R1", "FACE_APP", performed_at=at("05-31T23:59:59")),
        cert("C2", "R1", "FACE_APP", performed_at=at("06-01T00:00:00")),  # exactly at: fires
        # a late arrival recorded before the sweep, after it fired: a plain event
        cert("C3", "R1", "FACE_APP", performed_at=at("05-20T10:00:00")),
        cert("C4", "R1", "FACE_APP", performed_at=at("06-20T23:59:59")),
        cert("C5", "R1", "FACE_APP", performed_at=at("06-21T00:00:01")),
        cert("C6", "R1", "FACE_APP", performed_at=at("06-30T00:00:00")),
    ]
    events = parsed(lines)
    assert placed_positions(events) == [(2, HOME_VISIT_SWEEP), (5, DEADLINE)]
    assert placed_positions(events) == replay_positions(events)


def test_one_event_can_fire_both_moments_and_they_come_in_time_order() -> None:
    events = parsed([enroll("R1"), cert("C1", "R1", "COUNTER", performed_at=at("07-01T09:00"))])
    assert placed_positions(events) == [(1, HOME_VISIT_SWEEP), (1, DEADLINE)]
    assert placed_positions(events) == replay_positions(events)


def test_until_adds_the_moments_due_by_the_end_of_that_day_at_the_end() -> None:
    events = parsed([enroll("R1"), cert("C1", "R1", "COUNTER", performed_at=at("05-02T09:00"))])
    assert placed_positions(events) == []  # without --until no moment is due
    assert placed_positions(events, until=date(2017, 5, 30)) == []
    assert placed_positions(events, until=date(2017, 5, 31)) == [(2, HOME_VISIT_SWEEP)]
    assert placed_positions(events, until=date(2017, 6, 20)) == [
        (2, HOME_VISIT_SWEEP), (2, DEADLINE),
    ]
    for day in (date(2017, 5, 30), date(2017, 5, 31), date(2017, 6, 20)):
        assert placed_positions(events, until=day) == replay_positions(events, until=day)


def test_fired_moments_are_not_placed_again() -> None:
    events = parsed([enroll("R1"), cert("C1", "R1", "COUNTER", performed_at=at("07-01T09:00"))])
    assert placed_positions(events, fired=(HOME_VISIT_SWEEP,)) == [(1, DEADLINE)]
    assert placed_positions(events, until=date(2017, 12, 31), fired=(HOME_VISIT_SWEEP,
                                                                     DEADLINE)) == []


def test_no_events_no_ticks_unless_until() -> None:
    assert list(scheduler.place_ticks([], POLICY.moments)) == []
    assert [k for k, _ in scheduler.place_ticks([], POLICY.moments, until=DEADLINE_AT)] == [
        scheduler.TICK, scheduler.TICK,
    ]


@pytest.mark.parametrize("seed", [1, 7, 2017])
def test_placement_agrees_with_replay_on_generated_campaigns(tmp_path: Path, seed: int) -> None:
    path = tmp_path / "campaign.jsonl"
    write_campaign_file(path, 300, seed)
    events = parsed(path.read_text(encoding="utf-8").splitlines())
    expected = replay_positions(events)
    assert [kind for _, kind in expected] == [HOME_VISIT_SWEEP, DEADLINE]
    assert placed_positions(events) == expected
    # a log cut before the sweep, completed with --until
    early = [e for e in events if e["recorded_at"] < SWEEP_AT - timedelta(days=3)]
    for day in (date(2017, 5, 31), date(2017, 6, 20)):
        assert placed_positions(early, until=day) == replay_positions(early, until=day)


def test_tick_records_have_deterministic_ids_and_encode() -> None:
    sweep = POLICY.moments[0]
    one = scheduler.tick_event("foshan-2017", sweep, 3)
    assert one == scheduler.tick_event("foshan-2017", sweep, 3)
    ids = {scheduler.tick_event("foshan-2017", sweep, p)["event_id"] for p in [*range(6), None]}
    assert len(ids) == 7
    assert one["recorded_at"] == one["at"] == SWEEP_AT
    assert codec.decode(codec.encode(one)) == one
    assert scheduler.clock_key("foshan-2017", DEADLINE) == "foshan-2017/DEADLINE"


# -------------------------------------------------------------------------- broker


@pytest.fixture()
def fresh_layout(stack: Any) -> Iterator[TopicLayout]:
    """A set of topics of its own (a unique prefix), created, and deleted afterwards."""
    lay = layout(f"t{uuid.uuid4().hex[:12]}.")
    with broker_clients.admin_client(stack.kafka_bootstrap) as admin:
        broker_clients.ensure_topics(admin, lay)
    yield lay
    with broker_clients.admin_client(stack.kafka_bootstrap) as admin:
        admin.delete_topics([spec.name for spec in lay.topics.values()], raise_errors=False)


def _parser() -> argparse.ArgumentParser:
    from lifecert.commands import clock, topics

    parser = argparse.ArgumentParser(prog="lifecert")
    sub = parser.add_subparsers(dest="command", required=True)
    clock.register(sub)
    topics.register(sub)
    return parser


def _run(*argv: str) -> int:
    args = _parser().parse_args(list(argv))
    return int(args.func(args))


def _records(bootstrap: str, topic: str) -> list[Any]:
    consumer = broker_clients.consumer(bootstrap)
    try:
        return list(broker_clients.read_to_end(consumer, topic, timeout=30))
    finally:
        consumer.close()


@pytest.mark.stack
def test_clock_advance_publishes_each_due_moment_once(
    stack: Any, fresh_layout: TopicLayout, capsys: pytest.CaptureFixture[str]
) -> None:
    bootstrap = stack.kafka_bootstrap
    prefix = fresh_layout[EVENTS].name.removesuffix("lifecert.events")
    common = ["--bootstrap", bootstrap, "--prefix", prefix]
    assert _run("topics", "create", *common) == 0  # idempotent: they exist already
    assert "(created)" not in capsys.readouterr().out

    assert _run("clock", "advance", "--to", "2017-05-30", *common) == 0
    assert "nothing new to publish" in capsys.readouterr().out
    assert _records(bootstrap, fresh_layout[CLOCK].name) == []

    assert _run("clock", "advance", "--to", "2017-05-31", *common) == 0
    out = capsys.readouterr().out
    assert out.startswith("published foshan-2017/HOME_VISIT_SWEEP at 2017-06-01T00:00:00+08:00")
    assert "not due yet: foshan-2017/DEADLINE at 2017-06-21T00:00:00+08:00" in out
    for _ in range(2):
        assert _run("clock", "advance", "--to", "2017-06-20", *common) == 0
    outs = capsys.readouterr().out
    assert [line for line in outs.splitlines() if line.startswith("published ")] == [
        "published foshan-2017/DEADLINE at 2017-06-21T00:00:00+08:00 "
        f"({fresh_layout[EVENTS].partitions} partitions + clock topic)"
    ]
    assert outs.count("nothing new to publish") == 1
    assert _run("clock", "advance", "--to", "2018-01-01", *common) == 0
    assert "nothing new to publish" in capsys.readouterr().out

    clock_records = _records(bootstrap, fresh_layout[CLOCK].name)
    assert [r.key for r in clock_records] == [
        b"foshan-2017/HOME_VISIT_SWEEP", b"foshan-2017/DEADLINE",
    ]
    assert [codec.decode(r.value)["at"] for r in clock_records] == [SWEEP_AT, DEADLINE_AT]

    ticks = _records(bootstrap, fresh_layout[EVENTS].name)
    # one consumer reading topics to their ends in turn
    consumer = broker_clients.consumer(bootstrap)
    try:
        for topic in (fresh_layout[EVENTS].name, fresh_layout[CLOCK].name) * 2:
            again = list(broker_clients.read_to_end(consumer, topic, timeout=30))
            assert len(again) == (len(ticks) if topic == fresh_layout[EVENTS].name else 2)
        assert len(list(broker_clients.read_to_end(consumer, fresh_layout[EVENTS].name,
                                       partitions=[0, 1]))) == 4
    finally:
        consumer.close()
    per_partition = Counter((r.partition, codec.decode(r.value)["moment"]) for r in ticks)
    partitions = fresh_layout[EVENTS].partitions
    assert per_partition == {
        (p, kind): 1 for p in range(partitions) for kind in (HOME_VISIT_SWEEP, DEADLINE)
    }
    for record in ticks:
        tick = codec.decode(record.value)
        assert record.key == scheduler.TICK_KEY
        assert tick == scheduler.tick_event("foshan-2017", POLICY.moments[0]
                                     if tick["moment"] == HOME_VISIT_SWEEP
                                     else POLICY.moments[1], record.partition)


@pytest.mark.stack
def test_clock_advance_without_topics_says_to_create_them(
    stack: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = f"t{uuid.uuid4().hex[:12]}.missing."
    code = _run("clock", "advance", "--to", "2017-06-20", "--bootstrap", stack.kafka_bootstrap,
                "--prefix", prefix)
    assert code == 1
    err = capsys.readouterr().err
    assert f"{prefix}lifecert.events does not exist" in err
    assert "lifecert topics create" in err


def test_clock_advance_without_a_broker_fails_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    # Credentials of its own: the broker, not the local stack's credential files, is missing.
    monkeypatch.setenv(creds.USERNAME_ENV, "admin")
    monkeypatch.setenv(creds.PASSWORD_ENV, "unused")
    with pytest.raises(broker_errors.KafkaUnavailable, match=r"cannot reach the Kafka broker at "
                       r"127\.0\.0\.1:1: .*lifecert stack up"):
        scheduler.advance("127.0.0.1:1", layout("nowhere."), POLICY, date(2017, 6, 20),
                   connect_timeout=1)


@pytest.mark.stack
def test_clock_run_follows_the_wall_clock_and_stops_on_sigterm(
    stack: Any, fresh_layout: TopicLayout
) -> None:
    """`lifecert clock run` as a process: with the wall clock at 2017-06-10 (--now), only the
    home-visit sweep is due; it is published once however many times the scheduler looks."""
    prefix = fresh_layout[EVENTS].name.removesuffix("lifecert.events")
    argv = [sys.executable, "-m", "lifecert.cli", "clock", "run", "--interval", "0.2",
            "--now", "2017-06-10T08:00:00+08:00", "--bootstrap", stack.kafka_bootstrap,
            "--prefix", prefix]
    scheduler = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if _records(stack.kafka_bootstrap, fresh_layout[CLOCK].name):
                break
            time.sleep(0.5)
        time.sleep(1.5)  # several more looks at the clock
    finally:
        scheduler.send_signal(signal.SIGTERM)
        _, err = scheduler.communicate(timeout=30)
    assert scheduler.returncode == 0, err
    assert err.count("published HOME_VISIT_SWEEP") == 1
    clock_records = _records(stack.kafka_bootstrap, fresh_layout[CLOCK].name)
    assert [r.key for r in clock_records] == [b"foshan-2017/HOME_VISIT_SWEEP"]
    ticks = _records(stack.kafka_bootstrap, fresh_layout[EVENTS].name)
    assert len(ticks) == fresh_layout[EVENTS].partitions
