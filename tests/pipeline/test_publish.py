"""``lifecert publish``: the pure part (parsing, completing, planning ticks) without a
broker, then a generated campaign published to the real broker and consumed back."""

from __future__ import annotations

import argparse
import json
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from lifecert.cli import COMMAND_COMPONENTS
from lifecert.domain.campaign import Campaign
from lifecert.domain.policy import DEADLINE, HOME_VISIT_SWEEP, Moment, load_policy
from lifecert.events import codec
from lifecert.events.interchange import MalformedEvent, parse_line
from lifecert.events.personal import is_sealed, open_raw, reveal
from lifecert.keystore.memory import MemoryKeyStore
from lifecert.keystore.postgres import open_keystore
from lifecert.pipeline import broker_clients, broker_errors, scheduler
from lifecert.pipeline.credentials import ADMIN, acting_as
from lifecert.pipeline.publish import (
    Prepared,
    PublishStats,
    dead_letter_event,
    plan,
    prepare_line,
    prepare_lines,
    publish_file,
)
from lifecert.pipeline.topics import CLOCK, DEAD_LETTERS, EVENTS, TopicLayout, layout
from lifecert_dev.generate import write_campaign_file
from tests.helpers import cert, enroll, without_event_id

POLICY = load_policy("foshan-2017")
FIXED_NOW = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
ASSIGNED = "<assigned>"


def _now() -> datetime:
    return FIXED_NOW


KEYS = MemoryKeyStore()


def _clear(event: dict[str, Any], keys: Any) -> dict[str, Any]:
    """``event`` with its sealed name opened (what the line said)."""
    if event["type"] != "RetireeEnrolled":
        return event
    assert is_sealed(event["name"]), "the name went out in the clear"
    return {**event, "name": reveal(event, "name", keys)}


# ---------------------------------------------------------------------------- pure


def test_prepare_keeps_what_the_line_gives_and_encodes_it() -> None:
    line = enroll("R1", event_id="ev-1")
    stats = PublishStats()
    prepared = prepare_line(line.encode(), 7, stats, _now, keys=KEYS)
    assert prepared.line == 7 and prepared.key == b"R1"
    assert _clear(prepared.event, KEYS) == parse_line(line)
    assert codec.decode(prepared.value) == prepared.event
    assert (stats.ids_assigned, stats.recorded_at_assigned) == (0, 0)


def test_prepare_assigns_event_id_and_recorded_at_where_missing() -> None:
    obj = json.loads(cert("C1", "R1", "FACE_APP", performed_at="2017-05-02T09:00:00+08:00"))
    del obj["event_id"], obj["recorded_at"]
    stats = PublishStats()
    prepared = prepare_line(json.dumps(obj), 3, stats, _now, keys=KEYS)
    assert uuid.UUID(prepared.event["event_id"]).version == 4
    assert prepared.event["recorded_at"] == FIXED_NOW
    assert prepared.event["recorded_at"].tzinfo is UTC
    assert (stats.ids_assigned, stats.recorded_at_assigned) == (1, 1)
    again = prepare_line(json.dumps(obj), 3, None, _now, keys=KEYS)
    assert again.event["event_id"] != prepared.event["event_id"]
    obj["recorded_at"] = None  # null counts as missing too
    assert prepare_line(json.dumps(obj), 3, None, _now, keys=KEYS).event["recorded_at"] == FIXED_NOW


def test_prepare_drops_fields_outside_the_schema_and_counts_them() -> None:
    obj = json.loads(enroll("R1"))
    obj["signature"] = "c2lnbmVk"
    stats = PublishStats()
    prepared = prepare_line(json.dumps(obj), 1, stats, _now, keys=KEYS)
    assert "signature" not in prepared.event
    assert stats.dropped_fields == {"signature": 1}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"not json", r"^line 4: not valid JSON: "),
        (b'{"type": "Bogus"}', r"^line 4, field 'type': unknown event type \"Bogus\""),
        (b"[1, 2]", r"^line 4: expected a JSON object"),
        (b'{"type": "RetireeEnrolled", "name": "\xff"}', r"^line 4: not valid JSON: "),
        (cert("C1", "R1", "CARRIER_PIGEON", performed_at="2017-05-02T09:00:00+08:00").encode(),
         r"^line 4, field 'channel': \"CARRIER_PIGEON\" is not one of "),
    ],
)
def test_prepare_rejects_malformed_lines_with_line_and_field(raw: bytes, expected: str) -> None:
    with pytest.raises(MalformedEvent, match=expected) as info:
        prepare_line(raw, 4, PublishStats(), _now, keys=KEYS)
    assert info.value.line == 4


