"""The partner directory of missions: the consular-app connector takes a case only from a
mission listed with that kind and country; `lifecert connectors missions` shows it."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest

from connectors.consular_app import missions as directory
from connectors.consular_app.connector import ConsularAppSource
from connectors.sdk.base import PartnerRecord
from connectors.sdk.errors import ConfigError, RecordRejected
from lifecert.cli import main
from lifecert_dev.partners.consular_app import simulator

CASE = {"caseNo": "LS2017-000001", "pensionNo": "FS000000001",
        "mission": {"code": "CN-TO-PORTMORESBY", "type": "TRADE_OFFICE", "country": "PG"},
        "documentsChecked": ["PASSPORT", "RESIDENCE_PERMIT"],
        "faceCheck": {"passed": True, "at": "2017-05-03T22:15:00+08:00"},
        "pushedAt": "2017-05-04T09:00:00+08:00"}


def test_the_shipped_directory_has_every_kind_of_mission() -> None:
    found = directory.load()
    assert {m.kind for m in found.values()} == set(directory.KINDS)
    tuvalu = found["CT-CH-FOR-CN-TUVALU"]
    assert (tuvalu.kind, tuvalu.country) == ("CARETAKER_EMBASSY", "TV")


@pytest.mark.parametrize(("code", "kind", "country", "words"), [
    ("CN-EMB-ZZ", "EMBASSY", "ZZ", "'CN-EMB-ZZ' is not a mission of the partner directory"),
    ("CN-TO-PORTMORESBY", "EMBASSY", "PG", "lists CN-TO-PORTMORESBY as a TRADE_OFFICE"),
    ("CN-CG-VANCOUVER", "CONSULATE_GENERAL", "US", "lists CN-CG-VANCOUVER in CA"),
])
def test_a_case_from_a_mission_not_so_listed_is_refused(code: str, kind: str, country: str,
                                                       words: str) -> None:
    assert words in (directory.problem(directory.load(), code, kind, country) or "")


def _source(tmp_path: Path, **more: Any) -> ConsularAppSource:
    key = simulator.init(tmp_path / "consular")
    return ConsularAppSource("consular", {"url": "http://127.0.0.1:9", "allow_plain_http": True,
                                          "verify_key_file": str(key), **more})


def _record(tmp_path: Path, case: dict[str, Any]) -> PartnerRecord:
    ((payload, signature),) = simulator.sign_payloads(tmp_path / "consular",
                                                      [simulator.payload_bytes(case)])
    item = {"seq": 1, "payload": base64.b64encode(payload).decode(),
            "signature": base64.b64encode(signature).decode()}
    return PartnerRecord(key="seq-1", position=1, raw=b"", data=item)


def test_the_connector_dead_letters_a_case_from_an_unknown_mission(tmp_path: Path) -> None:
    source = _source(tmp_path)
    (event,) = source._to_events(_record(tmp_path, CASE))
    assert event["mission_kind"] == "TRADE_OFFICE"
    stranger = {**CASE, "mission": {"code": "CN-EMB-ZZ", "type": "EMBASSY", "country": "ZZ"}}
    with pytest.raises(RecordRejected, match=re.escape(
            "case at seq 1: field mission.code: 'CN-EMB-ZZ' is not a mission of the partner "
            "directory")):
        source._to_events(_record(tmp_path, stranger))


def test_a_bureaus_own_directory_file_and_its_errors(tmp_path: Path) -> None:
    own = tmp_path / "missions.toml"
    own.write_text('[missions."CN-EMB-ZZ"]\nkind = "EMBASSY"\ncountry = "ZZ"\n'
                   'city = "Somewhere"\n', encoding="utf-8")
    stranger = {**CASE, "mission": {"code": "CN-EMB-ZZ", "type": "EMBASSY", "country": "ZZ"}}
    source = _source(tmp_path, missions_file=str(own))
    assert source._to_events(_record(tmp_path, stranger))[0]["mission_id"] == "CN-EMB-ZZ"
    with pytest.raises(RecordRejected, match="CN-TO-PORTMORESBY"):
        source._to_events(_record(tmp_path, CASE))  # not in that file
    own.write_text('[missions."CN-EMB-ZZ"]\nkind = "PALACE"\ncountry = "ZZ"\ncity = "S"\n')
    with pytest.raises(ConfigError, match=r"missions_file.*CN-EMB-ZZ.*kind 'PALACE' is not "
                                          r"one of EMBASSY"):
        _source(tmp_path, missions_file=str(own))
    with pytest.raises(ConfigError, match="cannot read it"):
        _source(tmp_path, missions_file=str(tmp_path / "absent.toml"))


def test_connectors_missions_lists_the_directory(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["connectors", "missions", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["missions"]
    assert {"code": "CN-TO-PORTMORESBY", "kind": "TRADE_OFFICE", "country": "PG",
            "city": "Port Moresby"} in rows
    bad = tmp_path / "bad.toml"
    bad.write_text("[missions]\n", encoding="utf-8")
    assert main(["connectors", "missions", "--file", str(bad)]) == 2
    assert "no [missions" in capsys.readouterr().err
