"""The Macau SSF connectors' hooks against the simulator process (no broker): mutual TLS,
paging, a second different answer refused, settings named."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.guangdong.client import ProvinceClient
from connectors.macau_ssf import ssf
from connectors.macau_ssf.connector import MacauSsfResultsSink, MacauSsfSource
from connectors.sdk.base import SinkRecord
from connectors.sdk.errors import ConfigError, PartnerUnavailable
from lifecert.events import codec
from lifecert_dev.partners.macau_ssf.harness import SsfSimulator, result_event
from lifecert_dev.testkit.tls import TestCA


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SsfSimulator]:
    simulator = SsfSimulator(tmp_path / "fss")
    simulator.start()
    yield simulator
    simulator.stop()


def records(events: list[dict[str, Any]]) -> list[SinkRecord]:
    out = []
    for offset, event in enumerate(events):
        value = codec.encode(event)
        out.append(SinkRecord("lifecert.assistance-results", 0, offset,
                              event["retiree_id"].encode(), value, codec.decode(value)))
    return out


def test_a_client_without_the_bureau_certificate_is_refused(sim: SsfSimulator,
                                                            tmp_path: Path) -> None:
    anonymous = ProvinceClient(sim.url, None, 5.0, ca_file=str(sim.ca.cert_file))
    with pytest.raises(PartnerUnavailable, match="TLS"):
        anonymous.get(ssf.HEALTH_PATH)
    stranger = TestCA.create(tmp_path / "other", "someone else").issue_client(
        tmp_path / "other-client", "intruder")
    settings = {**sim.settings(), "client_cert": str(stranger.cert_file),
                "client_key": str(stranger.key_file)}
    with pytest.raises(PartnerUnavailable):
        MacauSsfSource("ssf", settings)._open()
    source = MacauSsfSource("ssf", sim.settings())
    source._open()
    source._close()


def test_the_source_pages_through_and_maps_every_communication(sim: SsfSimulator) -> None:
    count = sim.populate(12, 6, seed=5)
    source = MacauSsfSource("ssf", {**sim.settings(), "page_size": 7})
    position, events = None, []
    while batch := source._poll(position, 100):
        events += [e for r in batch for e in source._to_events(r)]
        position = batch[-1].position
    source._close()
    assert len(events) == count and source._lag(position) == 0
    assert sum(e["type"] == "AssistanceRequested" for e in events) == 6


def test_ssf_applies_an_answer_once_and_refuses_a_different_second_one(
        sim: SsfSimulator, tmp_path: Path) -> None:
    sink = MacauSsfResultsSink("ssf-out", {**sim.settings(),
                                           "ack_log": str(tmp_path / "acks.jsonl")})
    sink._open()
    alive = result_event(6, 0, outcome="CERTIFIED_ALIVE")
    assert sink._apply(records([alive, alive])) == []
    (held,) = sim.results()
    assert held["posts"] == 2 and held["resultado"] == "VIVO"
    dead = {**result_event(6, 0, outcome="DECEASED"), "event_id": "another-answer"}
    refused = sink._apply(records([dead]))
    assert len(refused) == 1 and "HTTP 409" in refused[0][1]
    assert len(sim.results()) == 1
    sink._close()


@pytest.mark.parametrize(("change", "key"), [
    ({"client_cert": "/nonexistent.pem"}, "client_cert"),
    ({"ca_file": "/nonexistent.pem"}, "ca_file"),
    ({"url": "http://127.0.0.1:1"}, "url"),
    ({"due_working_days": 0}, "due_working_days"),
    ({"policy": "no-such-policy"}, "policy"),
    ({"colour": "blue"}, "colour"),
])
def test_wrong_settings_are_named(sim: SsfSimulator, change: dict[str, Any],
                                  key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        MacauSsfSource("ssf", {**sim.settings(), **change})
