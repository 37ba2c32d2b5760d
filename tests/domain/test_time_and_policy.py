"""Calendar arithmetic and policies as data."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from lifecert.domain.policy import DEADLINE, HOME_VISIT_SWEEP, PolicyError, load_policy
from lifecert.events.time import (
    age_on,
    end_of_day,
    format_month,
    local_date,
    month_of,
    parse_month,
)


def test_local_dates_are_judged_in_shanghai() -> None:
    assert local_date(datetime(2017, 3, 31, 16, 20, tzinfo=UTC)) == date(2017, 4, 1)
    assert local_date(datetime(2017, 3, 31, 15, 59, tzinfo=UTC)) == date(2017, 3, 31)
    assert format_month(month_of(datetime(2017, 7, 31, 16, 0, 30, tzinfo=UTC))) == (
        "2017-08"
    )


def test_months() -> None:
    assert format_month(parse_month("2017-12") + 1) == "2018-01"
    assert parse_month("2017-07") - parse_month("2016-07") == 12
    with pytest.raises(ValueError):
        parse_month("2017-13")


def test_end_of_day_is_next_local_midnight() -> None:
    assert end_of_day(date(2017, 6, 20)).isoformat() == "2017-06-21T00:00:00+08:00"


@pytest.mark.parametrize(
    ("born", "on", "age"),
    [
        (date(1937, 6, 20), date(2017, 6, 20), 80),
        (date(1937, 6, 21), date(2017, 6, 20), 79),
        (date(1936, 2, 29), date(2016, 2, 28), 79),
        (date(1936, 2, 29), date(2016, 2, 29), 80),
        (date(1936, 2, 29), date(2017, 2, 28), 81),
    ],
)
def test_age_on(born: date, on: date, age: int) -> None:
    assert age_on(born, on) == age


def test_foshan_2017_policy() -> None:
    policy = load_policy("foshan-2017")
    assert policy.deadline == date(2017, 6, 20)
    assert [m.kind for m in policy.moments] == [HOME_VISIT_SWEEP, DEADLINE]
    assert policy.deadline_moment == end_of_day(date(2017, 6, 20))
    assert format_month(policy.hold_effective_month) == "2017-07"
    assert policy.document_channels == {"ASSISTED_OFFICE", "ASSISTING_AGENCY", "CONSULATE",
                                        "HK_AGENCY"}
    assert [m.kind for m in replace(policy, home_visits=False).moments] == [DEADLINE]


def test_a_new_year_is_a_new_file(tmp_path: Path) -> None:
    text = (Path(__file__).parents[2] / "lifecert/policies/foshan-2017.toml").read_text()
    draft = tmp_path / "foshan-2018.toml"
    draft.write_text(
        text.replace('"foshan-2017"', '"foshan-2018"').replace("2017-", "2018-")
        .replace("cycle = 2017", "cycle = 2018")
    )
    policy = load_policy(str(draft))
    assert policy.name == "foshan-2018"
    assert policy.deadline == date(2018, 6, 20)


@pytest.mark.parametrize(
    ("old", "new", "words"),
    [
        ('deadline = 2017-06-20', 'deadline = "June 20"', "'calendar.deadline' must be a date"),
        ('"EMPLOYER_BATCH"]', '"EMPLOYER"]', "not one of FACE_APP"),
        ('deadline_moment = 2017-06-21T00:00:00+08:00', 'deadline_moment = 2017-06-21T00:00:00',
         "needs a UTC offset"),
        ('hold_effective_month = "2017-07"', 'hold_effective_month = "2017-7"', "YYYY-MM"),
        ('fraud_checks = true\n', '', "missing key 'switches.fraud_checks'"),
    ],
)
def test_bad_policy_files_say_where(tmp_path: Path, old: str, new: str, words: str) -> None:
    text = (Path(__file__).parents[2] / "lifecert/policies/foshan-2017.toml").read_text()
    assert old in text
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace(old, new))
    with pytest.raises(PolicyError) as caught:
        load_policy(str(bad))
    assert str(bad) in str(caught.value)
    assert words in str(caught.value)


def test_unknown_policy_lists_the_known_ones() -> None:
    with pytest.raises(PolicyError, match="known policies are foshan-2017"):
        load_policy("foshan-2071")


# Issue 14: a district may lower the home-visit age (rule 9); the city's limit stays the
# default.
def _with_district_ages(tmp_path: Path, table: str) -> Path:
    text = (Path(__file__).parents[2] / "lifecert/policies/foshan-2017.toml").read_text()
    draft = tmp_path / "foshan-2017-districts.toml"
    draft.write_text(text.replace("[working_days]",
                                  f"[rules.home_visit_min_age_by_district]\n{table}\n\n"
                                  f"[working_days]", 1))
    return draft


def test_home_visit_age_per_district_keeps_the_city_default(tmp_path: Path) -> None:
    policy = load_policy(str(_with_district_ages(tmp_path, "SHUNDE = 75\nNANHAI = 78")))
    assert policy.home_visit_age("SHUNDE") == 75
    assert policy.home_visit_age("NANHAI") == 78
    assert policy.home_visit_age("CHANCHENG") == 80
    assert policy.home_visit_age(None) == 80
    shipped = load_policy("foshan-2017")
    assert shipped.home_visit_min_age_by_district == ()
    assert shipped.home_visit_age("SHUNDE") == 80


@pytest.mark.parametrize(
    ("table", "words"),
    [
        ("SHUNDE = 85", "may lower the limit, not raise it"),
        ("SHUNDE = 59", "an age from 60"),
        ('SHUNDE = "75"', "an age from 60"),
        ("SHUNDE = true", "an age from 60"),
        ("LUOCUN = 75", "'LUOCUN', not one of CHANCHENG"),
    ],
)
def test_bad_district_ages_are_refused(tmp_path: Path, table: str, words: str) -> None:
    draft = _with_district_ages(tmp_path, table)
    with pytest.raises(PolicyError) as caught:
        load_policy(str(draft))
    assert str(draft) in str(caught.value)
    assert "rules.home_visit_min_age_by_district" in str(caught.value)
    assert words in str(caught.value)


def test_replay_with_a_district_that_lowered_the_age(tmp_path: Path) -> None:
    """The replay example: Shunde visits from 75, Chancheng keeps 80."""
    from lifecert import replay
    from tests.helpers import enroll

    draft = _with_district_ages(tmp_path, "SHUNDE = 75")
    lines = [
        enroll("R1", birth_date="1941-06-20", district="SHUNDE"),  # 76 on the deadline
        enroll("R2", birth_date="1941-06-20", district="CHANCHENG"),  # 76: not visited
        enroll("R3", birth_date="1942-06-21", district="SHUNDE"),  # 74: not visited
        enroll("R4", birth_date="1937-06-20", district="CHANCHENG"),  # 80: visited
    ]
    for policy_name, visited in ((str(draft), ["R1", "R4"]), ("foshan-2017", ["R4"])):
        result = replay.replay_lines(lines, policy_name=policy_name, until=date(2017, 6, 10))
        got = sorted(i["retiree_id"] for i in result.instructions if i["type"] == "HomeVisitDue")
        assert got == visited, policy_name
