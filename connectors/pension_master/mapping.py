"""Master outbox row -> lifecert event, with a precise reason for every row that cannot be.

Pure functions (no database), so every rejection is unit-tested on its own. A reason
names the outbox field or payload field at fault, the value and what to do; the runner
adds the connector and the outbox id.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from connectors.pension_master import codes
from connectors.sdk.base import Event
from connectors.sdk.errors import RecordRejected
from lifecert.events import bounds
from lifecert.events.interchange import loads
from lifecert.events.time import isoformat_local

FIX = "correct it in the master system (its next change writes a new outbox row)"


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One row of ``master.outbox`` as read; ``payload`` is the jsonb as text."""

    id: int
    xid: int
    aggregate_id: str
    event_kind: str
    payload: str
    occurred_at: datetime

    def raw(self) -> bytes:
        """The row as JSON bytes (what a dead letter keeps): the payload verbatim."""
        head = json.dumps({
            "id": self.id, "xid": self.xid, "aggregate_id": self.aggregate_id,
            "event_kind": self.event_kind, "occurred_at": self.occurred_at.isoformat(),
        }, ensure_ascii=False)
        return f'{head[:-1]}, "payload": {self.payload}}}'.encode()


def to_events(row: OutboxRow) -> list[Event]:
    """The lifecert events of one outbox row (one each); RecordRejected otherwise."""
    if row.event_kind not in _MAPPERS:
        raise RecordRejected(
            f"unknown event_kind {row.event_kind!r} (this connector reads "
            f"{', '.join(codes.KINDS)}); upgrade the connector if the master system "
            f"added a kind")
    try:
        payload = loads(row.payload)
    except ValueError as exc:  # nested too deeply included
        raise RecordRejected(f"{row.event_kind}: payload is not JSON ({exc})") from None
    if type(payload) is not dict:
        raise RecordRejected(f"{row.event_kind}: payload is a JSON "
                             f"{type(payload).__name__}, expected an object; {FIX}")
    fields = _Fields(row, payload)
    if fields.person() != row.aggregate_id:
        raise RecordRejected(
            f"{row.event_kind}: payload person_no {bounds.show(payload['person_no'])} differs "
            f"from the row's aggregate_id {bounds.show(row.aggregate_id)}; the master wrote "
            f"an inconsistent outbox row, {FIX}")
    event = _MAPPERS[row.event_kind](fields)
    event["recorded_at"] = isoformat_local(row.occurred_at)
    return [event]


def _enrolled(f: _Fields) -> Event:
    return {
        "type": "RetireeEnrolled",
        "retiree_id": f.person(),
        "name": f.text("full_name"),
        "birth_date": f.day("birth_date"),
        "scheme": f.code("insurance_type", codes.SCHEME),
        "category": f.code("personnel_class", codes.CATEGORY),
        "residence": f.code("residence_type", codes.RESIDENCE),
        "district": f.code("district_code", codes.DISTRICT, nullable=True),
        "country": f.country("country_code"),
        "pension_start": f.day("start_date"),
        "monthly_amount_fen": f.fen("monthly_amount_fen"),
        "disabled": f.flag("disability_flag"),
        "managing_unit": f.text("unit_name", nullable=True),
    }


def _amount_changed(f: _Fields) -> Event:
    return {
        "type": "PensionAmountChanged",
        "retiree_id": f.person(),
        "monthly_amount_fen": f.fen("amount_fen"),
        "effective_month": f.month("effective_month"),
    }


_MAPPERS = {codes.ENROLLED: _enrolled, codes.AMOUNT_CHANGED: _amount_changed}


class _Fields:
    """Typed access to the payload's fields; each getter rejects the row with the field's
    name, the value found and what was expected."""

    def __init__(self, row: OutboxRow, payload: dict[str, Any]) -> None:
        self.kind = row.event_kind
        self.payload = payload

    def _reject(self, name: str, problem: str) -> RecordRejected:
        return RecordRejected(f"{self.kind}: payload field {name!r} {problem}; {FIX}")

    def _get(self, name: str, nullable: bool) -> Any:
        if name not in self.payload:
            raise self._reject(name, "is missing")
        value = self.payload[name]
        if value is None and not nullable:
            raise self._reject(name, "is null")
        return value

    def _bad(self, name: str, value: Any, expected: str) -> RecordRejected:
        try:
            shown = json.dumps(value)[:60]  # ASCII: control characters escaped
        except (ValueError, RecursionError):
            shown = bounds.show(value)
        return self._reject(name, f"is {shown}, expected {expected}")

    def text(self, name: str, *, nullable: bool = False) -> Any:
        value = self._get(name, nullable)
        if value is None:
            return None
        if type(value) is not str or not value.strip():
            raise self._bad(name, value, "a non-empty string")
        problem = bounds.text_problem(value)
        if problem is not None:
            raise self._reject(name, problem)
        return value

    def person(self) -> str:
        """``person_no``: the retiree id, checked against its pattern."""
        value = self.text("person_no")
        problem = bounds.id_problem("retiree_id", value)
        if problem is not None:
            raise self._reject("person_no", problem)
        return str(value)

    def code(self, name: str, table: Any, *, nullable: bool = False) -> str | None:
        value = self._get(name, nullable)
        if value is None:
            return None
        if type(value) is not str or value not in table:
            known = ", ".join(f"{code} ({meaning})" for code, meaning in table.items())
            raise self._bad(name, value, f"one of the codes {known}")
        return str(table[value])

    def flag(self, name: str) -> bool:
        value = self._get(name, False)
        if type(value) is not str or value not in codes.FLAG:
            raise self._bad(name, value, 'the flag "1" or "0"')
        return codes.FLAG[value]

    def fen(self, name: str) -> int:
        value = self._get(name, False)
        if type(value) is not int:
            raise self._bad(name, value, "an integer amount in fen")
        if value < 0:
            raise self._bad(name, value, "an amount of 0 fen or more")
        if value > bounds.LONG_MAX:
            raise self._bad(name, value, f"an amount of at most {bounds.LONG_MAX} fen")
        return value

    def day(self, name: str) -> str:
        value = self._get(name, False)
        try:
            if type(value) is not str or len(value) != 8 or not value.isascii() \
                    or not value.isdigit():
                raise ValueError
            day = date(int(value[:4]), int(value[4:6]), int(value[6:]))
        except ValueError:
            raise self._bad(name, value, "a date as YYYYMMDD") from None
        problem = bounds.year_problem(day)
        if problem is not None:
            raise self._reject(name, problem)
        return day.isoformat()

    def month(self, name: str) -> str:
        value = self._get(name, False)
        if (type(value) is not str or len(value) != 6 or not value.isascii()
                or not value.isdigit() or not 1 <= int(value[4:]) <= 12):
            raise self._bad(name, value, "a month as YYYYMM")
        problem = bounds.year_problem(int(value[:4]))
        if problem is not None:
            raise self._reject(name, problem)
        return f"{value[:4]}-{value[4:]}"

    def country(self, name: str) -> str | None:
        value = self._get(name, True)
        if value is None:
            return None
        if type(value) is not str or len(value) != 2 or not value.isascii() \
                or not value.isalpha() or not value.isupper():
            raise self._bad(name, value, "an ISO 3166-1 alpha-2 code such as \"CA\"")
        return value
