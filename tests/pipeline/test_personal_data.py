"""Crypto-shredding end to end (issue 11, item 8): a retiree enrolled through
``lifecert publish`` into the real broker, decided by the worker, projected, and read
back by the API's directory; the name is never in the broker's segment files or a
database dump in the clear, not even before erasure; after ``lifecert erase`` it is
unreadable everywhere and the read model shows ``[erased]``."""

from __future__ import annotations

import json
import random
import subprocess
import time
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from lifecert import cli
from lifecert.api.directory import DirectoryFeed, display_name, wait_caught_up
from lifecert.api.migrate import migrate as migrate_api
from lifecert.commands.dead_letters import purge
from lifecert.events import codec, personal
from lifecert.pipeline.topics import DEAD_LETTERS, EVENTS
from lifecert_dev import live
from lifecert_dev.stack import StackConfig, StackStatus
from lifecert_dev.stack.postgres import find_bindir
from tests.helpers import enroll
from tests.pipeline.live_helpers import POLICY, UNTIL, campaign

pytestmark = pytest.mark.stack


def _distinctive_name(rng: random.Random) -> str:
    """A Chinese name no other data holds: a compound surname and three random common
    characters (CJK Unified Ideographs, all in GB18030)."""
    return "司马" + "".join(chr(rng.randrange(0x4E00, 0x9FA5)) for _ in range(3))


def _forms(name: str) -> dict[str, bytes]:
    """Every byte form the name could take in a file."""
    return {
        "utf-8": name.encode("utf-8"),
        "gb18030": name.encode("gb18030"),
        "utf-16-le": name.encode("utf-16-le"),
        "utf-16-be": name.encode("utf-16-be"),
        "json-escaped": json.dumps(name).strip('"').encode("ascii"),
    }


def _segment_files(prefix: str) -> list[Path]:
    """The broker's files of every partition of the run's topics (its input, output,
    status, dead-letter and the worker's changelog topics all start with the prefix)."""
    log_dirs = StackConfig.from_env().kafka_dir / "kraft-data"
    return [f for d in log_dirs.iterdir() if d.name.startswith(prefix) and d.is_dir()
            for f in d.iterdir() if f.is_file()]


def _found_in_segments(prefix: str, needles: dict[str, bytes]) -> list[str]:
    found = []
    for path in _segment_files(prefix):
        data = path.read_bytes()
        found += [f"{form} in {path.parent.name}/{path.name}"
                  for form, needle in needles.items() if needle in data]
    return found


def _pg_dump(run: live.LiveRun) -> bytes:
    bindir = find_bindir(StackConfig.from_env())
    assert bindir is not None and (bindir / "pg_dump").is_file()
    done = subprocess.run([str(bindir / "pg_dump"), "--no-owner", "-d", run.dsn],
                          capture_output=True, check=True, timeout=120)
    assert b"CREATE TABLE public.personal_data_keys" in done.stdout
    return done.stdout


def _found_in(blob: bytes, needles: dict[str, bytes]) -> list[str]:
    return [form for form, needle in needles.items() if needle in blob]


