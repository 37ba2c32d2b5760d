"""The protocol of Macau's Social Security Fund (社會保障基金 / Fundo de Segurança Social,
FSS) for its exchange with Foshan, and the pure mapping both ways (no I/O).

docs/partners/macau-ssf.md publishes it as the partner would. In short: HTTPS with client
certificates (both sides pinned), JSON in UTF-8, Portuguese field names (the Traditional
Chinese name of each is in the page), times with their offset (Macau: +08:00), Macau
resident identity cards (BIR, 澳門居民身份證) written ``1234567(8)``.

- ``GET /fss/v1/comunicacoes?cursor=C&limite=N``: SSF's communications to Foshan, oldest
  first, after the opaque cursor: ``{"itens": [{"cursor", "registo"}], "restantes": n}``.
  ``registo.tipo`` is one of :data:`KINDS`.
- ``POST /fss/v1/resultados`` with header ``Chave-Idempotencia``: Foshan's form-3 result
  for a case SSF asked (201 ``{"n_recibo", "duplicado": false, "data_hora_rececao"}``; the
  same key, or the same answer to the same case, again: 200, the same receipt and
  ``"duplicado": true``; another answer to an answered case: 409; a bad body: 422 naming
  ``campo``).
- ``GET /fss/v1/saude``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any, Final

from connectors.sdk.errors import RecordRejected
from connectors.sdk.fields import coded
from lifecert.domain.assistance import due_date
from lifecert.domain.working_days import WorkingCalendar, WorkingCalendarError
from lifecert.events import bounds
from lifecert.events.catalogue import INPUT_TYPES, PARTNER_TYPES, Event
from lifecert.events.interchange import MalformedEvent, parse_event
from lifecert.events.time import isoformat_local, to_utc

AGENCY: Final = "MACAU-SSF"
HEALTH_PATH: Final = "/fss/v1/saude"
FEED_PATH: Final = "/fss/v1/comunicacoes"
RESULTS_PATH: Final = "/fss/v1/resultados"
REQUESTS_PATH: Final = "/fss/v1/pedidos"
IDEMPOTENCY_HEADER: Final = "Chave-Idempotencia"
MAX_PAGE: Final = 1000
# The hub's id of an SSF beneficiary living in Foshan: never a Foshan retiree id.
BENEFICIARY_PREFIX: Final = "MO-SSF-"

PROOF = "PROVA_DE_VIDA"            # 生存證明 (表格四): a Foshan retiree certified at SSF
FORM_DELIVERED = "FORMULARIO_ENTREGUE"  # 表格已寄達: the mailed form 4 reached Foshan
DEATH = "OBITO"                    # 死亡: a Foshan retiree living in Macau died
BENEFICIARY = "BENEFICIARIO"       # 居於佛山的受益人: SSF asks Foshan to certify (form 3)
RECEIPT = "RECIBO_RESULTADO"       # 結果回執: SSF received Foshan's form-3 result
REQUEST_RECEIPT = "RECIBO_PEDIDO"  # 請求回執: SSF took Foshan's request about a Foshan retiree
ANSWER = "RESPOSTA_PEDIDO"         # 請求答覆: SSF answers Foshan's request
KINDS: Final = (PROOF, FORM_DELIVERED, DEATH, BENEFICIARY, RECEIPT, REQUEST_RECEIPT, ANSWER)
BENEFITS: Final = ("PENSAO_VELHICE", "PENSAO_INVALIDEZ")  # 養老金, 殘疾金

# Foshan's answers (form 3) in SSF's words.
OUTCOMES: Final = {"CERTIFIED_ALIVE": "VIVO", "NOT_FOUND": "NAO_ENCONTRADO",
                   "DECEASED": "FALECIDO"}
METHODS: Final = {"COUNTER": "BALCAO", "FACE_COUNTER": "BALCAO_RECONHECIMENTO_FACIAL",
                  "HOME_VISIT": "VISITA_DOMICILIARIA"}

_BIR = re.compile(r"^([157])(\d{6})\((\d)\)$")
_BIR_WEIGHTS = (8, 7, 6, 5, 4, 3, 2)


def bir_check_digit(first_seven: str) -> int | None:
    """The check digit of a BIR's seven digits (weights 8..2, modulus 11, as this
    interface specifies); None when the number cannot be issued (remainder 1)."""
    total = sum(int(d) * w for d, w in zip(first_seven, _BIR_WEIGHTS, strict=True))
    check = (11 - total % 11) % 11
    return None if check == 10 else check


def bir(first_seven: str) -> str:
    """A valid BIR ``NNNNNNN(C)`` for seven digits; ValueError when none can be issued."""
    check = bir_check_digit(first_seven)
    if check is None or not re.fullmatch(r"[157]\d{6}", first_seven):
        raise ValueError(f"no BIR can be issued with the digits {first_seven!r}")
    return f"{first_seven}({check})"


def bir_problem(value: Any) -> str | None:
    """What is wrong with a BIR (never echoing the number: it is personal data)."""
    if not isinstance(value, str):
        return f"must be a string like 1234567(9), got a {type(value).__name__}"
    match = _BIR.fullmatch(value)
    if match is None:
        return ("is not written as a Macau resident card number: 7 digits, the first 1, 5 "
                "or 7, then the check digit in brackets, e.g. 1234567(9)")
    if bir_check_digit(match[1] + match[2]) != int(match[3]):
        return "fails its check digit: a mistyped card number; ask SSF to correct it"
    return None


def parse_time(value: Any, name: str) -> datetime:
    if not isinstance(value, str):
        raise RecordRejected(f"field {name} must be a time like 2017-05-02T09:30:00+08:00, "
                             f"got {bounds.show(value)}")
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise RecordRejected(f"field {name}: expected a time like 2017-05-02T09:30:00+08:00, "
                             f"got {bounds.show(value)}") from None
    if at.utcoffset() is None:
        raise RecordRejected(f"field {name}: {bounds.show(value)} has no UTC offset; SSF "
                             f"writes +08:00")
    try:
        problem = bounds.year_problem(at) or bounds.year_problem(to_utc(at))
    except OverflowError:
        problem = bounds.year_problem(1) or "out of range"
    if problem:
        raise RecordRejected(f"field {name}: {bounds.show(value)}: {problem}")
    return at


def _date(value: Any, name: str) -> date:
    try:
        day = date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        day = None
    if day is None:
        raise RecordRejected(f"field {name} must be a date like 2017-05-02, got "
                             f"{bounds.show(value)}")
    problem = bounds.year_problem(day)
    if problem:
        raise RecordRejected(f"field {name}: {problem}")
    return day


def _text(record: Mapping[str, Any], name: str, id_field: str | None = None) -> str:
    value = record.get(name)
    if value is None:
        raise RecordRejected(f"field {name} is missing; SSF's {record.get('tipo')} records "
                             f"carry it")
    if not isinstance(value, str) or not value.strip():
        raise RecordRejected(f"field {name} must be a non-empty string, got "
                             f"{bounds.show(value)}")
    if id_field is not None:
        problem = bounds.id_problem(id_field, value)
        if problem is not None:
            raise RecordRejected(f"field {name}: {problem}")
    return value


def _check_bir(record: Mapping[str, Any]) -> None:
    problem = bir_problem(record.get("bir"))
    if problem is not None:
        raise RecordRejected(f"field bir {problem}")


def record_to_event(record: Any, calendar: WorkingCalendar, due_working_days: int) -> Event:
    """The event one SSF communication reports (interchange form, no ``event_id``)."""
    if not isinstance(record, dict):
        raise RecordRejected(f"the communication is not a JSON object but "
                             f"{type(record).__name__}; nothing can be read from it")
    kind = record.get("tipo")
    if kind not in KINDS:
        raise RecordRejected(f"field tipo {bounds.show(kind)} is not a known communication; "
                             f"expected one of {', '.join(KINDS)}")
    reported = parse_time(record.get("data_hora_comunicacao"), "data_hora_comunicacao")
    event = _MAPPERS[kind](record, calendar, due_working_days)
    event["recorded_at"] = isoformat_local(reported)
    try:
        parse_event(dict(event), allowed=(*INPUT_TYPES, *PARTNER_TYPES))
    except MalformedEvent as exc:
        raise RecordRejected(f"the {kind} record maps to an invalid event: "
                             f"{exc.describe()}") from None
    return event


def _proof(record: Mapping[str, Any], calendar: WorkingCalendar, days: int) -> Event:
    _check_bir(record)
    performed = parse_time(record.get("data_hora_prova"), "data_hora_prova")
    return {"type": "CertificationRecorded",
            "certification_id": _text(record, "n_registo", "certification_id"),
            "retiree_id": _text(record, "n_pensionista_foshan", "retiree_id"),
            "channel": "MACAU_SSF", "agency_id": _text(record, "balcao", "agency_id"),
            "performed_at": isoformat_local(performed)}


def _form(record: Mapping[str, Any], calendar: WorkingCalendar, days: int) -> Event:
    received = parse_time(record.get("data_hora_entrega"), "data_hora_entrega")
    event: Event = {"type": "CertificationDocumentsReceived",
                    "certification_id": _text(record, "n_registo", "certification_id"),
                    "retiree_id": _text(record, "n_pensionista_foshan", "retiree_id"),
                    "received_at": isoformat_local(received)}
    if record.get("balcao") is not None:
        event["agency_id"] = _text(record, "balcao", "agency_id")
    return event


def _death(record: Mapping[str, Any], calendar: WorkingCalendar, days: int) -> Event:
    _check_bir(record)
    return {"type": "DeathRecorded",
            "retiree_id": _text(record, "n_pensionista_foshan", "retiree_id"),
            "date_of_death": _date(record.get("data_obito"), "data_obito").isoformat(),
            "source": _text(record, "entidade_informante", "agency_id")}


def beneficiary_id(number: str) -> str:
    return f"{BENEFICIARY_PREFIX}{number}"


def _beneficiary_number(record: Mapping[str, Any]) -> str:
    """The record's n_beneficiario: SSF's beneficiary number, 1 to 20 digits."""
    number = _text(record, "n_beneficiario", "retiree_id")
    if not number.isdigit() or len(number) > 20:
        raise RecordRejected(f"field n_beneficiario must be SSF's beneficiary number (1 to 20 "
                             f"digits), got {bounds.show(number)}")
    return number


def _beneficiary(record: Mapping[str, Any], calendar: WorkingCalendar, days: int) -> Event:
    _check_bir(record)
    number = _beneficiary_number(record)
    if record.get("prestacao") not in BENEFITS:
        raise RecordRejected(f"field prestacao {bounds.show(record.get('prestacao'))} is not a "
                             f"pension SSF asks Foshan about; expected {' or '.join(BENEFITS)}")
    requested = parse_time(record.get("data_hora_pedido"), "data_hora_pedido")
    try:
        due = due_date(requested, days, calendar)
    except WorkingCalendarError as exc:
        raise RecordRejected(f"field data_hora_pedido: {exc}") from None
    return {"type": "AssistanceRequested",
            "case_id": _text(record, "n_processo", "certification_id"),
            "retiree_id": beneficiary_id(number), "partner": AGENCY, "direction": "INBOUND",
            "requested_at": isoformat_local(requested), "due_on": due.isoformat()}


def _receipt(record: Mapping[str, Any], calendar: WorkingCalendar, days: int) -> Event:
    number = _beneficiary_number(record)
    at = parse_time(record.get("data_hora_rececao"), "data_hora_rececao")
    return {"type": "AssistanceAcknowledged",
            "case_id": _text(record, "n_processo", "certification_id"),
            "retiree_id": beneficiary_id(number), "partner": AGENCY,
            "acknowledges": "RESULT", "acknowledged_at": isoformat_local(at),
            "receipt": _text(record, "n_recibo", "certification_id")}


def _request_receipt(record: Mapping[str, Any], calendar: WorkingCalendar, days: int) -> Event:
    at = parse_time(record.get("data_hora_rececao"), "data_hora_rececao")
    return {"type": "AssistanceAcknowledged",
            "case_id": _text(record, "n_pedido_foshan", "certification_id"),
            "retiree_id": _text(record, "n_pensionista_foshan", "retiree_id"),
            "partner": AGENCY, "acknowledges": "REQUEST", "acknowledged_at": isoformat_local(at),
            "receipt": _text(record, "n_recibo", "certification_id")}


_OUTCOME_OF = {v: k for k, v in OUTCOMES.items()}
_METHOD_OF = {v: k for k, v in METHODS.items()}


def _answer(record: Mapping[str, Any], calendar: WorkingCalendar, days: int) -> Event:
    outcome = coded(record, "resultado", _OUTCOME_OF)
    method = coded(record, "metodo", _METHOD_OF)
    death = record.get("data_obito")
    if (outcome == "DECEASED") != (death is not None):
        raise RecordRejected("field data_obito must be given exactly when resultado is "
                             "FALECIDO")
    checked = parse_time(record.get("data_hora_verificacao"), "data_hora_verificacao")
    return {"type": "AssistanceResult",
            "certification_id": _text(record, "n_registo", "certification_id"),
            "retiree_id": _text(record, "n_pensionista_foshan", "retiree_id"),
            "home_region": "FOSHAN", "method": method,
            "agency_id": _text(record, "balcao", "agency_id"),
            "performed_at": isoformat_local(checked), "partner": AGENCY,
            "case_id": _text(record, "n_pedido_foshan", "certification_id"),
            "outcome": outcome, "direction": "OUTBOUND",
            "date_of_death": None if death is None else _date(death, "data_obito").isoformat()}


_MAPPERS = {PROOF: _proof, FORM_DELIVERED: _form, DEATH: _death, BENEFICIARY: _beneficiary,
            RECEIPT: _receipt, REQUEST_RECEIPT: _request_receipt, ANSWER: _answer}


def is_ssf_result(event: Mapping[str, Any]) -> bool:
    """Whether a record of the assistance topic is Foshan's answer SSF takes (not SSF's
    own answer to Foshan, OUTBOUND)."""
    return (event.get("type") == "AssistanceResult" and event.get("partner") == AGENCY
            and event.get("direction") in (None, "INBOUND"))


def is_ssf_request(event: Mapping[str, Any]) -> bool:
    """Whether a record of the assistance topic is Foshan's request to SSF (OUTBOUND)."""
    return (event.get("type") == "AssistanceRequested" and event.get("partner") == AGENCY
            and event.get("direction") == "OUTBOUND")


