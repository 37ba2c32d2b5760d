"""The worker's batch procedure (streams.processor) without a broker: batches that mix
partitions, sends and changelog writes that fail at random, crashes that lose the
local store and restart from the last committed offsets. Same outputs and statuses as
replay; nothing stored before its outputs were acknowledged."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from random import Random
from typing import Any

from lifecert.domain.policy import load_policy
from lifecert.events import codec
from lifecert.events.interchange import parse_line, to_json
from lifecert.pipeline import broker_clients
from lifecert.pipeline.scheduler import TICK_KEY, tick_event
from lifecert.pipeline.topics import DEAD_LETTERS, STATUS, VERDICTS, layout
from lifecert.replay import replay_lines
from lifecert_dev.generate import iter_campaign
from streams.partition_state import PartitionCampaign
from streams.processor import Processor, Record, SendCancelled
from streams.records import Position

POLICY = load_policy("foshan-2017")
TOPICS = layout("")
PARTITIONS = 4
EVENTS = TOPICS["events"].name


class SendFailed(Exception):
    pass


class Broker:
    """Output topics and the changelog: a record is kept when acknowledged, and also,
    now and then, when its send 'failed' (the broker got it, the ack was lost or its
    future was cancelled)."""

    def __init__(self, random: Random, fail: float) -> None:
        self.random = random
        self.fail = fail
        self.records: list[tuple[str, bytes | None, bytes]] = []
        self.changelog: list[tuple[bytes, Any]] = []
        self.outputs_acked_before_store = True

    def _future(self, keep: Any, result: Any) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.random.random() < self.fail:
            if self.random.random() < 0.5:
                keep()
            if self.random.random() < 0.25:
                future.cancel()  # the producer dropped the batch: a failed send too
            else:
                future.set_exception(SendFailed("no ack"))
        else:
            keep()
            future.set_result(result)
        return future

    async def send(self, topic: str, key: bytes | None, value: bytes) -> asyncio.Future[Any]:
        return self._future(lambda: self.records.append((topic, key, value)), None)


class Table:
    """The processor's StateTable: changelog on the broker, a local store that a crash
    loses (the worker then rebuilds it from the changelog)."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.local: dict[bytes, Any] = {}

    def entry(self, key: bytes, value: Any) -> tuple[bytes, Any]:
        return key, json.loads(json.dumps(value))

    async def send(self, record: Record, entry: tuple[bytes, Any]) -> asyncio.Future[Any]:
        return self.broker._future(lambda: self.broker.changelog.append(entry), None)

    def sent(self, acks: Iterable[Any]) -> None:
        pass

    def store(self, record: Record, entry: tuple[bytes, Any]) -> None:
        key, value = entry
        self.local[key] = value

    def items(self) -> Iterable[tuple[bytes, Any]]:
        return list(self.local.items())

    def recover(self) -> None:
        self.local = dict(self.broker.changelog)


def partitioned_log(
    retirees: int, seed: int
) -> tuple[dict[int, list[tuple[bytes, bytes]]], list[str]]:
    """A generated campaign split as Kafka's partitioner splits it, ticks included."""
    logs: dict[int, list[tuple[bytes, bytes]]] = {p: [] for p in range(PARTITIONS)}
    pending = list(POLICY.moments)
    lines = [line.rstrip("\n") for line in iter_campaign(retirees, seed)]
    for line in lines:
        event = parse_line(line)
        while pending and event["recorded_at"] >= pending[0].at:
            moment = pending.pop(0)
            for p in range(PARTITIONS):
                tick = tick_event(POLICY.name, moment, p)
                logs[p].append((TICK_KEY, codec.encode(tick)))
        partition = broker_clients.partition_for_key(event["retiree_id"], PARTITIONS)
        logs[partition].append((event["retiree_id"].encode(), codec.encode(event)))
    return logs, lines