def test_plan_routes_bad_lines_aside_and_places_ticks_like_replay() -> None:
    lines = [
        enroll("R1"),
        "not json\n",
        "\n",
        cert("C1", "R1", "FACE_APP", performed_at="2017-06-02T09:00:00+08:00"),
        cert("C2", "R1", "CARRIER_PIGEON", performed_at="2017-06-25T09:00:00+08:00"),
        cert("C3", "R1", "FACE_APP", performed_at="2017-05-20T09:00:00+08:00"),
        cert("C4", "R1", "FACE_APP", performed_at="2017-06-25T09:00:00+08:00"),
    ]
    bad: list[tuple[int, bytes, str]] = []
    stats = PublishStats()
    steps = list(plan(
        [line if line.endswith("\n") else line + "\n" for line in lines], POLICY,
        lambda n, raw, err: bad.append((n, raw, err.describe())), stats=stats, now=_now, keys=KEYS,
    ))
    shown = [
        item.line if isinstance(item, Prepared) else item.kind for _, item in steps
    ]
    # the invalid C2 (recorded after the deadline) fires nothing: only C4 does
    assert shown == [1, HOME_VISIT_SWEEP, 4, 6, DEADLINE, 7]
    assert [(n, raw) for n, raw, _ in bad] == [(2, b"not json"), (5, lines[4].encode())]
    assert "field 'channel'" in bad[1][2]
    assert (stats.lines, stats.events, stats.dead_letters) == (7, 4, 2)

    no_ticks = list(plan(lines, POLICY, lambda *a: None, ticks=False, until=date(2017, 12, 31),
                         keys=KEYS))
    assert all(kind == scheduler.EVENT for kind, _ in no_ticks)
    early = list(plan(lines[:1], POLICY, lambda *a: None, until=date(2017, 6, 20), keys=KEYS))
    assert [k for k, _ in early] == [scheduler.EVENT, scheduler.TICK, scheduler.TICK]
    fired = list(plan(lines, POLICY, lambda *a: None, fired=[HOME_VISIT_SWEEP], keys=KEYS))
    assert [i.kind for k, i in fired if isinstance(i, Moment)] == [DEADLINE]


def test_dead_letter_record_is_deterministic_and_encodes() -> None:
    error = MalformedEvent("not valid JSON: Expecting value", line=12)
    one = dead_letter_event("/data/x.jsonl", 12, b"oops", error, FIXED_NOW, keys=KEYS)
    two = dead_letter_event("/data/x.jsonl", 12, b"oops", error, datetime.now(UTC), keys=KEYS)
    assert one["event_id"] == two["event_id"]
    assert dead_letter_event("/data/x.jsonl", 13, b"oops", error, FIXED_NOW,
                             keys=KEYS)["event_id"] != (
        one["event_id"]
    )
    assert one["reason"] == "line 12: not valid JSON: Expecting value"
    assert (one["stage"], one["source_topic"], one["source_offset"]) == (
        "publish", "/data/x.jsonl", 12,
    )
    assert b"oops" not in one["value"] and open_raw(one["value"], KEYS) == b"oops"
    assert codec.decode(codec.encode(one)) == one


# -------------------------------------------------------------------------- broker


def _new_layout(bootstrap: str) -> TopicLayout:
    lay = layout(f"t{uuid.uuid4().hex[:12]}.")
    with broker_clients.admin_client(bootstrap, component=ADMIN) as admin:
        states = broker_clients.ensure_topics(admin, lay)
    assert all(s.created and not s.problems for s in states)
    return lay


