"""The provincial system's simulator, spoken to over HTTPS as a real process: the paged
feed and its cursor, the assistance results with their idempotency key, faults, restart,
bearer token."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.guangdong import province as gd
from connectors.guangdong.client import ProvinceClient
from connectors.sdk.errors import PartnerUnavailable
from lifecert_dev.partners.guangdong.harness import SimulatorProcess


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatorProcess]:
    process = SimulatorProcess(tmp_path_factory.mktemp("province"))
    process.start()
    yield process
    process.stop()


@pytest.fixture
def api(sim: SimulatorProcess) -> Iterator[ProvinceClient]:
    client = sim.client()
    yield client
    client.close()
    sim.admin("DELETE", "/admin/faults")


def feed_record(n: int, city: str) -> dict[str, Any]:
    return {"certNo": f"GDXR-17-{n:08d}", "insuredId": f"{city}{n:09d}", "insuredCity": city,
            "certType": "01", "handlerOrgCode": "GD-ZHUHAI-SIB",
            "certTime": "2017-05-02 09:30:00+08:00", "reportTime": "2017-05-02 10:00:00+08:00"}


def add(sim: SimulatorProcess, city: str, records: list[Any]) -> None:
    sim.admin("POST", "/admin/feed", {"city": city, "items": records})


def page(api: ProvinceClient, **query: Any) -> dict[str, Any]:
    response = api.get(gd.FEED_PATH, query)
    assert response.status == 200, response.text
    return response.data  # type: ignore[no-any-return]


def test_the_feed_pages_with_a_cursor(sim: SimulatorProcess, api: ProvinceClient) -> None:
    city = gd.CITY_CODES["SHENZHEN"]
    records = [feed_record(n, city) for n in range(7)]
    add(sim, city, records)
    first = page(api, city=city, limit=3)
    assert [i["record"]["certNo"] for i in first["items"]] == ["GDXR-17-00000000",
                                                              "GDXR-17-00000001",
                                                              "GDXR-17-00000002"]
    assert (first["has_more"], first["remaining"]) == (True, 4)
    assert first["next_cursor"] == first["items"][-1]["cursor"]
    item = first["items"][0]["record"]
    assert item["itemId"].startswith("GDXT") and {**item, "itemId": None} == {
        "itemId": None, **records[0]}
    second = page(api, city="SHENZHEN", limit=3, cursor=first["next_cursor"])  # name or code
    assert [i["record"]["certNo"][-1] for i in second["items"]] == ["3", "4", "5"]
    third = page(api, city=city, limit=3, cursor=second["next_cursor"])
    assert (len(third["items"]), third["has_more"], third["remaining"]) == (1, False, 0)
    empty = page(api, city=city, cursor=third["next_cursor"])
    assert (empty["items"], empty["next_cursor"], empty["has_more"]) == (
        [], third["next_cursor"], False)
    again = page(api, city=city, limit=2, cursor=first["items"][1]["cursor"])
    assert [i["record"]["certNo"][-1] for i in again["items"]] == ["2", "3"]
    assert [i["cursor"] for i in again["items"]] == [first["items"][2]["cursor"],
                                                     second["items"][0]["cursor"]]


def test_a_citys_feed_holds_only_its_own_records(sim: SimulatorProcess,
                                                 api: ProvinceClient) -> None:
    zhuhai, shantou = gd.CITY_CODES["ZHUHAI"], gd.CITY_CODES["SHANTOU"]
    add(sim, zhuhai, [feed_record(1, zhuhai)])
    add(sim, shantou, [feed_record(2, shantou), feed_record(3, shantou)])
    add(sim, zhuhai, [feed_record(4, zhuhai)])
    got = page(api, city=zhuhai)["items"]
    assert [i["record"]["certNo"] for i in got] == ["GDXR-17-00000001", "GDXR-17-00000004"]


def test_a_page_holds_at_most_1000_records(sim: SimulatorProcess, api: ProvinceClient) -> None:
    city = gd.CITY_CODES["SHAOGUAN"]
    add(sim, city, [feed_record(n, city) for n in range(1005)])
    first = page(api, city=city, limit=5000)
    assert (len(first["items"]), first["remaining"]) == (1000, 5)


@pytest.mark.parametrize(("query", "status", "field"), [
    ({"city": "440600", "cursor": "bm90LWEtY3Vyc29y"}, 400, "cursor"),
    ({"city": "440600", "cursor": "%%%"}, 400, "cursor"),
    ({}, 400, "city"),
    ({"city": "310000"}, 400, "city"),
    ({"city": "440600", "limit": "0"}, 400, "limit"),
    ({"city": "440600", "limit": "ten"}, 400, "limit"),
])
def test_bad_feed_requests_are_refused_naming_the_parameter(
        api: ProvinceClient, query: dict[str, str], status: int, field: str) -> None:
    response = api.get(gd.FEED_PATH, query)
    assert (response.status, response.data["field"]) == (status, field)
    assert api.get("/api/v1/nothing").status == 404


def result(**changes: Any) -> dict[str, str]:
    return {"certNo": "FSAR-17-1", "insuredId": "440100000000017", "insuredCity": "440100",
            "assistCity": "440600", "assistMethod": "1", "handlerOrgCode": "FS-NANHAI-OFFICE02",
            "certTime": "2017-05-02 09:30:00+08:00", **changes}


def test_a_result_is_acknowledged_once_per_idempotency_key(sim: SimulatorProcess,
                                                           api: ProvinceClient) -> None:
    key = {"Idempotency-Key": "key-ack-once"}
    first = api.post(gd.RESULTS_PATH, result(), key)
    assert first.status == 201 and first.data["duplicate"] is False
    assert first.data["ackId"].startswith("GDACK-")
    again = api.post(gd.RESULTS_PATH, result(), key)
    assert again.status == 200
    assert again.data == {**first.data, "duplicate": True}
    other = api.post(gd.RESULTS_PATH, result(assistMethod="2"), key)
    assert (other.status, other.data["code"]) == (409, "IDEMPOTENCY_KEY_REUSED")
    held = [r for r in sim.admin("GET", "/admin/results")["results"]
            if r["idempotencyKey"] == "key-ack-once"]
    assert len(held) == 1 and held[0]["posts"] == 2 and held[0]["body"] == result()
    assert held[0]["ackId"] == first.data["ackId"]


@pytest.mark.parametrize(("body", "status", "field"), [
    (result(certNo=""), 422, "certNo"),
    ({k: v for k, v in result().items() if k != "handlerOrgCode"}, 422, "handlerOrgCode"),
    (result(insuredCity="430100"), 422, "insuredCity"),
    (result(insuredCity="440600"), 422, "insuredCity"),
    (result(assistMethod="9"), 422, "assistMethod"),
    (result(certTime="2017-05-02 09:30:00"), 422, "certTime"),
    (["not", "an", "object"], 422, None),
])
def test_an_invalid_result_is_refused_naming_the_field(
        sim: SimulatorProcess, api: ProvinceClient, body: Any, status: int,
        field: str | None) -> None:
    response = api.post(gd.RESULTS_PATH, body, {"Idempotency-Key": f"bad-{field}"})
    assert response.status == status and response.data.get("field") == field
    assert all(r["idempotencyKey"] != f"bad-{field}"
               for r in sim.admin("GET", "/admin/results")["results"])


def test_a_result_needs_a_key_and_a_json_body(api: ProvinceClient) -> None:
    response = api.post(gd.RESULTS_PATH, result())
    assert (response.status, response.data["field"]) == (400, "Idempotency-Key")
    response = api.request("POST", gd.RESULTS_PATH, b"{not json",
                           {"Idempotency-Key": "k", "Content-Type": "application/json"})
    assert (response.status, response.data["code"]) == (400, "INVALID_JSON")


def test_injected_503s_end_after_count_and_spare_the_admin_api(
        sim: SimulatorProcess, api: ProvinceClient) -> None:
    sim.admin("POST", "/admin/faults", {"mode": "503", "count": 2})
    assert sim.admin("GET", "/admin/stats")["faults"]["mode"] == "503"
    assert [api.get(gd.HEALTH_PATH).status for _ in range(3)] == [503, 503, 200]
    assert sim.admin("GET", "/admin/stats")["faults"] == {"mode": None, "left": None,
                                                         "after": 0, "served": 2}
    sim.admin("POST", "/admin/faults", {"mode": "503", "count": 1, "after": 2})
    assert [api.get(gd.HEALTH_PATH).status for _ in range(4)] == [200, 200, 503, 200]


def test_dropped_connections_until_mended(sim: SimulatorProcess, api: ProvinceClient) -> None:
    assert api.get(gd.HEALTH_PATH).status == 200
    sim.admin("POST", "/admin/faults", {"mode": "close", "count": None})
    for _ in range(3):
        with pytest.raises(PartnerUnavailable, match="closed the connection without"):
            api.get(gd.HEALTH_PATH)
    sim.admin("DELETE", "/admin/faults")
    assert api.get(gd.HEALTH_PATH).status == 200


def test_bad_fault_requests_are_refused(sim: SimulatorProcess) -> None:
    with pytest.raises(RuntimeError, match="mode must be"):
        sim.admin("POST", "/admin/faults", {"mode": "slow"})
    with pytest.raises(RuntimeError, match="count must be a positive integer"):
        sim.admin("POST", "/admin/faults", {"mode": "503", "count": 0})
    with pytest.raises(RuntimeError, match="after must be a non-negative integer"):
        sim.admin("POST", "/admin/faults", {"mode": "503", "after": -1})


def test_a_restart_keeps_the_feed_and_the_results(tmp_path: Path) -> None:
    sim = SimulatorProcess(tmp_path / "province")
    sim.start()
    try:
        add(sim, gd.FOSHAN, [feed_record(n, gd.FOSHAN) for n in range(3)])
        api = sim.client()
        before = page(api, city=gd.FOSHAN)
        ack = api.post(gd.RESULTS_PATH, result(), {"Idempotency-Key": "k1"}).data["ackId"]
        port = sim.port
        sim.stop()
        with pytest.raises(PartnerUnavailable, match="connection refused"):
            api.get(gd.HEALTH_PATH)
        sim.start()
        assert sim.port == port
        assert page(api, city=gd.FOSHAN) == before
        again = api.post(gd.RESULTS_PATH, result(), {"Idempotency-Key": "k1"})
        assert again.data["ackId"] == ack and again.data["duplicate"] is True
        new = api.post(gd.RESULTS_PATH, result(certNo="FSAR-17-2"), {"Idempotency-Key": "k2"})
        assert new.status == 201 and new.data["ackId"] != ack
        api.close()
    finally:
        sim.stop()


def test_with_a_token_every_request_needs_it_and_it_is_never_logged(tmp_path: Path) -> None:
    secret = "s3cret-token-7f1c"
    sim = SimulatorProcess(tmp_path / "province", token=secret)
    sim.start()
    try:
        for token in (None, "wrong"):
            anonymous = sim.client(token)
            response = anonymous.get(gd.HEALTH_PATH)
            assert response.status == 401 and response.data["code"] == "UNAUTHORIZED"
            assert anonymous.get("/admin/stats").status == 401
            anonymous.close()
        client = sim.client(secret)
        assert client.get(gd.HEALTH_PATH).status == 200
        assert sim.admin("GET", "/admin/stats")["feed_records"] == 0
        client.close()
    finally:
        sim.stop()
    assert secret not in (tmp_path / "province" / "simulator.log").read_text()


def test_the_command_line_says_what_is_wrong(tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "lifecert_dev.partners.guangdong.simulator",
                               *args],
                              capture_output=True, text=True, timeout=30,
                              env={"PATH": "/usr/bin:/bin"})

    serve = ["serve", "--port", "0", "--data-dir", str(tmp_path)]
    done = run(*serve, "--tls-cert", "c.pem", "--tls-key", "k.pem",
               "--token-env", "GD_SIM_TEST_UNSET_VARIABLE")
    assert done.returncode == 2
    assert "--token-env GD_SIM_TEST_UNSET_VARIABLE: the variable is not set" in done.stderr
    done = run(*serve)
    assert done.returncode == 2
    assert "the following arguments are required: --tls-cert, --tls-key" in done.stderr
    done = run(*serve, "--tls-cert", str(tmp_path / "none.pem"), "--tls-key",
               str(tmp_path / "none.key"))
    assert done.returncode == 1 and "cannot load the TLS certificate" in done.stderr
    (tmp_path / "in.jsonl").write_text("")
    done = run("feed", "--url", "https://127.0.0.1:9", str(tmp_path / "in.jsonl"))
    assert done.returncode == 2
    assert "an https:// URL needs the CA that certifies the province's server" in done.stderr
    done = run("feed", "--url", "http://127.0.0.1:9", str(tmp_path / "in.jsonl"))
    assert done.returncode == 2 and "is plain HTTP" in done.stderr


def test_the_feed_command_puts_a_files_carried_certifications_into_the_feed(
        tmp_path: Path) -> None:
    lines = [
        '{"type":"CertificationRecorded","recorded_at":"2017-05-02T10:00:00+08:00",'
        '"certification_id":"GDXR-17-1","retiree_id":"FS1","channel":"PROVINCIAL_XREGION",'
        '"agency_id":"GD-ZHUHAI-SIB","performed_at":"2017-05-02T09:00:00+08:00"}',
        '{"type":"CertificationRecorded","recorded_at":"2017-05-02T10:00:00+08:00",'
        '"certification_id":"FAPP-17-2","retiree_id":"FS2","channel":"FACE_APP",'
        '"agency_id":"FS-SIB-FACEAPP","performed_at":"2017-05-02T09:00:00+08:00"}',
        '{"type":"DeathRecorded","recorded_at":"2017-05-02T10:00:00+08:00",'
        '"retiree_id":"FS3","date_of_death":"2017-04-30","source":"FAMILY_REPORT"}',
    ]
    (tmp_path / "campaign.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "bad.jsonl").write_text(lines[0] + "\n" + lines[0][:-1].replace(
        '"2017-05-02T09:00:00+08:00"', '"yesterday"') + "}\n")
    sim = SimulatorProcess(tmp_path / "province")
    sim.start()
    command = [sys.executable, "-m", "lifecert_dev.partners.guangdong.simulator", "feed", "--url",
               sim.url, "--ca-file", str(sim.ca_file)]
    try:
        done = subprocess.run([*command, str(tmp_path / "campaign.jsonl")],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == ("fed 1 certifications to 440600 (FOSHAN)'s feed; "
                                       "skipped 2 events the province does not carry")
        api = sim.client()
        items = page(api, city=gd.FOSHAN)["items"]
        assert [i["record"]["certNo"] for i in items] == ["GDXR-17-1"]
        api.close()
        done = subprocess.run([*command, str(tmp_path / "bad.jsonl")],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 1
        assert "line 2, field 'performed_at'" in done.stderr
    finally:
        sim.stop()


def test_cases_are_registered_and_answered_once_and_each_refusal_says_why(
        sim: SimulatorProcess, api: ProvinceClient) -> None:
    case = {"caseNo": "FS-2017-SIMTEST1", "insuredId": "FSSIM0001", "insuredCity": "440600",
            "registerTime": "2017-05-15 09:00:00+08:00", "dueDate": "2017-06-13"}

    def post(path: str, body: Any, key: str) -> tuple[int, Any]:
        response = api.post(path, body, {gd.IDEMPOTENCY_HEADER: key})
        return response.status, response.data

    status, first = post(gd.CASES_PATH, case, "k1")
    assert (status, first["duplicate"]) == (201, False)
    assert post(gd.CASES_PATH, case, "k1") == (200, {**first, "duplicate": True})
    assert post(gd.CASES_PATH, case, "k2") == (200, {**first, "duplicate": True}), \
        "the same case under another key is registered once"
    status, refused = post(gd.CASES_PATH, {**case, "insuredId": "FSSIM0002"}, "k3")
    assert (status, refused["code"]) == (409, "CASE_NO_TAKEN")
    status, refused = post(gd.CASES_PATH, {**case, "registerTime": "2017-05-15 09:00"}, "k4")
    assert (status, refused["field"]) == (422, "registerTime")
    assert api.post(gd.CASES_PATH, case).status == 400, "no Idempotency-Key"

    # another city's case routed to Foshan, answered by Foshan
    sim.admin("POST", "/admin/cases", {"cases": [{
        "caseNo": "GDXC-440100-17-SIM1", "insuredId": "GZSIM0001", "insuredCity": "440100",
        "registerTime": "2017-05-08 09:00:00+08:00"}]})
    answer = {"result": "1", "certNo": "FS-SIM-1", "assistCity": "440600",
              "assistMethod": "1", "handlerOrgCode": "FS-SIB-NH02",
              "certTime": "2017-05-12 10:00:00+08:00"}
    path = gd.answer_path("GDXC-440100-17-SIM1")
    status, ack = post(path, answer, "a1")
    assert status == 201
    assert post(path, answer, "a2") == (200, {**ack, "duplicate": True})
    status, refused = post(path, {**answer, "certNo": "FS-SIM-2"}, "a3")
    assert (status, refused["code"]) == (409, "ALREADY_ANSWERED")
    status, refused = post(gd.answer_path("GDXC-440100-17-NONE"), answer, "a4")
    assert (status, refused["code"]) == (404, "UNKNOWN_CASE")
    status, refused = post(path, {**answer, "result": "3"}, "a5")
    assert (status, refused["field"]) == (422, "deathDate")
    held = {c["caseNo"]: c for c in sim.admin("GET", "/admin/cases")["cases"]}
    assert held["FS-2017-SIMTEST1"]["posts"] == 3
    assert (held["GDXC-440100-17-SIM1"]["answer"]["certNo"],
            held["GDXC-440100-17-SIM1"]["answerPosts"]) == ("FS-SIM-1", 2)
