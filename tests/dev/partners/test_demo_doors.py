"""The demo's table of doors and its count of records published directly
(lifecert_dev.partners.systems): what it says, and that the home-visits door has its one
place to plug in."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest

from lifecert.events.time import SHANGHAI
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


def test_the_home_visit_teams_write_the_campaigns_certifications_as_their_files(
        tmp_path: Path) -> None:
    """Each HOME_VISIT certification becomes a row ALIVE of its team's file, which the
    connector's own reader takes: the visit's day in Shanghai, the file's time the
    certification's recorded_at; the roster has the retiree in the team's district."""
    from connectors.home_visits.batch import check_row, read_batch
    from lifecert_dev.partners.home_visits.teams import HomeVisitTeams

    assert systems.HOME_VISITS is HomeVisitTeams
    teams = HomeVisitTeams()
    settings = teams.start(tmp_path)
    assert settings["teams"]["FS-NANHAI-HOMEVISIT"] == "NANHAI"

    def cert(n: int, team: str, recorded: str, performed: str) -> dict[str, str]:
        return {"type": "CertificationRecorded", "event_id": f"e{n}", "recorded_at": recorded,
                "certification_id": f"HV-17-{n:08d}", "retiree_id": f"FS00000000{n}",
                "channel": "HOME_VISIT", "agency_id": team, "performed_at": performed}

    teams.feed([cert(1, "FS-NANHAI-HOMEVISIT", "2017-03-17T20:59:27Z", "2017-03-16T17:21:03Z"),
                cert(2, "FS-NANHAI-HOMEVISIT", "2017-03-17T20:59:27Z", "2017-03-17T01:00:00Z"),
                cert(3, "FS-SHUNDE-HOMEVISIT", "2017-03-18T09:00:00+08:00",
                     "2017-03-18T08:00:00+08:00")])
    files = sorted(teams.drop_root.glob("*/*.csv"))
    assert [f.parent.name for f in files] == ["FS-NANHAI-HOMEVISIT", "FS-SHUNDE-HOMEVISIT"]
    arrived = datetime.fromtimestamp(files[0].stat().st_mtime, SHANGHAI)
    assert arrived == datetime(2017, 3, 18, 4, 59, 27, tzinfo=SHANGHAI)
    reports = [check_row(row, arrived.date(), {}) for row in read_batch(files[0].read_bytes())]
    assert [(r.visit_id, r.visited_on, r.outcome) for r in reports] == [
        ("HV-17-00000001", date(2017, 3, 17), "ALIVE"),  # 17:21 UTC is the 17th's 01:21
        ("HV-17-00000002", date(2017, 3, 17), "ALIVE")]
    assert teams.roster.read_text(encoding="utf-8").splitlines() == [
        "retiree_id,district", "FS000000001,NANHAI", "FS000000002,NANHAI",
        "FS000000003,SHUNDE"]
    assert teams.absorbed == []
    resent = cert(3, "FS-SHUNDE-HOMEVISIT", "2017-03-19T09:00:00+08:00",
                  "2017-03-18T08:00:00+08:00")
    teams.feed([{**resent, "event_id": "e3-again"}])  # the same row: the same file's content
    assert teams.absorbed == ["e3-again"], "the connector publishes nothing for it"
    with pytest.raises(ValueError, match="none of the demo's teams"):
        teams.feed([cert(4, "FS-NOWHERE-HOMEVISIT", "2017-03-18T09:00:00+08:00",
                         "2017-03-18T08:00:00+08:00")])


def test_other_provinces_offices_call_the_api_and_guangdongs_stay_on_the_feed() -> None:
    from lifecert_dev.partners.counters import API_DOORS

    roles = {name: door.role for name, door in API_DOORS.items()}
    assert roles == {"counters": "COUNTER", "assisted-offices": "ASSISTED_OFFICE",
                     "assisting-agencies": "ASSISTING_AGENCY", "staff": "STAFF",
                     "family-deaths": "STAFF"}
    assert all(name in systems.DOORS for name in API_DOORS)
    partners = systems.Partners("localhost:1", None, Path("."))  # type: ignore[arg-type]
    partners.harnesses = {name: make() for name, make in systems.SOURCES.items()}  # unstarted
    partners.api_doors = {name: systems.ApiDoor(None, door)  # type: ignore[arg-type]
                          for name, door in API_DOORS.items()}
    source_of = partners.source_of()

    def cert(channel: str, agency: str) -> dict[str, str]:
        return {"type": "CertificationRecorded", "retiree_id": "FS1", "channel": channel,
                "agency_id": agency}

    assert source_of(cert("ASSISTED_OFFICE", "GD-GUANGZHOU-SIB")) == "guangdong-xregion"
    assert source_of(cert("ASSISTED_OFFICE", "GX-WUZHOU-SIB")) == "assisted-offices"
    assert source_of(cert("ASSISTING_AGENCY", "BJ-POLICE-001")) == "assisting-agencies"
    assert source_of(cert("ASSISTING_AGENCY", "GD-SHENZHEN-COMMUNITY-1")) == "guangdong-xregion"
    assert source_of({"type": "CertificationRevoked", "retiree_id": "FS1"}) == "staff"
    assert source_of({"type": "DeathReportRetracted", "retiree_id": "FS1"}) == "staff"
    assert source_of(cert("FACE_APP", "FS-SIB-FACEAPP")) == DIRECT, "no face doors here"
    assert source_of(cert("HK_AGENCY", "HK-FTU")) == "hk-assist"
    assert source_of(cert("HK_AGENCY", "HK-GDLO-B")) == "hk-assist-gdlo-b", \
        "each Hong Kong body (the clashing ids' too) through its own inbox"
    death = {"type": "DeathRecorded", "retiree_id": "FS1", "date_of_death": "2017-05-01"}
    assert source_of({**death, "source": "FAMILY_REPORT"}) == "family-deaths"
    assert source_of({**death, "source": "CONSULATE_REPORT"}) == "family-deaths"
    assert source_of({**death, "source": "HOSPITAL_REPORT"}) == "death-registers"


def test_a_family_death_becomes_a_staff_death_report_naming_its_source() -> None:
    from lifecert_dev.partners.counters import API_DOORS, STAFF_AGENCY

    door = API_DOORS["family-deaths"]
    assert (door.role, door.agency) == ("STAFF", STAFF_AGENCY)
    item = door.item({"type": "DeathRecorded", "retiree_id": "FS7", "source": "FAMILY_REPORT",
                      "date_of_death": date(2017, 5, 1), "agency_id": "FS-CIVIL-AFFAIRS"})
    assert (item.death.retiree_id, item.death.date_of_death, item.death.source) == \
        ("FS7", "2017-05-01", "FAMILY_REPORT")


def test_ssfs_answers_through_the_counters_api_are_a_door_not_direct() -> None:
    stats = PlayStats(by_source={"mailroom": 3}, ssf_requests=50, ssf_answered=50,
                      assistance_results=7)
    text = render_doors(stats).splitlines()
    [row] = [line for line in text if line.split()[0] == "ssf-answers"]
    assert row.split()[-1] == "50" and "form 3" in row
    assert text[-1] == "published directly: 7"
    assert stats.ssf_answers == 50


def test_guangdongs_cases_and_their_answers_through_the_api_are_doors_not_direct() -> None:
    stats = PlayStats(by_source={"mailroom": 3}, gd_cases=9, gd_answered=9)
    text = render_doors(stats).splitlines()
    [answers] = [line for line in text if line.split()[0] == "gd-answers"]
    assert answers.split()[-1] == "9" and "to Guangdong, API (COUNTER)" in answers
    [cases] = [line for line in text if "cases to certify in Foshan" in line]
    assert cases.split()[0] == "guangdong-xregion" and cases.split()[-1] == "9"
    assert text[-1] == "published directly: 0"
    assert stats.gd_answers == 9 and "9 assistance results for the province" in \
        stats.describe()


def test_foshans_requests_and_the_provinces_answers_are_rows_of_their_own() -> None:
    stats = PlayStats(by_source={"mailroom": 3}, asked={"GD-XREGION": 10, "MACAU-SSF": 2},
                      out_answered={"GD-XREGION": 10, "MACAU-SSF": 2})
    text = render_doors(stats).splitlines()
    asked = [line.split() for line in text if line.split()[0] == "assistance-request"]
    assert [(row[4], row[-1]) for row in asked] == [("GD-XREGION", "10"), ("MACAU-SSF", "2")]
    answers = [line.split() for line in text if "answers to Foshan's cases" in line]
    assert [(row[0], row[-1]) for row in answers] == [("guangdong-xregion", "10"),
                                                       ("macau-ssf", "2")]
    assert all(len(line) <= 80 for line in text), "the door labels fit their column"
    assert text[-1] == "published directly: 0"


def test_a_guangdong_case_answer_becomes_the_same_item_naming_its_partner() -> None:
    from lifecert_dev.partners.counters import form3_result
    from lifecert_dev.partners.systems import assistance_results, guangdong_cases

    enrolled = [{"type": "RetireeEnrolled"}] * 200
    results = assistance_results(enrolled, 5)
    assert len(results) == 2
    items = [form3_result(e).form3_result for e in results]
    assert [(i.partner, i.case_id, i.beneficiary_id) for i in items] == \
        [("GD-XREGION", e["case_id"], e["retiree_id"]) for e in results]
    cases = guangdong_cases(results)
    assert [c["caseNo"] for c in cases] == [e["case_id"] for e in results]
    assert all(c["registerTime"] < str(e["performed_at"]).replace("T", " ")
               for c, e in zip(cases, results, strict=True)), "registered before answered"


def test_a_form3_answer_becomes_the_apis_form3_item() -> None:
    from lifecert.api.protos import partner_exchange_pb2 as px
    from lifecert_dev.partners.counters import form3_result
    from lifecert_dev.partners.macau_ssf.harness import result_event

    answers = [result_event(4, n, outcome) for n, outcome in
               enumerate(("CERTIFIED_ALIVE", "NOT_FOUND", "DECEASED"))]
    items = [form3_result(e).form3_result for e in answers]
    assert [(i.case_id, i.beneficiary_id, i.certification_id) for i in items] == \
        [(e["case_id"], e["retiree_id"], e["certification_id"]) for e in answers]
    assert [px.Form3Result.Outcome.Name(i.outcome) for i in items] == \
        ["CERTIFIED_ALIVE", "NOT_FOUND", "DECEASED"]
    assert [px.Form3Result.Method.Name(i.method) for i in items] == \
        ["COUNTER", "HOME_VISIT", "COUNTER"]
    assert [i.date_of_death for i in items] == ["", "", str(answers[2]["date_of_death"])]
    assert items[0].performed_at.ToDatetime(tzinfo=answers[0]["performed_at"].tzinfo) == \
        answers[0]["performed_at"]


def test_a_consulate_certification_becomes_a_case_of_a_listed_mission(tmp_path: Path) -> None:
    """The consulates' door: the campaign's CONSULATE certification is the consular
    system's case (its number the certification id, the mailed form 2 matches it), from a
    mission of the demo's partner directory as the connector checks it; a mission outside
    the campaign's is refused before anything is pushed."""
    from connectors.consular_app import missions as directory
    from connectors.consular_app import protocol
    from lifecert_dev.partners.consulates import consular_case, missions_toml

    cert = {"type": "CertificationRecorded", "event_id": "e1",
            "recorded_at": datetime(2017, 5, 20, 10, 0, tzinfo=SHANGHAI),
            "certification_id": "CS-17-0001", "retiree_id": "FS000000009",
            "channel": "CONSULATE", "agency_id": "CN-CONSULATE-US-SF",
            "performed_at": datetime(2017, 5, 9, 0, 30, tzinfo=SHANGHAI)}
    case = consular_case(cert)
    assert (case["case_id"], case["retiree_id"], case["mission_id"], case["country"],
            case["performed_at"], case["recorded_at"]) == (
        "CS-17-0001", "FS000000009", "CN-CONSULATE-US-SF", "US", cert["performed_at"],
        cert["performed_at"])
    assert case["passport_checked"] and case["residence_permit_checked"] and \
        case["face_checked"], "an approval needs every check"
    path = tmp_path / "missions.toml"
    path.write_text(missions_toml(), encoding="utf-8")
    missions = directory.load(path)
    assert directory.problem(missions, case["mission_id"], case["mission_kind"],
                             case["country"]) is None
    wire = protocol.event_to_case({**case, "performed_at": case["performed_at"].isoformat(),
                                   "recorded_at": case["recorded_at"].isoformat()})
    import json
    back = protocol.case_to_event(json.dumps(wire).encode())
    assert (back["case_id"], back["mission_id"]) == ("CS-17-0001", "CN-CONSULATE-US-SF")
    assert "CN-EMB-US" not in missions and len(missions) == 19
    with pytest.raises(ValueError, match="not a mission of the campaign"):
        consular_case({**cert, "agency_id": "CN-EMB-US"})