def _drop(bootstrap: str, lay: TopicLayout) -> None:
    with broker_clients.admin_client(bootstrap, component=ADMIN) as admin:
        admin.delete_topics([spec.name for spec in lay.topics.values()], raise_errors=False)


def _prefix(lay: TopicLayout) -> str:
    return lay[EVENTS].name.removesuffix("lifecert.events")


def _records(bootstrap: str, topic: str) -> list[Any]:
    consumer = broker_clients.consumer(bootstrap, component=ADMIN)
    try:
        return sorted(broker_clients.read_to_end(consumer, topic, timeout=30),
                      key=lambda r: (r.partition, r.offset))
    finally:
        consumer.close()


def _cli(*argv: str) -> int:
    from lifecert.commands import clock, publish

    parser = argparse.ArgumentParser(prog="lifecert")
    sub = parser.add_subparsers(dest="command", required=True)
    publish.register(sub)
    clock.register(sub)
    args = parser.parse_args(list(argv))
    with acting_as(COMMAND_COMPONENTS[args.command]):  # as `lifecert <command>` runs it
        return int(args.func(args))


@dataclass
class Published:
    bootstrap: str
    layout: TopicLayout
    path: Path
    lines: list[str]
    malformed: dict[int, str]  # line number -> field named in the reason (or "")
    without_id: set[int]
    without_time: set[int]
    stats: list[dict[str, Any]]  # of each of the two runs
    events: list[list[Any]]  # records of the events topic of each run
    dead_letters: list[Any]
    clock: list[Any]
    started: datetime
    finished: datetime


def _campaign_file(tmp: Path) -> tuple[Path, list[str], dict[int, str], set[int], set[int]]:
    """A generated 300-retiree campaign with a malformed line, a bad field, an extra
    field, a blank line, a line without event_id and one without event_id or
    recorded_at (last: it is recorded 'now', after every moment)."""
    generated = tmp / "generated.jsonl"
    write_campaign_file(generated, 300, 2017)
    source = generated.read_text(encoding="utf-8").splitlines()
    certs = [i for i, line in enumerate(source) if '"CertificationRecorded"' in line]
    bad = json.loads(source[certs[40]])
    bad["channel"] = "CARRIER_PIGEON"
    bad["event_id"] = str(uuid.uuid4())
    extra = json.loads(source[certs[41]])
    extra["signature"] = "c2lnbmVk"
    extra["event_id"] = str(uuid.uuid4())
    source[certs[41]] = json.dumps(extra, ensure_ascii=False)
    before = {  # original index -> (line inserted before it, what it is)
        100: ('{"type": "RetireeEnrolled", oops', "json"),
        certs[40]: (json.dumps(bad, ensure_ascii=False), "channel"),
        250: ("", "blank"),
        300: (without_event_id(enroll("NOID-1", recorded_at="2017-03-03T10:00:00+08:00")),
              "no id"),
    }
    lines: list[str] = []
    malformed: dict[int, str] = {}
    without_id: set[int] = set()
    for i, line in enumerate(source):
        if i in before:
            text, what = before[i]
            lines.append(text)
            if what == "json":
                malformed[len(lines)] = ""
            elif what == "channel":
                malformed[len(lines)] = "channel"
            elif what == "no id":
                without_id.add(len(lines))
        lines.append(line)
    last = json.loads(cert("NOID-C1", "NOID-1", "FACE_APP", performed_at="2017-05-05T10:00Z"))
    del last["event_id"], last["recorded_at"]
    lines.append(json.dumps(last))
    without_id.add(len(lines))
    path = tmp / "campaign.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, lines, malformed, without_id, {len(lines)}


