"""Helpers shared by the rule tests and the property tests.

Input builders return one JSON line of the interchange form (DESIGN.md); expected-output
builders return the JSON-form dict of an instruction. ``normalize`` makes two instruction
lists comparable (no ``event_id``, ``recorded_at`` as a UTC instant).

Every input builder gives the event a fresh ``event_id`` unless told otherwise
(``event_id="x"`` to choose it, ``event_id=None`` to leave it out). Re-sending the very
same line is a duplicate delivery.
"""

from __future__ import annotations

import datetime as dt
import difflib
import itertools
import json
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from hypothesis import settings

SHANGHAI_OFFSET = "+08:00"
HOME_VISIT_AT = "2017-06-01T00:00:00+08:00"
DEADLINE_AT = "2017-06-21T00:00:00+08:00"
DEADLINE = "2017-06-20"
HOLD_MONTH = "2017-07"

AUTO = "auto"
_ids = itertools.count(1)


class ReplayResult(Protocol):
    instructions: list[dict[str, Any]]
    statuses: dict[str, str]
    rejections: list[dict[str, Any]]


class ReplayImpl(Protocol):
    def __call__(self, lines: list[str], until: dt.date | None = None) -> ReplayResult: ...


def _line(kind: str, recorded_at: str, event_id: str | None, **fields: Any) -> str:
    obj: dict[str, Any] = {"type": kind}
    if event_id == AUTO:
        event_id = f"ev-{next(_ids):06d}"
    if event_id is not None:
        obj["event_id"] = event_id
    obj["recorded_at"] = recorded_at
    obj.update(fields)
    return json.dumps(obj)


# ---------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------
def enroll(
    retiree_id: str,
    *,
    birth_date: str = "1950-03-15",
    scheme: str = "URBAN_EMPLOYEE",
    category: str = "REGULAR",
    residence: str = "FOSHAN",
    district: str | None = "CHANCHENG",
    country: str | None = "CN",
    pension_start: str = "2010-01-01",
    monthly_amount_fen: int = 300_000,
    disabled: bool = False,
    managing_unit: str | None = None,
    name: str | None = None,
    recorded_at: str = "2017-01-02T09:00:00+08:00",
    event_id: str | None = AUTO,
) -> str:
    return _line(
        "RetireeEnrolled",
        recorded_at,
        event_id,
        retiree_id=retiree_id,
        name=name or f"Retiree {retiree_id}",
        birth_date=birth_date,
        scheme=scheme,
        category=category,
        residence=residence,
        district=district,
        country=country,
        pension_start=pension_start,
        monthly_amount_fen=monthly_amount_fen,
        disabled=disabled,
        managing_unit=managing_unit,
    )


def gov_enroll(retiree_id: str, **kwargs: Any) -> str:
    """A government-institution retiree (certified only by EMPLOYER_BATCH)."""
    kwargs.setdefault("scheme", "GOV_INSTITUTION")
    kwargs.setdefault("managing_unit", "UNIT-1")
    return enroll(retiree_id, **kwargs)


def cert(
    certification_id: str,
    retiree_id: str,
    channel: str,
    *,
    performed_at: str,
    recorded_at: str | None = None,
    agency_id: str = "AG-1",
    event_id: str | None = AUTO,
) -> str:
    """A CertificationRecorded; recorded when performed unless told otherwise."""
    return _line(
        "CertificationRecorded",
        recorded_at or performed_at,
        event_id,
        certification_id=certification_id,
        retiree_id=retiree_id,
        channel=channel,
        agency_id=agency_id,
        performed_at=performed_at,
    )


def docs(
    certification_id: str,
    retiree_id: str,
    *,
    recorded_at: str,
    received_at: str | None = None,
    agency_id: str | None = None,
    event_id: str | None = AUTO,
) -> str:
    """A CertificationDocumentsReceived; received when recorded unless told otherwise;
    naming the certification's agency only when given one (rule 11)."""
    extra = {} if agency_id is None else {"agency_id": agency_id}
    return _line(
        "CertificationDocumentsReceived",
        recorded_at,
        event_id,
        certification_id=certification_id,
        retiree_id=retiree_id,
        received_at=received_at or recorded_at,
        **extra,
    )


