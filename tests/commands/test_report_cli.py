"""``lifecert report`` offline, from what ``lifecert replay --out`` wrote: the figures agree
with the campaign summary's counts of the same decisions, and bad input is refused with
the file, line and field."""

from __future__ import annotations

import csv
import re
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from lifecert.cli import main
from lifecert.domain.policy import load_policy
from lifecert.replay import replay_file
from lifecert.report.figures import compute
from lifecert.report.sources import replay_deaths, replay_instructions, replay_retirees
from lifecert.summary import CampaignCounters, InstructionTotals
from lifecert_dev.generate import write_campaign_file
from tests.helpers import cert, death, docs, enroll, retract

LOG = [
    enroll("R1", birth_date="1937-06-20"),
    enroll("R2", residence="ABROAD", district=None, country="US"),
    enroll("R3"),
    enroll("R4", district="NANHAI"),
    cert("C2", "R2", "CONSULATE", performed_at="2017-05-01T10:00:00-07:00",
         recorded_at="2017-05-05T10:00:00+08:00"),
    cert("C4", "R4", "FACE_APP", performed_at="2017-05-02T10:00:00+08:00",
         recorded_at="2017-05-02T10:01:00+08:00"),
    docs("C2", "R2", recorded_at="2017-07-31T16:00:30Z"),
    death("R1", date_of_death="2017-05-10", recorded_at="2017-10-05T10:00:00+08:00"),
    # R5's first death report is retracted: the family's later one stands
    enroll("R5"),
    death("R5", date_of_death="2017-03-01", recorded_at="2017-03-05T10:00:00+08:00",
          source="HUKOU_CANCELLATION"),
    retract("R5", recorded_at="2017-04-10T10:00:00+08:00"),
    death("R5", date_of_death="2017-08-01", recorded_at="2017-08-03T10:00:00+08:00",
          source="FAMILY_REPORT"),
    # an impossible death (after its own recording) is rejected: R3 stays alive
    death("R3", date_of_death="2017-09-01", recorded_at="2017-08-20T10:00:00+08:00",
          source="CREMATION_RECORD"),
]


def replay(tmp_path: Path, lines: list[str], until: str = "2017-12-31") -> Path:
    events = tmp_path / "events.jsonl"
    events.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    out = tmp_path / "replay"
    assert main(["replay", str(events), "--until", until, "--out", str(out), "--quiet"]) == 0
    return out