@pytest.fixture(scope="module")
def published(
    stack: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Published]:
    bootstrap = stack.kafka_bootstrap
    lay = _new_layout(bootstrap)
    path, lines, malformed, without_id, without_time = _campaign_file(
        tmp_path_factory.mktemp("publish")
    )
    prefix = _prefix(lay)
    stats = []
    events = []
    started = datetime.now(UTC)
    with pytest.MonkeyPatch.context() as mp:
        for _ in range(2):
            out = _StdoutCapture()
            mp.setattr("sys.stdout", out)
            code = _cli("publish", str(path), "--bootstrap", bootstrap, "--prefix", prefix,
                        "--quiet", "--json")
            mp.undo()
            assert code == 0
            stats.append(json.loads(out.text))
            seen = sum(len(run) for run in events)
            everything = _records(bootstrap, lay[EVENTS].name)
            events.append(_after(everything, events))
            assert len(everything) == seen + len(events[-1])
    finished = datetime.now(UTC)
    yield Published(
        bootstrap, lay, path, lines, malformed, without_id, without_time, stats, events,
        _records(bootstrap, lay[DEAD_LETTERS].name), _records(bootstrap, lay[CLOCK].name),
        started, finished,
    )
    _drop(bootstrap, lay)


class _StdoutCapture:
    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> int:
        self.text += text
        return len(text)

    def flush(self) -> None:
        pass


def _after(records: list[Any], earlier_runs: list[list[Any]]) -> list[Any]:
    """The records not in any earlier run (by partition and offset)."""
    seen = {(r.partition, r.offset) for run in earlier_runs for r in run}
    return [r for r in records if (r.partition, r.offset) not in seen]


def _expected_events(pub: Published) -> list[tuple[int, dict[str, Any]]]:
    """(line number, parsed event) of every valid line, in file order; a line without
    recorded_at gets a stand-in after every moment (publish stamps it 'now')."""
    out = []
    for n, line in enumerate(pub.lines, 1):
        if not line.strip() or n in pub.malformed:
            continue
        if n in pub.without_time:
            obj = json.loads(line)
            obj["recorded_at"] = "2030-01-01T00:00:00Z"
            line = json.dumps(obj)
        event = parse_line(line, n)
        event.pop("signature", None)
        out.append((n, event))
    return out


def _replay_ticks(events: list[dict[str, Any]]) -> dict[int, list[str]]:
    """Index of the event each moment is decided before -> moment kinds, by replay's
    Campaign (the reference for where ticks go)."""
    campaign = Campaign(POLICY)
    out: dict[int, list[str]] = defaultdict(list)
    for i, event in enumerate(events):
        before = campaign.pending_moments
        campaign.decide(dict(event))
        for moment in before[: len(before) - len(campaign.pending_moments)]:
            out[i].append(moment.kind)
    return out


def _signature(pub: Published, event: dict[str, Any], file_ids: set[str]) -> tuple[str, ...]:
    event_id = event["event_id"]
    return (event["type"], event["retiree_id"], event_id if event_id in file_ids else ASSIGNED)


@pytest.mark.stack
def test_every_valid_line_arrives_once_in_file_order_per_partition_with_ticks_where_replay_puts_them(  # noqa: E501
    published: Published,
) -> None:
    pub = published
    expected = _expected_events(pub)
    file_ids = {e["event_id"] for n, e in expected if n not in pub.without_id}
    partitions = pub.layout[EVENTS].partitions
    ticks_before = _replay_ticks([e for _, e in expected])
    assert sorted(k for kinds in ticks_before.values() for k in kinds) == sorted(
        [HOME_VISIT_SWEEP, DEADLINE]
    )

    want: dict[int, list[tuple[str, ...]]] = defaultdict(list)
    for i, (n, event) in enumerate(expected):
        for kind in ticks_before.get(i, []):
            for p in range(partitions):
                want[p].append(("ClockTick", kind))
        sig = (event["type"], event["retiree_id"],
               ASSIGNED if n in pub.without_id else event["event_id"])
        want[broker_clients.partition_for_key(event["retiree_id"], partitions)].append(sig)

    got: dict[int, list[tuple[str, ...]]] = defaultdict(list)
    for record in pub.events[0]:
        event = codec.decode(record.value)
        if event["type"] == "ClockTick":
            assert record.key == scheduler.TICK_KEY
            assert event == scheduler.tick_event(
                POLICY.name, next(m for m in POLICY.moments if m.kind == event["moment"]),
                record.partition,
            )
            got[record.partition].append(("ClockTick", event["moment"]))
            continue
        assert record.key == event["retiree_id"].encode()
        assert record.partition == broker_clients.partition_for_key(record.key, partitions)
        got[record.partition].append(_signature(pub, event, file_ids))
    assert set(got) == set(range(partitions))
    for p in range(partitions):
        assert got[p] == want[p], f"partition {p}"


