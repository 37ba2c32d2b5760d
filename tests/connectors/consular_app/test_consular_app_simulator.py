"""The consular system's simulator as the demo starts it: one signed case per retiree
living abroad of a generated population, verifiable with the public key it wrote."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

from connectors.consular_app import protocol as cp
from lifecert_dev.partners.consular_app import simulator

SIM = [sys.executable, "-m", "lifecert_dev.partners.consular_app.simulator"]


def _enrolled(retiree_id: str, residence: str = "ABROAD") -> str:
    return json.dumps({"type": "RetireeEnrolled", "recorded_at": "2017-03-01T09:00:00+08:00",
                       "retiree_id": retiree_id, "residence": residence, "country": "CA"})


def test_population_pushes_one_verifiable_case_per_retiree_abroad(tmp_path: Path) -> None:
    population = tmp_path / "population.jsonl"
    population.write_text("\n".join([_enrolled("FS000000101"), _enrolled("FS000000102"),
                                     _enrolled("FS000000999", "FOSHAN"), "", "not json?"][:4])
                          + "\n", encoding="utf-8")
    state = tmp_path / "state"
    assert subprocess.run([*SIM, "init", "--state", str(state)], timeout=60).returncode == 0
    done = subprocess.run([*SIM, "population", "--state", str(state), "--population",
                           str(population)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "pushed 2 cases" in done.stdout
    key = cp.load_verify_key(state / "verify-key.pem")
    events = []
    for item in simulator.read_store(state):
        payload = base64.b64decode(item["payload"])
        cp.verify(key, payload, base64.b64decode(item["signature"]))
        events.append(cp.case_to_event(payload))
    assert [e["retiree_id"] for e in events] == ["FS000000101", "FS000000102"]
    assert all(e["country"] == "CA" for e in events)


def test_push_refuses_what_is_not_a_case(tmp_path: Path) -> None:
    state = tmp_path / "state"
    simulator.init(state)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"type": "CertificationRecorded"}\n', encoding="utf-8")
    done = subprocess.run([*SIM, "push", "--state", str(state), str(bad)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "line 1" in done.stderr
    assert simulator.read_store(state) == []


def test_population_from_a_logs_consulate_certifications(tmp_path: Path) -> None:
    log = tmp_path / "campaign.jsonl"
    cert = {"type": "CertificationRecorded", "recorded_at": "2017-05-04T09:00:00+08:00",
            "certification_id": "C-77", "retiree_id": "FS000000101", "channel": "CONSULATE",
            "agency_id": "EMB-CA", "performed_at": "2017-05-03T22:15:00+08:00"}
    log.write_text("\n".join([_enrolled("FS000000101"), json.dumps(cert),
                              json.dumps({**cert, "channel": "COUNTER"})]) + "\n",
                   encoding="utf-8")
    state = tmp_path / "state"
    simulator.init(state)
    done = subprocess.run([*SIM, "population", "--state", str(state), "--population",
                           str(log), "--certifications"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    (item,) = simulator.read_store(state)
    event = cp.case_to_event(base64.b64decode(item["payload"]))
    assert (event["case_id"], event["retiree_id"], event["performed_at"],
            event["recorded_at"]) == ("C-77", "FS000000101", cert["performed_at"],
                                      cert["recorded_at"])
