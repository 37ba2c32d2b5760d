"""``lifecert replay`` as a bureau analyst runs it: files in, files out, clear errors."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from lifecert.cli import main
from tests.helpers import cert, contact, death, docs, enroll, retract, revoke

LOG = [
    enroll("R1", birth_date="1937-06-20"),
    enroll("R2", residence="ABROAD", district=None, country="US"),
    enroll("R3", scheme="GOV_INSTITUTION", managing_unit="UNIT-7"),
    cert("C2", "R2", "CONSULATE", performed_at="2017-05-01T10:00:00-07:00",
         recorded_at="2017-05-05T10:00:00+08:00"),
    cert("C3", "R3", "FACE_APP", performed_at="2017-05-02T10:00:00+08:00",
         recorded_at="2017-05-02T10:01:00+08:00"),
    docs("C2", "R2", recorded_at="2017-07-31T16:00:30Z"),
    death("R1", date_of_death="2017-05-10", recorded_at="2017-10-05T10:00:00+08:00"),
]


def write_log(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_replay_writes_the_three_files(tmp_path: Path) -> None:
    events = write_log(tmp_path / "events.jsonl", LOG)
    out = tmp_path / "out"
    assert main(["replay", str(events), "--until", "2017-12-31", "--out", str(out)]) == 0
    kinds = [i["type"] for i in read_jsonl(out / "instructions.jsonl")]
    assert kinds == [
        "HomeVisitDue", "PaymentHoldPlaced", "PaymentHoldPlaced", "PaymentHoldPlaced",
        "PaymentHoldReleased", "PaymentTerminated", "OverpaymentDetected",
    ]
    with (out / "status.csv").open(newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows == [["retiree_id", "status"], ["R1", "DECEASED"], ["R2", "CERTIFIED"],
                    ["R3", "SUSPENDED"]]
    assert read_jsonl(out / "rejections.jsonl") == [
        {"line": 5, "type": "CertificationRecorded", "event_id": json.loads(LOG[4])["event_id"],
         "retiree_id": "R3", "certification_id": "C3", "reason": "CHANNEL_NOT_ALLOWED"}
    ]
    [judged] = read_jsonl(out / "verdicts.jsonl")  # what the worker publishes for it
    assert judged["type"] == "EventRejected" and judged["reason"] == "CHANNEL_NOT_ALLOWED"
    assert judged["judged_event_id"] == json.loads(LOG[4])["event_id"]
    assert judged["reported_by"] == "AG-1" and judged["certification_id"] == "C3"


def test_until_stops_deciding_at_the_end_of_that_day(tmp_path: Path) -> None:
    events = write_log(tmp_path / "events.jsonl", LOG)
    out = tmp_path / "out"
    assert main(["replay", str(events), "--until", "2017-06-20", "--out", str(out),
                 "--quiet"]) == 0
    kinds = [i["type"] for i in read_jsonl(out / "instructions.jsonl")]
    assert kinds == ["HomeVisitDue", "PaymentHoldPlaced", "PaymentHoldPlaced",
                     "PaymentHoldPlaced"]
    statuses = dict(csv.reader((out / "status.csv").open()))
    assert statuses["R1"] == "SUSPENDED"
    assert statuses["R2"] == "SUSPENDED"


def test_malformed_line_stops_the_run_naming_line_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = json.loads(LOG[3])
    bad["performed_at"] = "2017-05-01 10:00"
    events = write_log(tmp_path / "events.jsonl", [*LOG[:3], json.dumps(bad), *LOG[4:]])
    assert main(["replay", str(events), "--out", str(tmp_path / "out"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert (
        f"{events}: line 4, field 'performed_at': time '2017-05-01 10:00' has no UTC offset"
        in err
    )
    assert "--dead-letters" in err


def test_dead_letters_file_takes_malformed_lines_and_the_run_goes_on(tmp_path: Path) -> None:
    lines = [*LOG[:2], '{"type": "DeathRecorded", "retiree_id": ', *LOG[2:4],
             '{"type": "Birth", "recorded_at": "2017-05-01T00:00:00Z"}', *LOG[4:]]
    events = write_log(tmp_path / "events.jsonl", lines)
    dead = tmp_path / "dead.jsonl"
    out = tmp_path / "out"
    assert main(["replay", str(events), "--until", "2017-12-31", "--out", str(out),
                 "--dead-letters", str(dead), "--quiet"]) == 0
    letters = read_jsonl(dead)
    assert [(d["line"], d["field"]) for d in letters] == [(3, None), (6, "type")]
    assert letters[0]["raw"] == '{"type": "DeathRecorded", "retiree_id": '
    assert "not valid JSON" in letters[0]["reason"]
    assert "unknown event type" in letters[1]["reason"]
    # The rest decided exactly as without the bad lines.
    clean = tmp_path / "clean"
    main(["replay", str(write_log(tmp_path / "c.jsonl", LOG)), "--until", "2017-12-31",
          "--out", str(clean), "--quiet"])
    assert (out / "instructions.jsonl").read_text() == (clean / "instructions.jsonl").read_text()
    assert (out / "status.csv").read_text() == (clean / "status.csv").read_text()


def test_replay_decides_corrections_into_the_three_files(tmp_path: Path) -> None:
    lines = [
        *LOG,
        revoke("C3", "R3", recorded_at="2017-08-01T10:00:00+08:00"),  # not complete: applied
        revoke("C9", "R3", recorded_at="2017-08-02T10:00:00+08:00"),
        contact("R2", recorded_at="2017-08-03T10:00:00+08:00", phone="+86 757 1234 5678"),
        retract("R1", recorded_at="2017-10-20T10:00:00+08:00"),
    ]
    out = tmp_path / "out"
    assert main(["replay", str(write_log(tmp_path / "e.jsonl", lines)), "--out", str(out),
                 "--quiet"]) == 0
    kinds = [i["type"] for i in read_jsonl(out / "instructions.jsonl")]
    assert kinds[-3:] == ["OverpaymentCancelled", "PaymentReinstated", "PaymentHoldPlaced"]
    assert [(r["line"], r["reason"]) for r in read_jsonl(out / "rejections.jsonl")] == [
        (5, "CHANNEL_NOT_ALLOWED"), (9, "UNKNOWN_CERTIFICATION")]
    statuses = dict(csv.reader((out / "status.csv").open()))
    assert statuses["R1"] == "SUSPENDED"
    for name in ("instructions.jsonl", "rejections.jsonl", "verdicts.jsonl", "status.csv"):
        assert "1234" not in (out / name).read_text()


def test_dead_letters_never_hold_a_phone_or_an_address(tmp_path: Path) -> None:
    good = json.loads(contact("R2", recorded_at="2017-08-03T10:00:00+08:00",
                              phone="+86 757 1234 5678", address="Lane 9, Nanhai"))
    bad_field = dict(good, channel="PIGEON")
    lines = [*LOG, json.dumps(bad_field), json.dumps(good)[:-20]]
    dead = tmp_path / "dead.jsonl"
    assert main(["replay", str(write_log(tmp_path / "e.jsonl", lines)), "--out",
                 str(tmp_path / "out"), "--dead-letters", str(dead), "--quiet"]) == 0
    text = dead.read_text()
    assert [d["line"] for d in read_jsonl(dead)] == [8, 9]
    assert "1234" not in text and "Lane 9" not in text
    assert json.loads(read_jsonl(dead)[0]["raw"])["channel"] == "PIGEON"


def test_unknown_policy_and_missing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = write_log(tmp_path / "events.jsonl", LOG)
    assert main(["replay", str(events), "--policy", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown policy 'nope'" in capsys.readouterr().err
    assert main(["replay", str(tmp_path / "none.jsonl"), "--out", str(tmp_path)]) == 2
    assert "no such file" in capsys.readouterr().err


def test_console_script_runs_with_progress_on_stderr(tmp_path: Path) -> None:
    events = write_log(tmp_path / "events.jsonl", LOG)
    done = subprocess.run(
        [sys.executable, "-m", "lifecert.cli", "replay", str(events), "--until", "2017-12-31",
         "--out", str(tmp_path / "out")],
        capture_output=True, text=True, check=True,
    )
    assert done.stdout == ""
    assert "decided 7 of 7 lines (1 rejected, 1 verdicts, 0 dead-lettered" in done.stderr
    assert "replay" in done.stderr


def test_status_csv_quotes_ids_that_need_it(tmp_path: Path) -> None:
    from lifecert.replay import write_status_csv

    path = tmp_path / "status.csv"
    write_status_csv(path, [("R1", "CERTIFIED"), ('a,"b"', "EXEMPT")])
    assert path.read_text() == 'retiree_id,status\nR1,CERTIFIED\n"a,""b""",EXEMPT\n'
    with path.open(newline="") as fh:
        assert list(csv.reader(fh))[2] == ['a,"b"', "EXEMPT"]


