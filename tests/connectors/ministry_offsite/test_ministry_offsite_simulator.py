"""The ministry simulator as the real process (``python -m
lifecert_dev.partners.ministry_offsite.simulator``): what it drops is a batch the connector maps
back to exactly the events it was given (a generated campaign's ministry certifications, times
written in UTC included), its corruptions and malformed lines are the ones the connector
must refuse or reject, and its command line fails clearly."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from connectors.ministry_offsite import batchfile as bf
from connectors.ministry_offsite.connector import map_line
from connectors.sdk.errors import RecordRejected
from lifecert.events.interchange import parse_event
from lifecert_dev.generate import write_campaign_file

SIM = [sys.executable, "-m", "lifecert_dev.partners.ministry_offsite.simulator"]


def sim(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SIM, *args], input=stdin, capture_output=True, text=True,
                          timeout=60)


def cert(n: int, **overrides: Any) -> dict[str, Any]:
    event = {"type": "CertificationRecorded", "event_id": f"ev-{n}",
             "recorded_at": f"2017-05-0{n % 9 + 1}T17:30:00Z",
             "certification_id": f"MOHRSS-17-{n:08d}", "retiree_id": f"FS{n:09d}",
             "channel": "MINISTRY_OFFSITE", "agency_id": "HB-WUHAN-SIB",
             "performed_at": f"2017-05-0{n % 9 + 1}T09:15:00.5+08:00"}
    event.update(overrides)
    return event


def write_jsonl(path: Path, events: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events),
                    encoding="utf-8")
    return path


def business(event: dict[str, Any]) -> dict[str, Any]:
    parsed = parse_event(dict(event))
    return {k: v for k, v in parsed.items() if k not in ("event_id", "source_agency", "name")}


@pytest.fixture(scope="module")
def campaign_certifications(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    path = tmp_path_factory.mktemp("campaign") / "campaign.jsonl"
    write_campaign_file(path, 3000, seed=44)
    with path.open(encoding="utf-8") as f:
        found = [e for line in f if (e := json.loads(line))["type"] == "CertificationRecorded"
                 and e["channel"] == "MINISTRY_OFFSITE"]
    assert len(found) > 30
    return found


def test_a_dropped_campaign_batch_maps_back_to_the_same_events(
        tmp_path: Path, campaign_certifications: list[dict[str, Any]]) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    events = campaign_certifications
    src = write_jsonl(tmp_path / "in.jsonl", events)
    done = sim("drop", "--inbox", str(inbox), "--batch-id", "20170402-001", str(src))
    assert done.returncode == 0, done.stderr
    assert f"{len(events)} records" in done.stdout
    assert [p.name for p in inbox.iterdir()] == ["MOHRSS_440600_20170402-001.csv"]
    data = (inbox / "MOHRSS_440600_20170402-001.csv").read_bytes()
    batch = bf.read_batch("MOHRSS_440600_20170402-001.csv", data)
    rows = [bf.parse_line(line) for line in batch.records]
    assert all(r.performed_at.endswith("+08:00") and r.reported_at.endswith("+08:00")
               for r in rows), "the ministry writes Beijing time"
    assert all(r.name for r in rows), "every line carries a (made-up) name"
    assert any(r.performed_at != e["performed_at"] for r, e in zip(rows, events, strict=True))
    mapped = [map_line(line) for line in batch.records]
    assert [business(m) for m in mapped] == [business(e) for e in events]
    assert all("name" not in m for m in mapped), "the name never goes to a topic"


def test_drop_reads_stdin_keeps_a_given_name_and_fractions_of_seconds(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    line = json.dumps(cert(1, name="𠮷田, 一郎"), ensure_ascii=False) + "\n"
    done = sim("drop", "--inbox", str(inbox), "--batch-id", "B1", "-", stdin=line)
    assert done.returncode == 0, done.stderr
    (record,) = bf.read_batch("MOHRSS_440600_B1.csv",
                              (inbox / "MOHRSS_440600_B1.csv").read_bytes()).records
    parsed = bf.parse_line(record)
    assert parsed.name == "𠮷田, 一郎"
    assert parsed.performed_at == "2017-05-02T09:15:00.500000+08:00"
    assert parsed.reported_at == "2017-05-03T01:30:00+08:00"


@pytest.mark.parametrize(("corruption", "words"), [
    ("count", "the trailer says 4 records but the file has 3"),
    ("checksum", "does not match the SHA-256"),
    ("batch-id", "the trailer names batch 'C1-X'"),
    ("no-trailer", "the last line is not a trailer"),
])
def test_each_corruption_makes_a_batch_the_connector_refuses(
        tmp_path: Path, corruption: str, words: str) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    src = write_jsonl(tmp_path / "in.jsonl", [cert(n) for n in range(3)])
    done = sim("drop", "--inbox", str(inbox), "--batch-id", "C1", "--corrupt", corruption,
               str(src))
    assert done.returncode == 0, done.stderr
    assert f"trailer corrupted ({corruption})" in done.stdout
    with pytest.raises(bf.BatchRefused, match=words.replace("(", r"\(")):
        bf.read_batch("MOHRSS_440600_C1.csv", (inbox / "MOHRSS_440600_C1.csv").read_bytes())


def test_malformed_records_are_rejected_by_field_and_the_trailer_still_matches(
        tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    src = write_jsonl(tmp_path / "in.jsonl", [cert(n) for n in range(9)])
    specs = {1: "认证编号", 2: "retiree_id", 3: "姓名", 4: "performed_at", 5: "经办机构代码",
             6: "上报时间", 7: "fields", 8: "encoding"}
    args = [a for record, field in specs.items() for a in ("--malform", f"{record}:{field}")]
    done = sim("drop", "--inbox", str(inbox), "--batch-id", "M1", *args, str(src))
    assert done.returncode == 0, done.stderr
    batch = bf.read_batch("MOHRSS_440600_M1.csv", (inbox / "MOHRSS_440600_M1.csv").read_bytes())
    want = ["认证编号", "养老金编号", "姓名", "认证时间", "经办机构代码", "上报时间", None, "姓名"]
    for line, column in zip(batch.records[:8], want, strict=True):
        with pytest.raises(bf.LineRejected) as caught:
            bf.parse_line(line)
        assert caught.value.column == column, caught.value.reason
        with pytest.raises(RecordRejected, match=f"line {line.number}"):
            map_line(line)
    assert business(map_line(batch.records[8])) == business(cert(8))


@pytest.mark.parametrize(("args", "code", "words"), [
    (["--batch-id", "bad/id"], 2, "batch id 'bad/id'"),
    (["--batch-id", "B2", "--malform", "0:认证时间"], 2, "RECORD:FIELD"),
    (["--batch-id", "B2", "--malform", "1:age"], 2, "RECORD:FIELD"),
    (["--batch-id", "B2", "--malform", "5:姓名"], 2, "only 1 records"),
    (["--batch-id", "B1"], 1, "already in the inbox"),
    (["--batch-id", "B3", "--inbox", "/nonexistent/inbox"], 1, "not a folder"),
])
def test_drop_fails_clearly(tmp_path: Path, args: list[str], code: int, words: str) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "MOHRSS_440600_B1.csv").write_bytes(b"")
    src = write_jsonl(tmp_path / "in.jsonl", [cert(1)])
    if "--inbox" not in args:
        args = ["--inbox", str(inbox), *args]
    done = sim("drop", *args, str(src))
    assert done.returncode == code, done.stderr
    assert words in done.stderr
    assert not list(inbox.glob(".*.part")), "no half-written file is left"


@pytest.mark.parametrize(("event", "words"), [
    (cert(1, channel="COUNTER"), "only CertificationRecorded with channel MINISTRY_OFFSITE"),
    ({"type": "DeathRecorded", "recorded_at": "2017-05-01T10:00:00+08:00",
      "retiree_id": "FS1", "date_of_death": "2017-04-01", "source": "X"},
     "only CertificationRecorded"),
    (cert(1, performed_at="2017-05-01T09:00:00"), "line 2, field 'performed_at'"),
])
def test_drop_refuses_what_the_ministry_does_not_report(tmp_path: Path, event: dict[str, Any],
                                                        words: str) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", [cert(0), event])
    done = sim("drop", "--inbox", str(tmp_path), "--batch-id", "X1", str(src))
    assert done.returncode == 2
    assert words in done.stderr
    assert not list(tmp_path.glob("MOHRSS_*"))


def test_serve_drops_one_spooled_batch_per_night_and_reports_receipts(tmp_path: Path) -> None:
    inbox, spool, receipts = tmp_path / "inbox", tmp_path / "spool", tmp_path / "receipts"
    for folder in (inbox, spool, receipts):
        folder.mkdir()
    write_jsonl(spool / "20170402-001.jsonl", [cert(1), cert(2)])
    write_jsonl(spool / "20170403-001.jsonl", [cert(3)])
    (receipts / "MOHRSS_440600_20170401-001.receipt.csv").write_bytes(bf.encode_receipt(
        "20170401-001", [bf.ReceiptLine(2, "C1", bf.REJECTED, "line 2: bad")]))
    proc = subprocess.Popen([*SIM, "serve", "--inbox", str(inbox), "--spool", str(spool),
                             "--every", "0.2", "--receipts", str(receipts)],
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while len(list(inbox.glob("*.csv"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert sorted(p.name for p in inbox.iterdir()) == [
        "MOHRSS_440600_20170402-001.csv", "MOHRSS_440600_20170403-001.csv"]
    assert sorted(p.name for p in (spool / "sent").iterdir()) == [
        "20170402-001.jsonl", "20170403-001.jsonl"]
    summary = json.loads(next(line for line in err.splitlines() if line.startswith("{")))
    assert summary["status"] == bf.PARTIAL and summary["rejected_lines"][0]["line"] == 2
    listed = sim("receipts", str(receipts))
    assert json.loads(listed.stdout)["batch_id"] == "20170401-001"