def test_face_certifications_go_to_the_face_doors_and_nothing_else_does() -> None:
    """With the face doors (lifecert_dev.partners.faces), FACE_APP goes to the app's
    clients and FACE_COUNTER to the window cameras'; the counters keep COUNTER, and the
    face doors' roles do not take other provinces' offices from the API's doors."""
    from lifecert_dev.partners.counters import API_DOORS
    from lifecert_dev.partners.faces import FaceDoor, face_doors

    partners = systems.Partners("localhost:1", None, Path("."))  # type: ignore[arg-type]
    partners.harnesses = {name: make() for name, make in systems.SOURCES.items()}  # unstarted
    partners.api_doors = {name: systems.ApiDoor(None, door)  # type: ignore[arg-type]
                          for name, door in API_DOORS.items()}
    partners.api_doors.update(face_doors(None, Path(".")))  # type: ignore[arg-type]
    assert all(name in systems.DOORS for name in partners.api_doors)
    source_of = partners.source_of()

    def cert(channel: str, agency: str) -> dict[str, str]:
        return {"type": "CertificationRecorded", "retiree_id": "FS1", "channel": channel,
                "agency_id": agency}

    assert source_of(cert("FACE_APP", "FS-SIB-FACEAPP")) == "face-app"
    assert source_of(cert("FACE_COUNTER", "FS-NANHAI-WIN03")) == "face-counters"
    assert source_of(cert("COUNTER", "FS-NANHAI-OFFICE01")) == "counters"
    assert source_of(cert("ASSISTED_OFFICE", "GX-WUZHOU-SIB")) == "assisted-offices"
    app, windows = partners.api_doors["face-app"], partners.api_doors["face-counters"]
    assert isinstance(app, FaceDoor) and isinstance(windows, FaceDoor)
    assert (app.role, windows.role) == ("APP", "COUNTER")
    assert app._references is windows._references, "one enrollment per retiree"


def test_the_face_server_runs_the_real_checks_but_the_parallax_under_the_test_switch() -> None:
    from lifecert_dev.partners.faces import server_options

    args, env = server_options("a-key")
    assert args[:2] == ["--face-min-parallax", "0"]
    assert env == {"LIFECERT_FACE_KEY": "a-key", "LIFECERT_FACE_TEST_ONLY": "1"}
    assert "--face-screen-light-counter" not in args and "--face-challenge-seconds" not in args