@pytest.mark.stack
def test_published_events_are_the_lines_with_ids_and_times_assigned_where_missing(
    published: Published,
) -> None:
    pub = published
    by_line = dict(_expected_events(pub))
    by_id = {e["event_id"]: e for n, e in by_line.items() if n not in pub.without_id}
    decoded = [codec.decode(r.value) for r in pub.events[0]]
    inputs = [e for e in decoded if e["type"] != "ClockTick"]
    keys = open_keystore()  # the one `lifecert publish` sealed with
    assert len(inputs) == len(by_line)
    assigned = [e for e in inputs if e["event_id"] not in by_id]
    assert sorted(e["retiree_id"] for e in assigned) == ["NOID-1", "NOID-1"]
    for event in assigned:
        assert uuid.UUID(event["event_id"]).version == 4
    (stamped,) = [e for e in assigned if e["type"] == "CertificationRecorded"]
    assert pub.started <= stamped["recorded_at"] <= pub.finished
    (enrolled,) = [e for e in assigned if e["type"] == "RetireeEnrolled"]
    assert enrolled["recorded_at"] == datetime(2017, 3, 3, 2, tzinfo=UTC)
    for event in inputs:
        if event["event_id"] in by_id:  # every field, extra ones dropped
            assert _clear(event, keys) == by_id[event["event_id"]]

    stats = pub.stats[0]
    assert stats["lines"] == len(pub.lines)
    assert stats["events"] == len(by_line)
    assert (stats["dead_letters"], stats["ids_assigned"], stats["recorded_at_assigned"]) == (
        2, 2, 1,
    )
    assert stats["dropped_fields"] == {"signature": 1}
    assert stats["ticks"] == [HOME_VISIT_SWEEP, DEADLINE]
    partitions = pub.layout[EVENTS].partitions
    assert stats["tick_records"] == 2 * (partitions + 1)
    assert stats["records"] == len(by_line) + 2 + 2 * (partitions + 1)


@pytest.mark.stack
def test_malformed_lines_are_dead_letters_with_line_and_reason(published: Published) -> None:
    pub = published
    letters = [codec.decode(r.value) for r in pub.dead_letters]
    assert len(letters) == 2 * 2  # two per run, the same ids each run
    # Dead letters have no key, so the two runs' records interleave across partitions.
    runs = Counter(d["event_id"] for d in letters)
    assert len(runs) == 2 and set(runs.values()) == {2}
    first = sorted({d["event_id"]: d for d in letters}.values(), key=lambda d: d["source_offset"])
    keys = open_keystore()
    assert [d["source_offset"] for d in first] == sorted(pub.malformed)
    for letter in first:
        n = letter["source_offset"]
        assert letter["stage"] == "publish"
        assert letter["source_topic"] == str(pub.path.resolve())
        assert letter["source_partition"] is None and letter["key"] is None
        assert letter["value"] != pub.lines[n - 1].encode()  # sealed
        assert open_raw(letter["value"], keys) == pub.lines[n - 1].encode()
        assert letter["reason"].startswith(f"line {n}")
        field = pub.malformed[n]
        if field:
            assert f"field {field!r}" in letter["reason"]
        else:
            assert "not valid JSON" in letter["reason"]
    assert all(r.key is None for r in pub.dead_letters)


