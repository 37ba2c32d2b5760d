"""The two Guangdong connectors' hooks against the real simulator process (no broker: the
runner's part is the test kit's, in test_guangdong_contract.py): paging and checkpoints,
rejections, every fault mode, the token, settings, acknowledgements."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.guangdong import province as gd
from connectors.guangdong.connector import (
    GuangdongResultsSink,
    GuangdongSource,
    ProvinceProtocolError,
    read_ack_log,
)
from connectors.sdk.base import PartnerRecord, SinkRecord
from connectors.sdk.errors import ConfigError, PartnerUnavailable, RecordRejected
from lifecert.events import codec
from lifecert.events.interchange import parse_event
from lifecert_dev.partners.guangdong.harness import (
    GuangdongHarness,
    GuangdongResultsHarness,
    SimulatorProcess,
)
from lifecert_dev.testkit.samples import sample_events
from lifecert_dev.testkit.tls import TestCA


@pytest.fixture
def partner(tmp_path: Path) -> Iterator[tuple[GuangdongHarness, dict[str, Any]]]:
    harness = GuangdongHarness()
    settings = harness.start(tmp_path)
    yield harness, settings
    harness.stop()


def drain(source: GuangdongSource, position: Any = None,
          max_records: int = 500) -> tuple[list[PartnerRecord], Any]:
    records: list[PartnerRecord] = []
    while batch := source._poll(position, max_records):
        records.extend(batch)
        position = batch[-1].position
    return records, position


def business(event: dict[str, Any]) -> dict[str, Any]:
    parsed = parse_event(dict(event))
    return {k: v for k, v in parsed.items() if k not in ("event_id", "source_agency")}


def test_the_source_reads_every_page_and_maps_what_was_fed(
        partner: tuple[GuangdongHarness, dict[str, Any]]) -> None:
    harness, settings = partner
    fed = sample_events(harness.carries, 23, seed=7)
    harness.feed(fed)
    source = GuangdongSource("gd", {**settings, "page_size": 5})
    source._open()
    first = source._poll(None, 500)
    assert len(first) == 5, "page_size caps a poll"
    assert source._lag(first[-1].position) == 18
    records, end = drain(source)
    assert len(records) == 23 and source._lag(end) == 0
    events = [e for r in records for e in source._to_events(r)]
    assert [business(e) for e in events] == [business(e) for e in fed]
    assert {e["channel"] for e in events} == {"PROVINCIAL_XREGION", "ASSISTED_OFFICE",
                                              "ASSISTING_AGENCY"}
    assert len({r.key for r in records}) == 23 and all(r.key.startswith("GDXT")
                                                       for r in records)
    # A restart from a checkpoint reads the same records under the same keys.
    again, _ = drain(source, records[9].position)
    assert [(r.key, r.raw) for r in again] == [(r.key, r.raw) for r in records[10:]]
    assert source._poll(end, 500) == []
    source._close()


def test_a_malformed_record_is_rejected_with_its_field_and_raw_bytes(
        partner: tuple[GuangdongHarness, dict[str, Any]]) -> None:
    harness, settings = partner
    hints = [harness.feed_malformed() for _ in range(4)]
    harness._running().admin("POST", "/admin/feed", {"city": gd.FOSHAN, "items": [["x"]]})
    source = GuangdongSource("gd", settings)
    records, _ = drain(source)
    assert len(records) == 5
    for record, hint in zip(records, [*hints, "not a JSON object"], strict=True):
        with pytest.raises(RecordRejected, match=hint):
            source._to_events(record)
    assert b'"certType":"09"' in records[1].raw
    assert records[4].key == f"cursor:{records[4].position}" and records[4].raw == b'["x"]'


@pytest.mark.parametrize(("mode", "says"), [
    ("503", "HTTP 503: the provincial system is under maintenance"),
    ("close", "closed the connection without answering"),
    ("stop", "connection refused"),
])
def test_a_broken_partner_is_unavailable_until_mended(
        tmp_path: Path, mode: str, says: str) -> None:
    harness = GuangdongHarness(break_mode=mode)
    settings = harness.start(tmp_path)
    try:
        harness.feed(sample_events(harness.carries, 4, seed=1))
        source = GuangdongSource("gd", settings)
        source._open()
        head = source._poll(None, 2)
        harness.break_partner()
        with pytest.raises(PartnerUnavailable, match=says):
            source._poll(head[-1].position, 2)
        source._close()
        with pytest.raises(PartnerUnavailable, match=says):
            source._open()
        harness.mend_partner()
        source._open()
        assert len(source._poll(head[-1].position, 10)) == 2
        source._close()
    finally:
        harness.stop()


def test_a_cursor_the_feed_never_issued_stops_the_connector(
        partner: tuple[GuangdongHarness, dict[str, Any]]) -> None:
    source = GuangdongSource("gd", partner[1])
    with pytest.raises(ProvinceProtocolError, match="refused the checkpoint cursor 'bogus'"):
        source._poll("bogus", 10)


def test_a_refused_token_is_reported_as_such(tmp_path: Path) -> None:
    harness = GuangdongHarness(token="right-token")
    settings = harness.start(tmp_path)
    try:
        assert GuangdongSource("gd", settings)._check() == []
        source = GuangdongSource("gd", {**settings, "token": "wrong-token"})
        problems = source._check()
        assert len(problems) == 1 and "HTTP 401" in problems[0]
        assert "check the connector's token setting" in problems[0]
        assert "wrong-token" not in problems[0]
    finally:
        harness.stop()


@pytest.fixture(scope="module")
def pinned_ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return TestCA.create(tmp_path_factory.mktemp("pinned-ca"))


@pytest.mark.parametrize(("settings", "says"), [
    ({}, "setting 'url' is required"),
    ({"url": "ftp://gd.example"}, "setting 'url': expected an https://HOST:PORT URL"),
    ({"url": "http://h:1"}, "setting 'url': 'http://h:1' is plain HTTP: the token and the "
                            "records would travel in the clear"),
    ({"url": "https://h:1", "ca_file": None},
     "setting 'ca_file': an https:// URL needs the CA that certifies the province's server"),
    ({"url": "https://h:1", "ca_file": "/no/such/ca.pem"},
     "setting 'ca_file': ca_file '/no/such/ca.pem' does not exist"),
    ({"url": "https://h:1", "ca_file": __file__}, "holds no PEM CA certificate"),
    ({"url": "https://h:1", "city": "SHANGHAI"}, "setting 'city' must be a Guangdong city"),
    ({"url": "https://h:1", "page_size": 0}, "setting 'page_size' must be 1 to 1000"),
    ({"url": "https://h:1", "page_size": 1001}, "setting 'page_size' must be 1 to 1000"),
    ({"url": "https://h:1", "timeout": 0}, "setting 'timeout' must be positive"),
    ({"url": "https://h:1", "token": 7}, "setting 'token' must be str"),
    ({"url": "https://h:1", "allow_plain_http": "yes"},
     "setting 'allow_plain_http' must be bool"),
])
def test_wrong_source_settings_are_named(settings: dict[str, Any], says: str,
                                         pinned_ca: TestCA) -> None:
    settings = {**settings}
    if "url" in settings and "ca_file" not in settings:
        settings["ca_file"] = str(pinned_ca.cert_file)
    if settings.get("ca_file", "") is None:
        del settings["ca_file"]
    with pytest.raises(ConfigError, match=re.escape(says)):
        GuangdongSource("gd", settings)
    assert GuangdongSource("gd", {"url": "https://h:1", "city": "FOSHAN",
                                  "ca_file": str(pinned_ca.cert_file)}).city == "440600"
    # plain HTTP only when a test's settings ask for it in so many words
    assert GuangdongSource("gd", {"url": "http://h:1", "allow_plain_http": True}).city


def test_a_server_certified_by_another_ca_is_refused(
        tmp_path: Path, partner: tuple[GuangdongHarness, dict[str, Any]]) -> None:
    _, settings = partner
    other = TestCA.create(tmp_path / "other-ca", "another CA")
    # the same host name, the same simulator: only the CA that signed it differs
    for connector in (GuangdongSource("gd", {**settings, "ca_file": str(other.cert_file)}),
                      GuangdongResultsSink("gdr", {"url": settings["url"],
                                                   "ca_file": str(other.cert_file),
                                                   "ack_log": str(tmp_path / "acks.jsonl")})):
        problems = connector._check()
        assert len(problems) == 1, problems
        assert "the server's certificate was refused (unable to get local issuer " \
               "certificate): it is not from the pinned CA (ca_file)" in problems[0]
        with pytest.raises(PartnerUnavailable, match="certificate was refused"):
            connector._open()
    assert GuangdongSource("gd", settings)._check() == [], "the pinned CA is accepted"
    log = (tmp_path / "province" / "simulator.log").read_text()
    assert "TLS handshake failed" in log and "Traceback" not in log


def test_a_certificate_of_the_pinned_ca_for_another_host_is_refused(tmp_path: Path) -> None:
    ca = TestCA.create(tmp_path / "ca")
    elsewhere = ca.issue_server(tmp_path / "elsewhere", ["gdxt.example"])
    sim = SimulatorProcess(tmp_path / "province", ca=ca, server=elsewhere)
    sim.start()
    try:
        source = GuangdongSource("gd", {"url": sim.url, "ca_file": str(sim.ca_file)})
        problems = source._check()
        assert len(problems) == 1
        assert "certificate was refused (IP address mismatch" in problems[0], problems
    finally:
        sim.stop()


def test_plain_http_to_the_tls_simulator_gets_no_answer(
        partner: tuple[GuangdongHarness, dict[str, Any]]) -> None:
    harness, settings = partner
    plain = GuangdongSource("gd", {**settings, "url": settings["url"].replace("https:", "http:"),
                                   "allow_plain_http": True})
    problems = plain._check()
    assert len(problems) == 1 and "partner system unavailable" in problems[0]
    assert harness._running().admin("GET", "/admin/stats")["feed_records"] == 0


# -- the sink -----------------------------------------------------------------------------

@pytest.fixture
def results(tmp_path: Path) -> Iterator[tuple[GuangdongResultsHarness, dict[str, Any]]]:
    harness = GuangdongResultsHarness()
    settings = harness.start(tmp_path)
    yield harness, settings
    harness.stop()


def sink_records(events: list[dict[str, Any]]) -> list[SinkRecord]:
    out = []
    for offset, event in enumerate(events):
        value = codec.encode(event)
        out.append(SinkRecord("lifecert.assistance-results", 0, offset,
                              event["retiree_id"].encode(), value, codec.decode(value)))
    return out


def test_the_sink_posts_each_result_and_journals_the_acknowledgements(
        results: tuple[GuangdongResultsHarness, dict[str, Any]]) -> None:
    harness, settings = results
    events = harness.sample_events(5, seed=3)
    sink = GuangdongResultsSink("gdr", settings)
    sink._open()
    batch = sink_records(events)
    assert sink._apply(batch) == []
    ids = [e["event_id"] for e in events]
    assert harness.applied() == ids
    held = {r["idempotencyKey"]: r for r in harness._running().admin("GET", "/admin/results")
            ["results"]}
    acks = read_ack_log(Path(settings["ack_log"]))
    assert [(a["event_id"], a["ack_id"], a["duplicate"]) for a in acks] == [
        (i, held[i]["ackId"], False) for i in ids]
    assert acks[2]["offset"] == 2 and "retiree_id" not in acks[2]
    # A batch retried after a crash: the province deduplicates, the journal says so.
    assert sink._apply(batch) == []
    assert harness.applied() == ids
    acks = read_ack_log(Path(settings["ack_log"]))
    assert [(a["event_id"], a["ack_id"], a["duplicate"]) for a in acks[5:]] == [
        (i, held[i]["ackId"], True) for i in ids]
    sink._close()


def test_refused_results_are_returned_with_the_reason_and_the_rest_applied(
        results: tuple[GuangdongResultsHarness, dict[str, Any]]) -> None:
    harness, settings = results
    events = harness.sample_events(4, seed=4)
    events[1] = {**events[1], "home_region": "HN-CHANGSHA"}
    sink = GuangdongResultsSink("gdr", settings)
    assert sink._apply(sink_records(events[2:3])) == []
    # The same event id with another content: the province's 409.
    events[2] = {**events[2], "agency_id": "FS-SHUNDE-OFFICE01"}
    refused = sink._apply(sink_records(events))
    assert [(r.offset, reason.split(":")[0]) for r, reason in refused] == [
        (1, "home_region 'HN-CHANGSHA' is not a Guangdong city (known"),
        (2, "the province refused the result (HTTP 409 IDEMPOTENCY_KEY_REUSED)")]
    assert "was used for another result" in refused[1][1]
    assert sorted(harness.applied()) == sorted(e["event_id"] for e in
                                               (events[0], events[2], events[3]))


def test_a_partner_failing_mid_batch_keeps_the_acks_it_gave_and_the_retry_applies_once(
        results: tuple[GuangdongResultsHarness, dict[str, Any]]) -> None:
    harness, settings = results
    events = harness.sample_events(5, seed=5)
    sink = GuangdongResultsSink("gdr", settings)
    sink._open()  # the health check is one request; two posts then succeed
    harness._running().admin("POST", "/admin/faults", {"mode": "503", "count": None,
                                                       "after": 2})
    with pytest.raises(PartnerUnavailable, match="HTTP 503"):
        sink._apply(sink_records(events))
    assert len(read_ack_log(Path(settings["ack_log"]))) == 2
    harness.mend_partner()
    assert sink._apply(sink_records(events)) == []
    assert harness.applied() == [e["event_id"] for e in events]
    acks = read_ack_log(Path(settings["ack_log"]))
    assert [a["duplicate"] for a in acks] == [False, False, True, True, False, False, False]


@pytest.mark.parametrize("mode", ["close", "stop"])
def test_the_sink_cannot_open_or_apply_while_the_partner_is_down(
        tmp_path: Path, mode: str) -> None:
    harness = GuangdongResultsHarness(break_mode=mode)
    settings = harness.start(tmp_path)
    try:
        events = harness.sample_events(2, seed=6)
        sink = GuangdongResultsSink("gdr", settings)
        sink._open()
        harness.break_partner()
        with pytest.raises(PartnerUnavailable):
            sink._apply(sink_records(events))
        sink._close()
        with pytest.raises(PartnerUnavailable):
            sink._open()
        harness.mend_partner()
        assert sink._apply(sink_records(events)) == []
        assert harness.applied() == [e["event_id"] for e in events]
    finally:
        harness.stop()


def test_wrong_sink_settings_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="setting 'ack_log' is required"):
        GuangdongResultsSink("gdr", {"url": "http://h:1", "allow_plain_http": True})
    with pytest.raises(ConfigError, match="setting 'assisting_city' must be a Guangdong"):
        GuangdongResultsSink("gdr", {"url": "http://h:1", "allow_plain_http": True,
                                     "ack_log": "a", "assisting_city": "MACAU"})
    with pytest.raises(ConfigError, match="setting 'url': 'http://h:1' is plain HTTP"):
        GuangdongResultsSink("gdr", {"url": "http://h:1", "ack_log": "a"})
    (tmp_path / "file").write_text("")
    sink = GuangdongResultsSink("gdr", {"url": "http://127.0.0.1:9", "allow_plain_http": True,
                                        "ack_log": str(tmp_path / "file" / "acks.jsonl")})
    with pytest.raises(ConfigError, match="setting 'ack_log': cannot write"):
        sink._open()
    problems = sink._check()
    assert [p.split(":")[1].strip() for p in problems] == ["setting 'ack_log'",
                                                           "partner system unavailable"]
    assert "file is not a writable folder" in problems[0]
    assert "connection refused" in problems[1]
    unresolvable = GuangdongResultsSink("gdr", {"url": "http://no-such-host.invalid:1",
                                                "allow_plain_http": True,
                                                "ack_log": str(tmp_path / "acks.jsonl")})
    assert "the host name does not resolve" in unresolvable._check()[0]
    assert not (tmp_path / "acks.jsonl").exists(), "check creates nothing"