def request_body(event: Mapping[str, Any]) -> dict[str, Any]:
    """SSF's body for Foshan's request to certify a Foshan retiree living in Macau."""
    requested: datetime = event["requested_at"]
    due: date = event["due_on"]
    return {"n_pedido_foshan": event["case_id"], "n_pensionista_foshan": event["retiree_id"],
            "data_hora_pedido": isoformat_local(requested), "data_limite": due.isoformat()}


def result_body(event: Mapping[str, Any]) -> dict[str, Any]:
    """SSF's form-3 body for one of Foshan's AssistanceResults; RecordRejected for one SSF
    cannot take (the dead letter says why)."""
    retiree = event.get("retiree_id") or ""
    if not retiree.startswith(BENEFICIARY_PREFIX):
        raise RecordRejected(f"retiree_id is not an SSF beneficiary's id ({BENEFICIARY_PREFIX}"
                             f"<number>): {bounds.show(retiree)}")
    if not event.get("case_id"):
        raise RecordRejected("case_id is missing: SSF answers name its n_processo")
    outcome = event.get("outcome") or "CERTIFIED_ALIVE"
    death = event.get("date_of_death")
    if (outcome == "DECEASED") != (death is not None):
        raise RecordRejected("date_of_death must be given exactly when outcome is DECEASED")
    performed: datetime = event["performed_at"]
    return {"n_processo": event["case_id"],
            "n_beneficiario": retiree[len(BENEFICIARY_PREFIX):],
            "resultado": OUTCOMES[outcome], "metodo": METHODS[event["method"]],
            "n_certificacao_foshan": event["certification_id"],
            "balcao_foshan": event["agency_id"],
            "data_hora_verificacao": isoformat_local(performed),
            "data_obito": death.isoformat() if death is not None else None}
