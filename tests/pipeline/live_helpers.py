"""Helpers of the end-to-end tests of the live pipeline: a generated campaign, and the
comparison of what PostgreSQL holds with an offline replay of the same file."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

from lifecert.domain.policy import load_policy
from lifecert.replay import replay_file
from lifecert_dev import live
from lifecert_dev.generate import CampaignProfile, write_campaign_file
from projections.connection import connect
from projections.queries import export

POLICY = load_policy("foshan-2017")
UNTIL = date(2017, 12, 31)


# Rules 11-14 made common (revocations, clashing certification ids, retracted deaths).
WITH_CORRECTIONS = CampaignProfile(revocation_rate=0.06, clash_rate=0.04,
                                   wrong_death_rate=0.05)


def campaign(tmp_path: Path, retirees: int, seed: int,
             profile: CampaignProfile | None = None) -> Path:
    events = tmp_path / "events.jsonl"
    write_campaign_file(events, retirees, seed, profile)
    return events


def sorted_lines(folder: Path) -> dict[str, list[str]]:
    return {
        name: sorted((folder / name).read_text(encoding="utf-8").splitlines())
        for name in ("instructions.jsonl", "verdicts.jsonl", "status.csv")
    }


def assert_live_equals_replay(run: live.LiveRun, events: Path, *,
                              through_doors: bool = False, absorbed: list[str] | None = None,
                              expect_verdicts: bool = True) -> None:
    """``through_doors``: the campaign came through the partners' doors, whose connectors
    assign the event ids (verdicts compared by ``live.comparable_verdict``); ``absorbed``:
    resent certifications the API recorded once (``live.comparable_lines``);
    ``expect_verdicts``: False for a campaign the rules reject nothing of."""
    replay_file(events, POLICY, run.work_dir / "replay", until=UNTIL)
    conn = connect(run.dsn)
    try:
        export(conn, run.work_dir / "live", POLICY.name)
    finally:
        conn.close()
    expected = live.comparable_lines(run.work_dir / "replay", through_doors=through_doors,
                                     absorbed=absorbed or ())
    got = live.comparable_lines(run.work_dir / "live", through_doors=through_doors)
    # The rules' verdicts (EventRejected) are compared too: a campaign without any would
    # let live and replay agree on nothing.
    if expect_verdicts:
        assert expected["verdicts.jsonl"], "the campaign gave no verdict to compare"
    else:
        assert not expected["verdicts.jsonl"], "the campaign gave verdicts: compare them"
    for name in expected:
        missing = sorted(set(expected[name]) - set(got[name]))[:3]
        extra = sorted(set(got[name]) - set(expected[name]))[:3]
        assert got[name] == expected[name], f"{name}: missing {missing}, extra {extra}"


def assert_dump_replays_as_live(run: live.LiveRun) -> None:
    """``lifecert log dump`` of the run's events topic, replayed, gives what the live
    pipeline gave (its export by :func:`assert_live_equals_replay`, called first)."""
    dump = run.work_dir / "dump" / "events.jsonl"
    done = subprocess.run(
        [sys.executable, "-m", "lifecert.cli", "log", "dump", "--bootstrap", run.bootstrap,
         "--prefix", run.prefix, "--out", str(dump)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "left out (clock ticks" in done.stderr, done.stderr
    replay_file(dump, POLICY, run.work_dir / "dump" / "replay", until=UNTIL)
    expected = sorted_lines(run.work_dir / "dump" / "replay")
    got = sorted_lines(run.work_dir / "live")
    assert expected["verdicts.jsonl"]
    for name in expected:
        missing = sorted(set(expected[name]) - set(got[name]))[:3]
        extra = sorted(set(got[name]) - set(expected[name]))[:3]
        assert got[name] == expected[name], f"dump: {name}: missing {missing}, extra {extra}"