def _records(run: live.LiveRun, role: str) -> list[Any]:
    from lifecert.pipeline import broker_clients

    consumer = broker_clients.consumer(run.bootstrap)
    try:
        from kafka import TopicPartition

        topic = run.topics[role].name
        tps = [TopicPartition(topic, p) for p in broker_clients.partitions_of(consumer, topic)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        out: list[Any] = []
        deadline = time.monotonic() + 30
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            assert time.monotonic() < deadline
            for batch in consumer.poll(timeout_ms=500).values():
                out.extend(batch)
        return out
    finally:
        consumer.close()


def test_an_erased_name_is_in_no_segment_and_no_dump_and_reads_as_erased(
    stack: StackStatus, run: live.LiveRun, tmp_path: Path, capsys: Any
) -> None:
    rng = random.Random()
    name = _distinctive_name(rng)
    rid = f"SHRED-{rng.randrange(10**9):09d}"
    needles = _forms(name)
    # The retiree, a malformed enrollment naming them (a dead letter keyed to them), and a
    # line that is not JSON at all with the name in it (a dead letter of no one).
    mine = enroll(rid, name=name, recorded_at="2017-01-01T09:00:00+08:00",
                  event_id=f"enroll-{rid}")
    bad = json.loads(enroll(rid, name=name, recorded_at="2017-01-01T09:00:01+08:00"))
    bad["scheme"] = "NO_SUCH_SCHEME"
    garbage = f'{{"type": "RetireeEnrolled", "name": "{name}" oops'
    generated = campaign(tmp_path, 30, 11).read_text(encoding="utf-8")
    events = tmp_path / "with-mine.jsonl"
    events.write_text("\n".join([mine, json.dumps(bad, ensure_ascii=False), garbage])
                      + "\n" + generated, encoding="utf-8")

    stats = live.publish(run, events, POLICY, UNTIL)
    assert stats.dead_letters == 2, stats.describe()
    conn = psycopg2.connect(run.dsn)
    conn.autocommit = True
    migrate_api(conn)
    feed = DirectoryFeed(run.dsn, run.bootstrap, run.topics)
    keys = run.keystore()
    try:
        with live.running(run.worker_argv(), run.work_dir / "worker.log") as worker, \
                live.running(run.projections_argv(), run.work_dir / "projections.log") as proj:
            assert live.wait_until_idle(run, 240, [worker, proj]), (
                (run.work_dir / "worker.log").read_text(errors="replace")[-3000:])
            feed.start()
            assert wait_caught_up(feed, 60)
            deadline = time.monotonic() + 30
            while display_name(conn, keys, rid) is None and time.monotonic() < deadline:
                time.sleep(0.2)
            # The read model shows the name, opened through the key store.
            assert display_name(conn, keys, rid) == name

            # On the topic it is sealed from the start: the worker and its changelogs,
            # the dead letters and every segment file never saw it in the clear.
            (enrolled,) = [e for e in map(lambda r: codec.decode(r.value),
                                          _records(run, EVENTS))
                           if e.get("retiree_id") == rid and e["type"] == "RetireeEnrolled"]
            token = enrolled["name"]
            assert personal.is_sealed(token) and personal.reveal(enrolled, "name", keys) == name
            assert any(token.encode() in f.read_bytes() for f in _segment_files(run.prefix)), \
                "the sealed name is not in the segment files read: the grep would prove nothing"
            assert any(f.name.endswith(".log") and "changelog" in f.parent.name
                       for f in _segment_files(run.prefix))
            assert _found_in_segments(run.prefix, needles) == []
            assert _found_in(_pg_dump(run), needles) == []
            letters = [codec.decode(r.value) for r in _records(run, DEAD_LETTERS)]
            raws = {d["source_offset"]: d["value"] for d in letters if d["stage"] == "publish"}
            assert sorted(raws) == [2, 3]
            assert name.encode() in personal.open_raw(raws[2], keys)  # sealed, not lost

            # Erase: confirmation first, then for real, then again (idempotent).
            assert cli.main(["erase", rid, "--keys-dsn", run.dsn]) == 2
            assert "add --yes" in capsys.readouterr().err
            assert display_name(conn, keys, rid) == name
            # as the key store's own role (it owns the key table: the VACUUM runs), the
            # read models and the API's tables scrubbed as the admin
            erase = ["erase", rid, "--yes", "--keys-dsn", run.dsn_for("keystore"),
                     "--scrub-dsn", run.dsn]
            assert cli.main(erase) == 0
            assert "1 data key(s) destroyed, 1 read-model row(s) scrubbed" in \
                capsys.readouterr().out
            vacuumed = psycopg2.connect(run.dsn)
            try:
                with vacuumed.cursor() as cur:
                    cur.execute("SELECT last_vacuum IS NOT NULL FROM pg_stat_user_tables "
                                "WHERE relname = 'personal_data_keys'")
                    assert cur.fetchone() == (True,), "the erase's VACUUM was skipped"
            finally:
                vacuumed.close()
            assert cli.main(erase) == 0
            assert "already erased" in capsys.readouterr().out
    finally:
        feed.stop()
        keys.close()

    fresh = run.keystore()  # no cache: what any process reads from now on
    try:
        assert display_name(conn, fresh, rid) == personal.ERASED
        assert personal.reveal(enrolled, "name", fresh) == personal.ERASED
        assert personal.open_raw(raws[2], fresh) is None  # the dead letter naming them
        assert name.encode() in personal.open_raw(raws[3], fresh)  # of no one: until purge
        _, destroyed = purge([run.dsn], run.dsn, 30, now=letters[0]["recorded_at"].replace(
            year=letters[0]["recorded_at"].year + 1))
        assert destroyed == [personal.dead_letter_subject(letters[0]["recorded_at"])]
        after_purge = run.keystore()  # `fresh` keeps what it read for its cache's ttl
        try:
            assert personal.open_raw(raws[3], after_purge) is None
        finally:
            after_purge.close()
        other = next(e for e in map(lambda r: codec.decode(r.value), _records(run, EVENTS))
                     if e["type"] == "RetireeEnrolled" and e["retiree_id"] != rid)
        assert personal.reveal(other, "name", fresh) not in (
            personal.ERASED, personal.UNREADABLE, other["name"])  # others keep theirs
    finally:
        fresh.close()
    with conn.cursor() as cur:
        cur.execute("SELECT outcome, keys_destroyed, rows_scrubbed, requested_by <> '' FROM "
                    "personal_data_erasures WHERE subject = %s ORDER BY id", (rid,))
        assert cur.fetchall() == [("erased", 1, 1, True), ("nothing left", 0, 0, True)]
    conn.close()
    assert _found_in_segments(run.prefix, needles) == []
    dump = _pg_dump(run)
    assert _found_in(dump, needles) == []
    assert token.encode() not in dump  # the read model's sealed copy is scrubbed too
