"""The demo's table of doors and its count of records published directly
(lifecert_dev.partners.systems): what it says, and that the home-visits door has its one
place to plug in."""

from __future__ import annotations

from lifecert_dev.partners import systems
from lifecert_dev.partners.playback import DIRECT
from lifecert_dev.partners.systems import PlayStats, render_doors


def test_the_table_lists_each_door_and_counts_what_bypassed_them() -> None:
    stats = PlayStats(by_source={"mailroom": 480, DIRECT: 8_000, "pension-master": 13_000,
                                 "death-registers": 135},
                      assistance_results=100, ssf_requests=50, ssf_results=50)
    text = render_doors(stats).splitlines()
    assert text[0] == "Doors and the events each brought:"
    names = [line.split()[0] for line in text[1:-1]]
    assert names == ["pension-master", "mailroom", "death-registers", "macau-ssf", DIRECT,
                     DIRECT], "doors in the table's order, SSF's cases, then what is direct"
    assert text[2].split()[-1] == "480"
    assert text[-1] == "published directly: 8150"
    assert stats.published_directly == 8_000 + 100 + 50


def test_nothing_direct_prints_zero() -> None:
    stats = PlayStats(by_source={"mailroom": 3})
    assert render_doors(stats).splitlines()[-1] == "published directly: 0"


def test_every_campaign_door_is_started_and_home_visits_has_its_plug() -> None:
    for door in ("pension-master", "guangdong-xregion", "ministry-offsite", "hk-assist",
                 "macau-ssf", "mailroom", "employer-files", "death-registers"):
        assert door in systems.SOURCES and door in systems.DOORS
    assert "macau-ssf-results" in systems.SINKS and "guangdong-results" in systems.SINKS
    assert "home-visits" in systems.DOORS
    assert ("home-visits" in systems.SOURCES) == (systems.HOME_VISITS is not None)


def test_verdicts_compare_without_what_a_door_assigns_and_nothing_else() -> None:
    import json

    from lifecert_dev.live import comparable_verdict

    from_file = {"type": "EventRejected", "event_id": "a", "recorded_at":
                 "2017-04-14T16:11:17+08:00", "retiree_id": "FS1", "reason":
                 "CHANNEL_NOT_ALLOWED", "judged_event_id": "x", "reported_by": "UNIT-0001",
                 "certification_id": "B-1", "agency_id": "UNIT-0001",
                 "performed_at": "2017-04-07T16:27:30+08:00"}
    through_door = {**from_file, "event_id": "b", "judged_event_id": "y",
                    "reported_by": "EMPLOYER-UNITS", "performed_at": "2017-04-07T00:00:00+08:00"}
    assert comparable_verdict(json.dumps(from_file)) == comparable_verdict(
        json.dumps(through_door))
    stamped = {**through_door, "recorded_at": "2017-04-14T16:11:17.031204+08:00"}
    assert comparable_verdict(json.dumps(from_file)) == comparable_verdict(json.dumps(stamped))
    for field, other in (("reason", "LATE"), ("certification_id", "B-2"),
                         ("performed_at", "2017-04-08T00:00:00+08:00"),
                         ("recorded_at", "2017-04-14T16:11:18+08:00")):
        assert comparable_verdict(json.dumps(from_file)) != comparable_verdict(
            json.dumps({**through_door, field: other})), field
