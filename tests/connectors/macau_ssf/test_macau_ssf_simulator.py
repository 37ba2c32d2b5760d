"""SSF's simulator answers Foshan's requests (OUTBOUND cases) through its own protocol: a
form-4 PROVA_DE_VIDA of the retiree asked, performed at or after the request's time (after
its data_limite: late), answers it (RESPOSTA_PEDIDO VIVO naming the proof), whichever of the two
SSF holds first; the requests still open are answered NAO_ENCONTRADO on their due day; an
answer is given once. The state alone (SQLite), no HTTP: the end-to-end test runs it as its
process (tests/connectors/macau_ssf/test_macau_ssf_end_to_end.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from connectors.macau_ssf import ssf
from lifecert.domain.policy import load_policy
from lifecert_dev.partners.macau_ssf.harness import card_of
from lifecert_dev.partners.macau_ssf.simulator import Refused, Store, validate_request

ASKED_AT = "2017-05-15T09:00:00+08:00"


def _request(retiree: str) -> dict[str, str]:
    return {"n_pedido_foshan": f"FS-2017-{retiree}", "n_pensionista_foshan": retiree,
            "data_hora_pedido": ASKED_AT, "data_limite": "2017-06-13"}


def _proof(retiree: str, registo: str, at: str) -> dict[str, Any]:
    return {"tipo": ssf.PROOF, "n_registo": registo, "n_pensionista_foshan": retiree,
            "bir": card_of(retiree), "balcao": "MO-FSS", "data_hora_prova": at,
            "data_hora_comunicacao": at.replace("T10", "T11")}


def _answers(store: Store) -> dict[str, dict[str, Any]]:
    rows, _ = store.page(0, 1000)
    records = [json.loads(r) for _, r in rows]
    answers = [r for r in records if r["tipo"] == ssf.ANSWER]
    assert len(answers) == len({a["n_pedido_foshan"] for a in answers}), "answered once"
    return {a["n_pensionista_foshan"]: a for a in answers}


def test_a_proof_answers_the_request_before_or_after_it_arrives(tmp_path: Path) -> None:
    store = Store(tmp_path / "fss.sqlite3")
    # certified before Foshan asked: answers nothing (the case was not registered yet)
    store.append([_proof("FS1", "P-EARLY", "2017-05-10T10:00:00+08:00")])
    # listed before SSF held the request, performed after it was made: answers it
    store.append([_proof("FS2", "P-2", "2017-05-15T10:00:00+08:00")])
    for retiree in ("FS1", "FS2", "FS3", "FS4", "FS5", "FS6"):
        store.request(f"key-{retiree}", validate_request(_request(retiree)))
    store.append([_proof("FS3", "P-3", "2017-05-20T10:00:00+08:00"),
                  _proof("FS3", "P-3B", "2017-05-21T10:00:00+08:00"),  # answered already
                  _proof("FS4", "P-LATE", "2017-06-14T10:00:00+08:00"),  # late, answers
                  {**_proof("FS5", "P-BAD", "2017-05-20T10:00:00+08:00"),
                   "bir": "1234567(8)"}])  # refused by the connector: answers nothing
    answers = _answers(store)
    assert {r: (a["resultado"], a["n_registo"]) for r, a in answers.items()} == {
        "FS2": ("VIVO", "P-2"), "FS3": ("VIVO", "P-3"), "FS4": ("VIVO", "P-LATE")}
    assert answers["FS3"]["data_hora_verificacao"] == "2017-05-20T10:00:00+08:00"
    assert answers["FS3"]["data_hora_comunicacao"] == "2017-05-20T11:00:00+08:00"

    # the rest: not found on their due day; a second call finds nothing open
    assert store.answer_requests(resultado="NAO_ENCONTRADO") == 3
    assert store.answer_requests(resultado="NAO_ENCONTRADO") == 0
    store.append([_proof("FS6", "P-6", "2017-05-22T10:00:00+08:00")])  # answered already
    answers = _answers(store)
    assert {r: a["resultado"] for r, a in answers.items()} == {
        "FS1": "NAO_ENCONTRADO", "FS2": "VIVO", "FS3": "VIVO", "FS4": "VIVO",
        "FS5": "NAO_ENCONTRADO", "FS6": "NAO_ENCONTRADO"}
    assert answers["FS1"]["data_hora_verificacao"] == "2017-06-13T17:00:00+08:00"
    assert answers["FS1"]["metodo"] == "VISITA_DOMICILIARIA"
    # each maps to the OUTBOUND AssistanceResult the connector publishes
    calendar = load_policy("foshan-2017").working_days
    results = {r: ssf.record_to_event(a, calendar, 20) for r, a in answers.items()}
    assert {r: (e["direction"], e["outcome"], e["case_id"]) for r, e in results.items()
            if r in ("FS1", "FS3")} == {"FS1": ("OUTBOUND", "NOT_FOUND", "FS-2017-FS1"),
                                        "FS3": ("OUTBOUND", "CERTIFIED_ALIVE", "FS-2017-FS3")}
    assert all(r["posts"] == 1 and r["respondido"] for r in store.requests())


@pytest.mark.parametrize(("field", "value"), [("data_hora_pedido", "2017-05-15 09:00"),
                                              ("data_hora_pedido", "amanhã"),
                                              ("data_limite", "13/06/2017")])
def test_a_request_with_a_bad_time_is_refused_naming_the_field(field: str, value: str) -> None:
    with pytest.raises(Refused) as refused:
        validate_request({**_request("FS1"), field: value})
    assert (refused.value.status, refused.value.field) == (422, field)