def test_bench_replay_runs_and_reports_its_figures(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "lifecert.cli", "bench", "replay", "--retirees", "300",
         "--work-dir", str(tmp_path), "--json"],
        capture_output=True, text=True, check=True,
    )
    figures = json.loads(done.stdout)
    assert figures["retirees"] == 300
    assert figures["events"] > 600
    assert figures["raw_parse_events_per_s"]["cpu"] > 0
    assert figures["replay_events_per_s"]["wall"] > 0
    assert figures["peak_rss_mib"] > 10
    assert (tmp_path / "replay-out" / "status.csv").exists()


def _case_event(kind: str, case_id: str, **fields: object) -> str:
    base = {"type": kind, "event_id": f"{kind}-{case_id}-{len(fields)}",
            "recorded_at": "2017-05-02T09:00:00+08:00", "source_agency": "MACAU-SSF",
            "case_id": case_id, "partner": "MACAU-SSF"}
    return json.dumps({**base, **fields})


ASSIST = [
    _case_event("AssistanceRequested", "P1", retiree_id="MO-SSF-1", direction="INBOUND",
                requested_at="2017-05-02T09:00:00+08:00", due_on="2017-05-10"),
    _case_event("AssistanceRequested", "P2", retiree_id="MO-SSF-2", direction="INBOUND",
                requested_at="2017-05-02T09:00:00+08:00", due_on="2017-05-10"),
    _case_event("AssistanceRequested", "Q1", retiree_id="R1", direction="OUTBOUND",
                requested_at="2017-05-02T09:00:00+08:00", due_on="2017-06-30",
                source_agency="FS-SIB"),
    _case_event("AssistanceResult", "P1", retiree_id="MO-SSF-1", certification_id="FC-1",
                home_region="FOSHAN", method="COUNTER", agency_id="FS-01",
                performed_at="2017-05-05T10:00:00+08:00", direction="INBOUND",
                outcome="CERTIFIED_ALIVE", date_of_death=None, source_agency="FS-SIB"),
]