def test_replay_writes_what_the_report_counts(tmp_path: Path) -> None:
    out = replay(tmp_path, LOG)
    with (out / "retirees.csv").open(newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows == [
        ["retiree_id", "status", "district", "residence", "channel", "completed_day"],
        ["R1", "DECEASED", "CHANCHENG", "FOSHAN", "", ""],
        # completed when its documents arrived: 00:00:30 on 1 August in Shanghai
        ["R2", "CERTIFIED", "", "ABROAD", "CONSULATE", "2017-08-01"],
        ["R3", "SUSPENDED", "CHANCHENG", "FOSHAN", "", ""],
        ["R4", "CERTIFIED", "NANHAI", "FOSHAN", "FACE_APP", "2017-05-02"],
        ["R5", "DECEASED", "CHANCHENG", "FOSHAN", "", ""],
    ]
    with (out / "deaths.csv").open(newline="") as fh:
        assert list(csv.reader(fh)) == [
            ["retiree_id", "source", "recorded_day"],
            ["R1", "CIVIL_AFFAIRS", "2017-10-05"],
            ["R5", "FAMILY_REPORT", "2017-08-03"],
        ]


def test_the_report_splits_the_deaths_by_register(tmp_path: Path) -> None:
    out = replay(tmp_path, LOG)
    deaths = replay_deaths(out)
    policy = load_policy("foshan-2017")
    rows = replay_retirees(out), replay_instructions(out)
    f = compute(policy.name, policy.window_opens, policy.deadline, *rows, None, deaths)
    assert dict(f.deaths_by_source) == {"CIVIL_AFFAIRS": 1, "FAMILY_REPORT": 1}
    assert f.deceased == sum(f.deaths_by_source.values())
    september = compute(policy.name, policy.window_opens, policy.deadline, *rows,
                        date(2017, 9, 30), deaths)
    assert dict(september.deaths_by_source) == {"FAMILY_REPORT": 1}
    report = tmp_path / "report"
    assert main(["report", "--replay", str(out), "--out", str(report)]) == 0
    html = (report / "report.html").read_text(encoding="utf-8")
    assert "Deaths found through the registers" in html
    assert "<td>民政殡葬 Civil affairs</td><td class=\"n\">1</td><td class=\"n\">50.0%</td>" \
        in html
    assert "家属报告 Family report" in html and "Hukou" not in html


def test_the_report_from_a_replay_output(tmp_path: Path) -> None:
    out = replay(tmp_path, LOG)
    report = tmp_path / "report"
    assert main(["report", "--replay", str(out), "--out", str(report)]) == 0
    html = (report / "report.html").read_text(encoding="utf-8")
    assert "认证率 66.7%（应认证 3 人，已认证 2 人）" in html
    assert "1 certified late (after the 2017-06-20 deadline)" in html
    assert (report / "report.pdf").read_bytes().startswith(b"%PDF-")
    july = tmp_path / "july"
    assert main(["report", "--replay", str(out), "--out", str(july), "--as-of", "2017-07-10",
                 "--no-pdf"]) == 0
    html = (july / "report.html").read_text(encoding="utf-8")
    assert "认证率 33.3%（应认证 3 人，已认证 1 人）" in html
    assert "截至 As of: 2017-07-10" in html
    assert not (july / "report.pdf").exists()


def test_a_generated_campaign_agrees_with_the_summary(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    write_campaign_file(events, 600, seed=11)
    policy = load_policy("foshan-2017")
    totals = InstructionTotals()
    campaign, _ = replay_file(events, policy, tmp_path / "replay", on_instruction=totals)
    counters = CampaignCounters.from_states(policy.name, campaign.retirees.values(), totals)
    f = compute(policy.name, policy.window_opens, policy.deadline,
                replay_retirees(tmp_path / "replay"), replay_instructions(tmp_path / "replay"),
                None, replay_deaths(tmp_path / "replay"))
    # every deceased retiree's standing death has its source
    assert sum(f.deaths_by_source.values()) == f.deceased > 0
    assert f.retirees == counters.retirees == len(campaign.retirees)
    assert {a.area: a.in_scope for a in f.areas} == dict(counters.in_scope)
    assert {a.area: a.certified for a in f.areas} == {
        k: counters.certified[k] for k in counters.in_scope}
    # the summary's channels count every completion; the report's those of the retirees
    # who must certify (the deceased and exempt left out), so that they add up to the rate
    assert sum(f.channels.values()) == f.certified
    assert all(n <= counters.channels[c] for c, n in f.channels.items())
    assert f.backpay_fen == totals.backpay_fen and f.overpaid_fen == totals.overpaid_fen
    assert f.holds_released == totals.counts["PaymentHoldReleased"]
    assert sum(f.holds_placed.values()) == totals.counts["PaymentHoldPlaced"]
    assert f.terminated == totals.counts["PaymentTerminated"]
    assert sum(f.fraud.values()) == totals.counts["FraudSuspected"]
    assert f.certified > 0 and f.late > 0 and f.face > 0
    report = tmp_path / "report"
    assert main(["report", "--replay", str(tmp_path / "replay"), "--out", str(report)]) == 0
    assert (report / "report.pdf").stat().st_size > 5_000


# ------------------------------------------------------------------ refusals


def run(*argv: str) -> tuple[int, str]:
    done = subprocess.run([sys.executable, "-m", "lifecert.cli", *argv], capture_output=True,
                          text=True, timeout=120, check=False)
    return done.returncode, done.stderr


def test_a_replay_output_without_retirees_csv_says_to_replay_again(tmp_path: Path) -> None:
    out = replay(tmp_path, LOG)
    (out / "retirees.csv").unlink()
    code, err = run("report", "--replay", str(out), "--out", str(tmp_path / "r"))
    assert code == 1 and "retirees.csv: not found" in err and "run `lifecert replay" in err


def test_a_replay_output_without_deaths_csv_says_to_replay_again(tmp_path: Path) -> None:
    out = replay(tmp_path, LOG)
    (out / "deaths.csv").unlink()
    code, err = run("report", "--replay", str(out), "--out", str(tmp_path / "r"))
    assert code == 1 and "deaths.csv: not found" in err and "run `lifecert replay" in err


def test_a_folder_that_is_not_there(tmp_path: Path) -> None:
    code, err = run("report", "--replay", str(tmp_path / "nothing"), "--out", str(tmp_path))
    assert code == 2 and "no such folder" in err


@pytest.mark.parametrize(("file", "line", "text", "expected"), [
    ("retirees.csv", 0, "id,status\n", r"retirees.csv:1: the header must be"),
    ("retirees.csv", 2, "R9,CERTIFIED,NANHAI,FOSHAN,FACE_APP,2017-13-01\n",
     r"retirees.csv:3: field 'completed_day': '2017-13-01' is not a date"),
    ("retirees.csv", 2, "R9,CERTIFIED,NANHAI\n", r"retirees.csv:3: 3 fields, expected 6"),
    ("retirees.csv", 2, "R9,,NANHAI,FOSHAN,,\n", r"retirees.csv:3: field 'status' is empty"),
    ("deaths.csv", 0, "id,source\n", r"deaths.csv:1: the header must be"),
    ("deaths.csv", 1, "R9,CIVIL_AFFAIRS\n", r"deaths.csv:2: 2 fields, expected 3"),
    ("deaths.csv", 1, "R9,CIVIL_AFFAIRS,2017-02-30\n",
     r"deaths.csv:2: field 'recorded_day': '2017-02-30' is not a date"),
    ("instructions.jsonl", 1, "{not json\n", r"instructions.jsonl:2: not JSON"),
    ("instructions.jsonl", 1, '{"type":"PaymentHoldPlaced","recorded_at":"2017-06-21T00:00:00"}\n',
     r"instructions.jsonl:2: field 'recorded_at' must be a time with its offset"),
    ("instructions.jsonl", 1, '{"type":"OverpaymentDetected","recorded_at":'
     '"2017-06-21T00:00:00+08:00","amount_fen":12.5,"months":[]}\n',
     r"instructions.jsonl:2: the amount must be whole fen"),
    ("instructions.jsonl", 1, "[1]\n", r"instructions.jsonl:2: not a JSON object"),
])
def test_bad_rows_are_refused_with_file_line_and_field(
    tmp_path: Path, file: str, line: int, text: str, expected: str,
) -> None:
    out = replay(tmp_path, LOG)
    path = out / file
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    if line == 0:
        lines[0] = text
    else:
        lines.insert(line, text)
    path.write_text("".join(lines), encoding="utf-8")
    code, err = run("report", "--replay", str(out), "--out", str(tmp_path / "r"))
    assert code == 1 and re.search(expected, err), err
    assert "Traceback" not in err


def test_a_font_that_cannot_be_embedded(tmp_path: Path) -> None:
    out = replay(tmp_path, LOG)
    bad = tmp_path / "font.ttf"
    bad.write_bytes(b"not a font")
    code, err = run("report", "--replay", str(out), "--out", str(tmp_path / "r"), "--font",
                    str(bad))
    assert code == 2 and "cannot embed this font" in err and "report.html written" in err


def test_without_reportlab_the_html_is_written_and_the_extra_named(tmp_path: Path) -> None:
    out = replay(tmp_path, LOG)
    code = ("import sys; sys.modules['reportlab'] = None\n"
            "from lifecert.cli import main\n"
            f"sys.exit(main(['report', '--replay', {str(out)!r}, '--out', "
            f"{str(tmp_path / 'r')!r}]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 1, done.stderr
    assert "'report' extra: pip install 'lifecert[report]'" in done.stderr
    assert (tmp_path / "r" / "report.html").is_file()


def test_as_of_must_be_a_date(tmp_path: Path) -> None:
    code, err = run("report", "--replay", str(tmp_path), "--out", str(tmp_path),
                    "--as-of", "10 July")
    assert code == 2 and "expected a date as YYYY-MM-DD" in err
    assert date(2017, 7, 10)  # the form the bureau writes: 2017-07-10


def test_retirees_csv_quotes_what_csv_must_and_reads_back(tmp_path: Path) -> None:
    from lifecert.domain.state import RetireeState
    from lifecert.replay import write_retirees_csv

    odd = RetireeState("R,1", True, False, False, 2000 * 12, 100, 'RES"X', "D\nY")
    plain = RetireeState("R2", True, False, False, 2000 * 12, 100, "FOSHAN", "NANHAI")
    write_retirees_csv(tmp_path / "retirees.csv", [odd, plain])
    text = (tmp_path / "retirees.csv").read_text(encoding="utf-8")
    assert text.startswith('retiree_id,status,district,residence,channel,completed_day\n"R,1",')
    with (tmp_path / "retirees.csv").open(newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[1][0] == "R,1" and rows[1][2:4] == ["D\nY", 'RES"X']
    assert rows[2][0] == "R2" and rows[2][2:] == ["NANHAI", "FOSHAN", "", ""]
    groups = replay_retirees(tmp_path)
    assert sorted((g.district, g.residence) for g in groups) == [
        ("D\nY", 'RES"X'), ("NANHAI", "FOSHAN")]