def revoke(
    certification_id: str,
    retiree_id: str,
    *,
    recorded_at: str,
    agency_id: str = "AG-1",
    reason: str = "ENTERED_IN_ERROR",
    event_id: str | None = AUTO,
) -> str:
    return _line(
        "CertificationRevoked",
        recorded_at,
        event_id,
        retiree_id=retiree_id,
        certification_id=certification_id,
        agency_id=agency_id,
        reason=reason,
    )


def retract(
    retiree_id: str,
    *,
    recorded_at: str,
    source: str = "FS-SIB-STAFF",
    reason: str = "reported in error",
    event_id: str | None = AUTO,
) -> str:
    return _line(
        "DeathReportRetracted", recorded_at, event_id,
        retiree_id=retiree_id, source=source, reason=reason,
    )


def contact(
    retiree_id: str,
    *,
    recorded_at: str,
    phone: str | None = "+86 757 0000 0000",
    address: str | None = None,
    event_id: str | None = AUTO,
) -> str:
    return _line(
        "ContactDetailsUpdated", recorded_at, event_id,
        retiree_id=retiree_id, phone=phone, address=address, channel="COUNTER",
        agency_id="AG-1",
    )


def death(
    retiree_id: str,
    *,
    date_of_death: str,
    recorded_at: str,
    source: str = "CIVIL_AFFAIRS",
    event_id: str | None = AUTO,
) -> str:
    return _line(
        "DeathRecorded",
        recorded_at,
        event_id,
        retiree_id=retiree_id,
        date_of_death=date_of_death,
        source=source,
    )


def amount(
    retiree_id: str,
    monthly_amount_fen: int,
    effective_month: str,
    *,
    recorded_at: str,
    event_id: str | None = AUTO,
) -> str:
    return _line(
        "PensionAmountChanged",
        recorded_at,
        event_id,
        retiree_id=retiree_id,
        monthly_amount_fen=monthly_amount_fen,
        effective_month=effective_month,
    )


def without_event_id(line: str) -> str:
    obj = json.loads(line)
    obj.pop("event_id", None)
    return json.dumps(obj)


def with_event_id(line: str, event_id: str) -> str:
    obj = json.loads(line)
    obj["event_id"] = event_id
    return json.dumps(obj)


# ---------------------------------------------------------------------------------------
# Expected instructions
# ---------------------------------------------------------------------------------------
def hold_placed(
    retiree_id: str,
    *,
    recorded_at: str = DEADLINE_AT,
    effective_month: str = HOLD_MONTH,
    reason: str = "NOT_CERTIFIED",
) -> dict[str, Any]:
    return {
        "type": "PaymentHoldPlaced",
        "recorded_at": recorded_at,
        "retiree_id": retiree_id,
        "effective_month": effective_month,
        "reason": reason,
    }


def reinstated(
    retiree_id: str,
    effective_month: str,
    backpay_months: list[str],
    backpay_amount_fen: int,
    *,
    recorded_at: str,
) -> dict[str, Any]:
    return {
        "type": "PaymentReinstated",
        "recorded_at": recorded_at,
        "retiree_id": retiree_id,
        "effective_month": effective_month,
        "backpay_months": backpay_months,
        "backpay_amount_fen": backpay_amount_fen,
    }


def overpayment_cancelled(
    retiree_id: str, months: list[str], amount_fen: int, *, recorded_at: str
) -> dict[str, Any]:
    return {
        "type": "OverpaymentCancelled",
        "recorded_at": recorded_at,
        "retiree_id": retiree_id,
        "months": months,
        "amount_fen": amount_fen,
    }


def estate_settled(
    retiree_id: str, months: list[str], amount_fen: int, *, recorded_at: str
) -> dict[str, Any]:
    return {
        "type": "PaymentEstateSettled",
        "recorded_at": recorded_at,
        "retiree_id": retiree_id,
        "months": months,
        "amount_fen": amount_fen,
    }


