"""The campaign clock of sandboxes and drills (lifecert/pipeline/campaign_clock.py) and
`lifecert clock run --clock-file` refusing a bad file."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from lifecert.pipeline.campaign_clock import CampaignClock, ClockFileError, clock_of, wall_clock


def test_a_clock_set_to_a_day_shows_nine_in_the_morning_in_foshan_and_runs() -> None:
    clock = CampaignClock.starting(date(2017, 5, 2))
    assert clock.campaign_at.isoformat() == "2017-05-02T09:00:00+08:00"
    first = clock.now()
    assert timedelta(0) <= first - clock.campaign_at < timedelta(seconds=5)
    assert clock.now() >= first


def test_the_file_round_trips_and_is_re_read_at_every_call(tmp_path: Path) -> None:
    path = tmp_path / "clock.json"
    CampaignClock.starting(date(2017, 5, 2)).write(path)
    now = clock_of(path)
    assert now().date() == date(2017, 5, 2)
    CampaignClock.starting(date(2017, 6, 25)).write(path)  # `sandbox reset --date`
    assert now().date() == date(2017, 6, 25)


def test_without_a_file_the_wall_clock() -> None:
    assert clock_of(None) is wall_clock
    assert abs(wall_clock() - datetime.now(UTC)) < timedelta(seconds=5)


@pytest.mark.parametrize(("text", "says"), [
    ("not json", "not a clock file"),
    ('{"campaign_at": "2017-05-02T09:00:00"}', "not a clock file"),
    ('{"campaign_at": "2017-05-02T09:00:00", "wall_at": "2026-01-01T00:00:00"}',
     "need UTC offsets"),
])
def test_a_bad_file_is_refused_with_its_name(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "clock.json"
    path.write_text(text)
    with pytest.raises(ClockFileError) as caught:
        clock_of(path)
    assert str(path) in str(caught.value) and says in str(caught.value)


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ClockFileError, match="cannot read the clock file"):
        clock_of(tmp_path / "nowhere.json")


def test_clock_run_refuses_a_bad_clock_file_before_touching_the_broker(tmp_path: Path) -> None:
    bad = tmp_path / "clock.json"
    bad.write_text("{}")
    done = subprocess.run(
        [sys.executable, "-m", "lifecert.cli", "clock", "run", "--clock-file", str(bad),
         "--bootstrap", "127.0.0.1:1"],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert f"{bad}: not a clock file" in done.stderr
