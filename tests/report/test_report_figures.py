"""The report's figures from a hand-made campaign with known numbers (tests/report/campaign.py),
to the end and as of a day."""

from __future__ import annotations

from datetime import date

from lifecert.report.figures import (
    OTHER_SOURCES,
    UNKNOWN_SOURCE,
    AreaRow,
    DeathGroup,
    Figures,
    compute,
    count_deaths,
    rate,
)
from tests.report.campaign import DEADLINE, WINDOW_OPENS, figures


def test_the_whole_campaign() -> None:
    f = figures()
    assert (f.retirees, f.in_scope, f.certified) == (8, 6, 5)
    assert f.areas == [
        AreaRow("CHANCHENG", in_scope=4, certified=3, face=2, late=1),
        AreaRow("NANHAI", in_scope=1, certified=1, face=1, late=1),
        AreaRow("(HONG_KONG)", in_scope=1, certified=1, face=0, late=0),
    ]
    assert dict(f.channels) == {"FACE_APP": 2, "COUNTER": 1, "FACE_COUNTER": 1, "HK_AGENCY": 1}
    assert (f.face, f.manual, f.on_time, f.late) == (3, 2, 3, 2)
    assert f.by_day == [(date(2017, 5, 10), 2), (date(2017, 6, 1), 1), (date(2017, 6, 25), 1),
                        (date(2017, 7, 15), 1)]
    assert dict(f.holds_placed) == {"NOT_CERTIFIED": 3}
    assert (f.holds_released, f.backpay_fen, f.backpay_months) == (2, 1_050_050, 3)
    assert (f.terminated, f.overpayments, f.overpaid_fen) == (1, 1, 123_456)
    assert dict(f.fraud) == {"CERTIFIED_AFTER_DEATH": 1}
    assert f.home_visits == 2
    assert f.deceased == 1
    assert dict(f.deaths_by_source) == {"CIVIL_AFFAIRS": 1}


def test_as_of_10_july_leaves_out_what_came_later() -> None:
    f = figures(date(2017, 7, 10))
    assert (f.in_scope, f.certified, f.face, f.late) == (6, 4, 2, 1)
    nanhai = next(a for a in f.areas if a.area == "NANHAI")
    assert (nanhai.certified, nanhai.face, nanhai.late) == (0, 0, 0)
    assert "FACE_COUNTER" not in f.channels
    # the one certified on 15 July had not certified on 10 July
    assert f.statuses["CERTIFIED"] == 4 and f.statuses["NOT_CERTIFIED"] == 1
    assert (f.holds_released, f.backpay_fen) == (1, 350_000)
    assert f.home_visits == 2


def test_as_of_the_deadline_counts_what_its_end_decided() -> None:
    # The holds placed at 00:00 on 21 June are the deadline day's end: replay --until
    # 2017-06-20 decides them, and so the report as of that day counts them.
    f = figures(date(2017, 6, 20))
    assert (f.certified, f.late, f.on_time) == (3, 0, 3)
    assert dict(f.holds_placed) == {"NOT_CERTIFIED": 3}
    assert f.holds_released == 0 and f.home_visits == 0
    before = figures(date(2017, 6, 19))
    assert sum(before.holds_placed.values()) == 0
    assert before.terminated == 1 and before.fraud["CERTIFIED_AFTER_DEATH"] == 1


def test_before_the_campaign_nothing_is_counted_but_the_rolls() -> None:
    f = figures(date(2017, 3, 31))
    assert (f.retirees, f.in_scope, f.certified, f.backpay_fen) == (8, 6, 0, 0)
    assert f.by_day == []


def test_findings_say_the_rate_the_lowest_district_and_the_money() -> None:
    en = [x.en for x in figures(date(2017, 7, 10)).findings]
    assert en[0] == "Certification rate 66.7% (4 of 6 retirees who must certify)"
    assert en[1] == "Lowest rate: NANHAI at 0.0%"
    assert en[2] == "Face recognition: 50.0% of certifications; not yet the main way"
    assert "3 payments suspended, 1 released with 3,500.00 yuan back-pay" in en
    assert "1 deaths recorded and payments stopped; 1 overpayments to recover, 1,234.56 yuan" \
        in en
    assert en[-1] == "1 fraud alerts to investigate"
    zh = [x.zh for x in figures().findings]
    assert zh[0] == "认证率 83.3%（应认证 6 人，已认证 5 人）"
    assert "已成为主要认证方式" in zh[2]
    assert "补发 10,500.50 元" in zh[4]


def test_an_empty_campaign() -> None:
    f = compute("foshan-2017", WINDOW_OPENS, DEADLINE, [], [])
    assert isinstance(f, Figures) and f.certified == 0 and f.areas == []
    assert f.findings[0].en.startswith("Certification rate – (0 of 0")


def test_rate_rounds_half_up_with_integers() -> None:
    assert [rate(1, 3), rate(2, 3), rate(1, 8), rate(0, 5), rate(5, 5), rate(0, 0)] == [
        "33.3%", "66.7%", "12.5%", "0.0%", "100.0%", "–"]
    assert rate(1, 2000) == "0.1%"  # 0.05 % rounds up


def test_deaths_by_register_count_what_was_recorded_by_the_as_of_day() -> None:
    groups = [DeathGroup("CIVIL_AFFAIRS", date(2017, 5, 2), 3),
              DeathGroup("HUKOU_CANCELLATION", date(2017, 7, 11), 2),
              DeathGroup("CIVIL_AFFAIRS", date(2017, 7, 10)),
              DeathGroup("", None, 4)]  # statuses written before the source was kept
    assert count_deaths(groups, None) == {"CIVIL_AFFAIRS": 4, "HUKOU_CANCELLATION": 2,
                                          UNKNOWN_SOURCE: 4}
    assert count_deaths(groups, date(2017, 7, 10)) == {"CIVIL_AFFAIRS": 4, UNKNOWN_SOURCE: 4}
    assert figures(date(2017, 5, 1)).deaths_by_source == {}
    en = [x.en for x in figures().findings]
    assert "Most deaths were found through CIVIL_AFFAIRS: 1 of 1" in en


def test_a_partners_free_text_source_is_cut_and_the_rarest_folded() -> None:
    hostile = DeathGroup("X" * 500 + "\n<script>", date(2017, 5, 2))
    control = DeathGroup("A\x07B", date(2017, 5, 2))
    assert count_deaths([hostile, control], None) == {"X" * 40: 1, UNKNOWN_SOURCE: 1}
    many = [DeathGroup(f"REGISTER_{i:02}", date(2017, 5, 2), n=100 - i) for i in range(20)]
    counted = count_deaths(many, None)
    assert len(counted) == 12 and sum(counted.values()) == sum(g.n for g in many)
    assert counted["REGISTER_00"] == 100 and counted[OTHER_SOURCES] == sum(
        100 - i for i in range(11, 20))