def hold_released(
    retiree_id: str,
    effective_month: str,
    backpay_months: list[str],
    backpay_amount_fen: int,
    *,
    recorded_at: str,
) -> dict[str, Any]:
    return {
        "type": "PaymentHoldReleased",
        "recorded_at": recorded_at,
        "retiree_id": retiree_id,
        "effective_month": effective_month,
        "backpay_months": backpay_months,
        "backpay_amount_fen": backpay_amount_fen,
    }


def terminated(retiree_id: str, effective_month: str, *, recorded_at: str) -> dict[str, Any]:
    return {
        "type": "PaymentTerminated",
        "recorded_at": recorded_at,
        "retiree_id": retiree_id,
        "effective_month": effective_month,
        "reason": "DECEASED",
    }


def overpayment(
    retiree_id: str, months: list[str], amount_fen: int, *, recorded_at: str
) -> dict[str, Any]:
    return {
        "type": "OverpaymentDetected",
        "recorded_at": recorded_at,
        "retiree_id": retiree_id,
        "months": months,
        "amount_fen": amount_fen,
    }


def fraud(retiree_id: str, certification_id: str, *, recorded_at: str) -> dict[str, Any]:
    return {
        "type": "FraudSuspected",
        "recorded_at": recorded_at,
        "retiree_id": retiree_id,
        "certification_id": certification_id,
        "reason": "CERTIFIED_AFTER_DEATH",
    }


def home_visit(retiree_id: str, *, recorded_at: str = HOME_VISIT_AT) -> dict[str, Any]:
    return {
        "type": "HomeVisitDue",
        "recorded_at": recorded_at,
        "retiree_id": retiree_id,
        "due_date": DEADLINE,
    }


# ---------------------------------------------------------------------------------------
# Comparison
# ---------------------------------------------------------------------------------------
def utc_instant(text: str) -> str:
    value = dt.datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError(f"recorded_at without an offset: {text!r}")
    return value.astimezone(dt.UTC).isoformat()


def normalize(instructions: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Instructions made comparable: without the envelope's ``event_id`` and
    ``source_agency`` (metadata, not decisions), ``recorded_at`` as a UTC instant, month
    lists as lists."""
    out = []
    for instruction in instructions:
        item = dict(instruction)
        item.pop("event_id", None)
        item.pop("source_agency", None)
        item["recorded_at"] = utc_instant(str(item["recorded_at"]))
        for key in ("backpay_months", "months"):
            if key in item:
                item[key] = list(item[key])
        out.append(item)
    return out


def reasons(result: ReplayResult) -> list[tuple[int, str]]:
    """(line, reason) of every rejection, in line order."""
    return sorted((int(r["line"]), str(r["reason"])) for r in result.rejections)


def of_retiree(instructions: Iterable[Mapping[str, Any]], retiree_id: str) -> list[dict[str, Any]]:
    return [dict(i) for i in instructions if i["retiree_id"] == retiree_id]


def first_differences(expected: list[Any], actual: list[Any], *, limit: int = 5) -> str:
    """A readable account of where two lists first differ (for assertion messages): the
    first ``limit`` blocks of a sequence diff, with their positions, so that one missing
    item shows as one missing item rather than as every later item shifted."""
    left, right = [repr(x) for x in expected], [repr(x) for x in actual]
    matcher = difflib.SequenceMatcher(a=left, b=right, autojunk=False)
    lines = [f"lengths: expected {len(expected)}, actual {len(actual)}"]
    shown = 0
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            continue
        lines.append(f"{op} expected[{i1}:{i2}] / actual[{j1}:{j2}]:")
        lines.extend(f"  - expected[{i}]: {left[i]}" for i in range(i1, min(i2, i1 + 3)))
        lines.extend(f"  + actual[{j}]:   {right[j]}" for j in range(j1, min(j2, j1 + 3)))
        shown += 1
        if shown >= limit:
            break
    return "\n".join(lines)


def examples(thorough: int) -> int:
    """A property's example count: ``thorough`` under the thorough Hypothesis profile
    (``make test``: every property at its full count), a tenth of it in the quick loop
    (the default profile of tests/conftest.py). Call it where the test is decorated, once
    the profile is loaded."""
    return max(1, thorough * settings().max_examples // THOROUGH_EXAMPLES)


#: the max_examples of the thorough profile (Hypothesis's own default)
THOROUGH_EXAMPLES = 100