def test_replay_folds_the_assistance_log_into_assistance_csv(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = write_log(tmp_path / "events.jsonl", LOG)
    assist = write_log(tmp_path / "assist.jsonl", [*ASSIST, ASSIST[3]])  # a redelivery
    out = tmp_path / "out"
    assert main(["replay", str(events), "--until", "2017-05-31", "--out", str(out),
                 "--assistance", str(assist)]) == 0
    with (out / "assistance.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["case_id"], r["direction"], r["status"], r["overdue"]) for r in rows] == [
        ("P1", "INBOUND", "ANSWERED", "0"), ("P2", "INBOUND", "REQUESTED", "1"),
        ("Q1", "OUTBOUND", "REQUESTED", "0")]
    assert rows[0]["answered_at"] == "2017-05-05T10:00:00+08:00"
    assert "assistance cases: in 2, out 1, answered 1, overdue 1 (on 2017-05-31)" in \
        capsys.readouterr().err


def test_a_bad_assistance_line_stops_the_run_or_goes_to_dead_letters(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = write_log(tmp_path / "events.jsonl", LOG)
    bad = json.dumps({**json.loads(ASSIST[1]), "due_on": "2017-13-01"})
    assist = write_log(tmp_path / "assist.jsonl", [ASSIST[0], bad, LOG[0]])
    out = tmp_path / "out"
    args = ["replay", str(events), "--out", str(out), "--assistance", str(assist)]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "line 2, field 'due_on'" in err and "--dead-letters" in err
    dead = tmp_path / "dead.jsonl"
    assert main([*args, "--dead-letters", str(dead), "--quiet"]) == 0
    letters = read_jsonl(dead)
    assert [(d["line"], d["field"]) for d in letters] == [(2, "due_on"), (3, "type")]
    assert "RetireeEnrolled" in letters[1]["reason"]
    assert len((out / "assistance.csv").read_text().splitlines()) == 2  # header, P1


def test_a_missing_assistance_file_is_refused_before_the_replay(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = write_log(tmp_path / "events.jsonl", LOG)
    assert main(["replay", str(events), "--out", str(tmp_path / "out"),
                 "--assistance", str(tmp_path / "absent.jsonl")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