def live_results(
    broker: Broker,
) -> tuple[list[dict[str, Any]], dict[str, str], list[dict[str, Any]]]:
    """Outputs and verdicts (once per event id) and the latest statuses sent."""
    outputs: dict[str, dict[str, Any]] = {}
    verdicts: dict[str, dict[str, Any]] = {}
    statuses: dict[str, str] = {}
    for topic, _, value in broker.records:
        event = codec.decode(value)
        if topic == TOPICS[STATUS].name:
            statuses[event["retiree_id"]] = event["status"]
        elif topic == TOPICS[VERDICTS].name:
            verdicts.setdefault(event["event_id"], to_json(event))
        elif topic != TOPICS[DEAD_LETTERS].name:
            outputs.setdefault(event["event_id"], to_json(event))
    return list(outputs.values()), statuses, list(verdicts.values())


def test_batches_with_failed_sends_and_crashes_decide_as_replay() -> None:
    random = Random(7)
    logs, lines = partitioned_log(600, seed=21)
    broker = Broker(random, fail=0.03)
    table = Table(broker)
    committed = dict.fromkeys(logs, 0)  # next offset to read, per partition
    crashes = retries = 0

    async def run() -> None:
        nonlocal crashes, retries
        processor = Processor(POLICY, TOPICS, broker.send, table)
        acked = dict(committed)
        while any(acked[p] < len(log) for p, log in logs.items()):
            # A batch: the next few records of a few partitions, interleaved.
            batch: list[Record] = []
            cursor = dict(acked)
            for _ in range(random.randint(1, 40)):
                p = random.choice([p for p in logs if cursor[p] < len(logs[p])] or [0])
                if cursor[p] >= len(logs[p]):
                    break
                key, value = logs[p][cursor[p]]
                batch.append(Record(Position(EVENTS, p, cursor[p]), key, value))
                cursor[p] += 1
            done = 0
            while done < len(batch):
                try:
                    done += await processor.process(batch[done:])
                except (SendFailed, SendCancelled):
                    retries += 1
            for record in batch:
                acked[record.position.partition] = record.position.offset + 1
            if random.random() < 0.2:  # commit
                committed.update(acked)
            if random.random() < 0.08:  # crash: local store and memory lost
                crashes += 1
                table.recover()
                processor = Processor(POLICY, TOPICS, broker.send, table)
                acked = dict(committed)
        committed.update(acked)

    asyncio.run(run())
    expected = replay_lines(lines, POLICY.name)
    outputs, statuses, verdicts = live_results(broker)

    def key(o: dict[str, Any]) -> str:
        return json.dumps(o, sort_keys=True, ensure_ascii=False)

    assert sorted(map(key, outputs)) == sorted(map(key, expected.instructions))
    assert expected.verdicts and sorted(map(key, verdicts)) == sorted(map(key, expected.verdicts))
    assert statuses == expected.statuses
    assert crashes > 3 and retries > 3


def test_an_undecidable_record_becomes_a_dead_letter_and_the_rest_flows(
    monkeypatch: Any,
) -> None:
    logs, _ = partitioned_log(60, seed=22)
    records = [Record(Position(EVENTS, 0, offset), key, value)
               for offset, (key, value) in enumerate(logs[0][:30])]
    bad = codec.decode(records[10].value)["event_id"]
    original = PartitionCampaign.decide

    def decide(self: PartitionCampaign, event: dict[str, Any], cause: str) -> Any:
        if event.get("event_id") == bad:
            raise RuntimeError("boom")
        return original(self, event, cause)

    monkeypatch.setattr(PartitionCampaign, "decide", decide)
    broker = Broker(Random(1), fail=0.0)
    table = Table(broker)
    processor = Processor(POLICY, TOPICS, broker.send, table)

    async def run() -> list[int]:
        done, steps = 0, []
        while done < len(records):
            n = await processor.process(records[done:])
            steps.append(n)
            done += n
        return steps

    assert asyncio.run(run()) == [10, 1, 19]  # the batch ends before it; it alone; the rest
    letters = [codec.decode(v) for t, _, v in broker.records if t == TOPICS[DEAD_LETTERS].name]
    assert [(d["source_offset"], d["reason"]) for d in letters] == [
        (10, "not decidable: RuntimeError: boom")]
    assert processor.counters.records == 30