@pytest.mark.stack
def test_clock_topic_records_the_moments_once(published: Published) -> None:
    assert [r.key for r in published.clock] == [
        b"foshan-2017/HOME_VISIT_SWEEP", b"foshan-2017/DEADLINE",
    ]
    assert [codec.decode(r.value)["moment"] for r in published.clock] == [
        HOME_VISIT_SWEEP, DEADLINE,
    ]


@pytest.mark.stack
def test_publishing_again_resends_the_same_ids_and_no_second_ticks(published: Published) -> None:
    pub = published
    first = [codec.decode(r.value) for r in pub.events[0]]
    second = [codec.decode(r.value) for r in pub.events[1]]
    assert not [e for e in second if e["type"] == "ClockTick"]
    assert pub.stats[1]["ticks"] == []
    assert pub.stats[1]["ticks_already_published"] == [HOME_VISIT_SWEEP, DEADLINE]
    ids_first = Counter(e["event_id"] for e in first if e["type"] != "ClockTick")
    ids_second = Counter(e["event_id"] for e in second)
    assigned = set(ids_first) ^ set(ids_second)
    assert len(assigned) == 4  # the two id-less lines got fresh ids each run
    assert ids_first - Counter(assigned) == ids_second - Counter(assigned)
    by_partition: dict[int, list[str]] = defaultdict(list)
    for record in pub.events[1]:
        by_partition[record.partition].append(codec.decode(record.value)["event_id"])
    for p, ids in by_partition.items():
        again = [
            codec.decode(r.value)["event_id"] for r in pub.events[0] if r.partition == p
            and r.key != scheduler.TICK_KEY
        ]
        assert [i for i in ids if i not in assigned] == [i for i in again if i not in assigned]


