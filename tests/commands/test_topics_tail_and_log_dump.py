"""``lifecert topics tail`` and ``lifecert log dump`` against the real broker (issue 18
items 6 and 7): records published on a topic layout of the test's own, read back decoded
by the commands run as processes; each refusal tested. (That a dump of a live run replays
to the live result is tests/pipeline/test_end_to_end.py.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lifecert.domain.policy import load_policy
from lifecert.events import codec
from lifecert.events.interchange import parse_line
from lifecert.events.personal import seal_personal
from lifecert.keystore.memory import MemoryKeyStore
from lifecert.pipeline import broker_clients
from lifecert.pipeline.credentials import ADMIN
from lifecert.pipeline.topics import CONNECTOR_CHECKPOINTS, EVENTS, TopicLayout, layout
from lifecert.replay import replay_file
from lifecert_dev.stack import StackStatus
from tests.helpers import cert, enroll

pytestmark = pytest.mark.stack

LINES = [
    enroll("R-1", recorded_at="2017-01-05T09:00:00+08:00", event_id="e-0"),
    cert("C-1", "R-1", "COUNTER", performed_at="2017-03-01T10:00:00+08:00", event_id="e-1"),
    cert("C-2", "R-1", "COUNTER", performed_at="2017-05-01T10:00:00+08:00", event_id="e-2"),
]


@pytest.fixture(scope="module")
def lay(stack: StackStatus) -> Iterator[TopicLayout]:
    lay = layout(f"t{uuid.uuid4().hex[:12]}.")
    bootstrap = stack.kafka_bootstrap
    with broker_clients.admin_client(bootstrap, component=ADMIN) as admin:
        broker_clients.ensure_topics(admin, lay)
    keys = MemoryKeyStore()
    producer = broker_clients.producer(bootstrap, component=ADMIN)
    try:
        for line in LINES:
            event = seal_personal(parse_line(line), keys)
            producer.send(lay[EVENTS].name, key=b"R-1", value=codec.encode(event)).get(30)
        producer.send(lay[CONNECTOR_CHECKPOINTS].name, key=b"conn-1",
                      value=b'{"position": 3}').get(30)
        producer.flush()
    finally:
        producer.close()
    yield lay
    with broker_clients.admin_client(bootstrap, component=ADMIN) as admin:
        admin.delete_topics([s.name for s in lay.topics.values()], raise_errors=False)


def _prefix(lay: TopicLayout) -> str:
    return lay[EVENTS].name.removesuffix("lifecert.events")


def _argv(stack: StackStatus, lay: TopicLayout, *args: str) -> list[str]:
    return [sys.executable, "-m", "lifecert.cli", *args, "--bootstrap", stack.kafka_bootstrap,
            "--prefix", _prefix(lay)]


def _run(stack: StackStatus, lay: TopicLayout, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(_argv(stack, lay, *args), capture_output=True, text=True,
                          timeout=120, check=False)


def test_tail_prints_the_last_records_decoded_and_keeps_the_name_sealed(
    stack: StackStatus, lay: TopicLayout
) -> None:
    done = _run(stack, lay, "topics", "tail", "events", "-n", "2")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2
    assert all("CertificationRecorded" in line and "key=R-1" in line for line in lines)
    assert '"certification_id":"C-2"' in lines[-1]
    every = _run(stack, lay, "topics", "tail", "events", "--from-beginning", "--json")
    records = [json.loads(line) for line in every.stdout.splitlines()]
    assert [r["value"]["event_id"] for r in records] == ["e-0", "e-1", "e-2"]
    assert records[0]["value"]["name"].startswith("lcp1.")  # sealed, as on the log
    assert "Zhang" not in every.stdout
    first = _run(stack, lay, "topics", "tail", "events", "--from-beginning", "-n", "1")
    assert "RetireeEnrolled" in first.stdout and len(first.stdout.splitlines()) == 1
    json_topic = _run(stack, lay, "topics", "tail", "connector_checkpoints")
    assert json_topic.returncode == 0
    assert '(json)  key=conn-1  {"position":3}' in json_topic.stdout


def test_tail_follows_new_records(stack: StackStatus, lay: TopicLayout) -> None:
    child = subprocess.Popen(_argv(stack, lay, "topics", "tail", "verdicts", "--follow"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(4)  # it has read the (empty) topic and waits
        producer = broker_clients.producer(stack.kafka_bootstrap, component=ADMIN)
        try:
            from lifecert.domain.verdicts import verdict

            judged = verdict(parse_line(LINES[1]), "OUTSIDE_WINDOW", load_policy("foshan-2017"))
            assert judged is not None
            producer.send(lay["verdicts"].name, key=b"R-1", value=codec.encode(judged)).get(30)
        finally:
            producer.close()
        assert child.stdout is not None
        line = child.stdout.readline()
        assert "EventRejected" in line and '"reason":"OUTSIDE_WINDOW"' in line
    finally:
        child.send_signal(signal.SIGINT)
        assert child.wait(30) == 0


def test_tail_refusals(stack: StackStatus, lay: TopicLayout) -> None:
    unknown = _run(stack, lay, "topics", "tail", "lifecert.evnts")
    assert unknown.returncode == 1
    assert "'lifecert.evnts' is not one of lifecert's topics" in unknown.stderr
    negative = _run(stack, lay, "topics", "tail", "events", "-n", "-3")
    assert negative.returncode == 2 and "-n takes a count of records" in negative.stderr
    missing = subprocess.run(
        [sys.executable, "-m", "lifecert.cli", "topics", "tail", "events", "--bootstrap",
         stack.kafka_bootstrap, "--prefix", "nosuch."],
        capture_output=True, text=True, timeout=120, check=False)
    assert missing.returncode == 1 and "does not exist" in missing.stderr


def test_tail_takes_a_prefixed_full_name_without_prefix_and_names_the_prefix_otherwise(
    stack: StackStatus, lay: TopicLayout
) -> None:
    full, prefix = lay[EVENTS].name, _prefix(lay)
    env = {k: v for k, v in os.environ.items() if k != "LIFECERT_TOPIC_PREFIX"}

    def tail(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "lifecert.cli", "topics", "tail", *args, "--bootstrap",
             stack.kafka_bootstrap], env=env, capture_output=True, text=True, timeout=120,
            check=False)

    done = tail(full, "-n", "1", "--json")
    assert done.returncode == 0, done.stderr
    [record] = [json.loads(line) for line in done.stdout.splitlines()]
    assert (record["topic"], record["value"]["event_id"]) == (full, "e-2")
    other = tail(full, "--prefix", "other.")
    assert other.returncode == 1
    assert (f"{full!r} is lifecert's topic events under the prefix {prefix!r}, not under the "
            f"prefix 'other.' given") in other.stderr
    assert f"give `events --prefix {prefix}`" in other.stderr


def test_dump_writes_lines_replay_takes(
    stack: StackStatus, lay: TopicLayout, tmp_path: Path
) -> None:
    out = tmp_path / "events.jsonl"
    done = _run(stack, lay, "log", "dump", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert f"3 records of {lay[EVENTS].name} written" in done.stderr
    dumped = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [d["event_id"] for d in dumped] == ["e-0", "e-1", "e-2"]
    _, stats = replay_file(out, load_policy("foshan-2017"), tmp_path / "replay")
    assert (stats.decided, stats.rejected, stats.verdicts) == (3, 1, 1)
    verdicts = (tmp_path / "replay" / "verdicts.jsonl").read_text(encoding="utf-8")
    assert '"reason":"OUTSIDE_WINDOW"' in verdicts and '"judged_event_id":"e-1"' in verdicts
    other = tmp_path / "checkpoints.jsonl"
    assert _run(stack, lay, "log", "dump", "--topic", "connector_checkpoints",
                "--out", str(other)).returncode == 0
    assert json.loads(other.read_text(encoding="utf-8")) == {"position": 3}


def test_dump_refusals(stack: StackStatus, lay: TopicLayout, tmp_path: Path) -> None:
    unknown = _run(stack, lay, "log", "dump", "--topic", "nope", "--out", str(tmp_path / "x"))
    assert unknown.returncode == 2 and "'nope' is not one of lifecert's topics" in unknown.stderr
    # A record that is neither Avro nor JSON on a topic: the dump stops, writing nothing...
    producer = broker_clients.producer(stack.kafka_bootstrap, component=ADMIN)
    try:
        producer.send(lay["tasks"].name, key=b"R-9", value=b"\x00\x01junk").get(30)
    finally:
        producer.close()
    out = tmp_path / "tasks.jsonl"
    stopped = _run(stack, lay, "log", "dump", "--topic", "tasks", "--out", str(out))
    assert stopped.returncode == 1 and not out.exists()
    assert "1 records of" in stopped.stderr and "--undecodable FILE" in stopped.stderr
    # ... or sets it aside with its position and reason.
    aside = tmp_path / "undecodable.jsonl"
    went_on = _run(stack, lay, "log", "dump", "--topic", "tasks", "--out", str(out),
                   "--undecodable", str(aside))
    assert went_on.returncode == 0, went_on.stderr
    assert out.read_text(encoding="utf-8") == ""
    [row] = [json.loads(line) for line in aside.read_text(encoding="utf-8").splitlines()]
    assert row["offset"] == 0 and "neither Avro" in row["reason"]