@pytest.mark.stack
def test_until_writes_the_due_moments_at_the_end_and_no_ticks_writes_none(
    stack: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bootstrap = stack.kafka_bootstrap
    lines = [enroll(f"R{i}") for i in range(20)]
    lines += [cert(f"C{i}", f"R{i}", "FACE_APP", performed_at="2017-05-02T09:00:00+08:00")
              for i in range(20)]
    path = tmp_path / "early.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    until = _new_layout(bootstrap)
    no_ticks = _new_layout(bootstrap)
    try:
        assert _cli("publish", str(path), "--bootstrap", bootstrap, "--prefix", _prefix(until),
                    "--until", "2017-06-20", "--quiet") == 0
        assert "clock ticks: HOME_VISIT_SWEEP, DEADLINE" in capsys.readouterr().out
        per_partition: dict[int, list[str]] = defaultdict(list)
        for record in _records(bootstrap, until[EVENTS].name):
            per_partition[record.partition].append(codec.decode(record.value)["type"])
        assert len(per_partition) == until[EVENTS].partitions
        for types in per_partition.values():
            assert types[-2:] == ["ClockTick", "ClockTick"]
            assert "ClockTick" not in types[:-2]
        assert _cli("clock", "advance", "--to", "2017-06-20", "--bootstrap", bootstrap,
                    "--prefix", _prefix(until)) == 0
        assert "nothing new to publish" in capsys.readouterr().out

        dead = tmp_path / "dead.jsonl"
        path.write_text("\n".join([*lines, "garbage"]) + "\n", encoding="utf-8")
        assert _cli("publish", str(path), "--bootstrap", bootstrap, "--prefix",
                    _prefix(no_ticks), "--no-ticks", "--quiet", "--dead-letters", str(dead),
                    "--dead-letters-only-file") == 0
        assert "clock ticks: none" in capsys.readouterr().out
        records = _records(bootstrap, no_ticks[EVENTS].name)
        assert len(records) == len(lines)
        assert all(r.key != scheduler.TICK_KEY for r in records)
        assert _records(bootstrap, no_ticks[CLOCK].name) == []
        assert _records(bootstrap, no_ticks[DEAD_LETTERS].name) == []
        (letter,) = [json.loads(x) for x in dead.read_text(encoding="utf-8").splitlines()]
        assert (letter["line"], letter["raw"]) == (41, "garbage")
    finally:
        _drop(bootstrap, until)
        _drop(bootstrap, no_ticks)


@pytest.mark.stack
def test_lines_too_large_for_a_record_are_dead_letters_cut_to_size(
    stack: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bootstrap = stack.kafka_bootstrap
    # 1.2 MB in UTF-8: once too large for a Kafka record, now refused for its name alone
    # (text fields hold at most 1,000 characters: lifecert/events/bounds.py)
    huge_event = enroll("R2", name="名" * 400_000)
    huge_garbage = "x" * 1_200_000
    path = tmp_path / "huge.jsonl"
    path.write_text("\n".join([enroll("R1"), huge_event, huge_garbage, enroll("R3")]) + "\n",
                    encoding="utf-8")
    lay = _new_layout(bootstrap)
    try:
        assert _cli("publish", str(path), "--bootstrap", bootstrap, "--prefix", _prefix(lay),
                    "--quiet", "--json") == 0
        stats = json.loads(capsys.readouterr().out)
        assert (stats["events"], stats["dead_letters"]) == (2, 2)
        events = [codec.decode(r.value) for r in _records(bootstrap, lay[EVENTS].name)]
        assert sorted(e["retiree_id"] for e in events) == ["R1", "R3"]
        letters = sorted((codec.decode(r.value) for r in _records(bootstrap,
                                                                   lay[DEAD_LETTERS].name)),
                         key=lambda d: d["source_offset"])
        assert [d["source_offset"] for d in letters] == [2, 3]
        assert letters[0]["reason"].startswith(
            "line 2, field 'name': 400000 characters, at most 1000")
        assert letters[1]["reason"].startswith("line 3: not valid JSON")
        keys = open_keystore()
        for letter, raw in zip(letters, (huge_event, huge_garbage), strict=True):
            assert open_raw(letter["value"], keys) == raw.encode()[:256 * 1024]
            assert f"cut to its first 262,144 of {len(raw.encode()):,} bytes" in letter["reason"]
    finally:
        _drop(bootstrap, lay)


@pytest.mark.stack
def test_missing_topics_and_missing_broker_fail_with_what_to_do(
    stack: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "one.jsonl"
    path.write_text(enroll("R1") + "\n", encoding="utf-8")
    prefix = f"t{uuid.uuid4().hex[:12]}.missing."
    assert _cli("publish", str(path), "--bootstrap", stack.kafka_bootstrap, "--prefix", prefix,
                "--quiet") == 1
    err = capsys.readouterr().err
    assert f"topic {prefix}lifecert.events does not exist" in err
    assert "lifecert topics create" in err

    assert _cli("publish", str(tmp_path / "nope.jsonl"), "--quiet") == 2
    assert "no such file" in capsys.readouterr().err

    with acting_as("connector"), \
            pytest.raises(broker_errors.KafkaUnavailable,
                          match=r"cannot reach the Kafka broker at 127\.0\.0\.1:1: "
                                r".*lifecert stack up"):
        publish_file(path, POLICY, bootstrap="127.0.0.1:1", layout=layout("nowhere."),
                     connect_timeout=1, keys=KEYS)


def test_a_line_nested_too_deep_is_a_dead_letter_not_a_crash_of_the_key_prefetch() -> None:
    from lifecert.keystore import CachedKeyStore

    deep = '{"type": "RetireeEnrolled", "retiree_id": "R9", "x": ' + "[" * 50_000 + "]" * \
        50_000 + "}"
    keys = CachedKeyStore(MemoryKeyStore())  # with prefetch: lines are read ahead
    bad: list[tuple[int, MalformedEvent]] = []
    prepared = list(prepare_lines([enroll("R1"), deep, enroll("R2")],
                                  lambda n, raw, err: bad.append((n, err)), keys=keys))
    assert [p.key for p in prepared] == [b"R1", b"R2"]
    assert [n for n, _ in bad] == [2] and "not valid JSON" in bad[0][1].describe()
    letter = dead_letter_event("f", 2, deep.encode(), bad[0][1], FIXED_NOW, keys=keys)
    assert open_raw(letter["value"], keys) == deep.encode()
