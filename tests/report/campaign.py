"""A small hand-made campaign with known figures, shared by the report's tests.

Window 2017-04-01 to 2017-06-20 (foshan-2017).
CHANCHENG: 2 certified by face (app) on 05-10, 1 at the counter on 06-25 (late),
  1 suspended (never certified).
NANHAI: 1 certified by face (counter) on 07-15 (late, after 10 July), 1 deceased and
  1 exempt (outside the rate).
Hong Kong residents (no district): 1 certified through the HK agency on 06-01.
So 6 must certify, 5 have (3 by face, 2 late); on 10 July 4 had (2 by face, 1 late).
"""

from __future__ import annotations

from datetime import date, datetime

from lifecert.report.figures import (
    DeathGroup,
    Figures,
    InstructionGroup,
    RetireeGroup,
    compute,
)

WINDOW_OPENS, DEADLINE = date(2017, 4, 1), date(2017, 6, 20)

RETIREES = [
    RetireeGroup("CERTIFIED", "CHANCHENG", "FOSHAN", "FACE_APP", date(2017, 5, 10), n=2),
    RetireeGroup("CERTIFIED", "CHANCHENG", "FOSHAN", "COUNTER", date(2017, 6, 25)),
    RetireeGroup("SUSPENDED", "CHANCHENG", "FOSHAN", None, None),
    RetireeGroup("CERTIFIED", "NANHAI", "FOSHAN", "FACE_COUNTER", date(2017, 7, 15)),
    RetireeGroup("DECEASED", "NANHAI", "FOSHAN", None, None),
    RetireeGroup("EXEMPT", "NANHAI", "FOSHAN", None, None),
    RetireeGroup("CERTIFIED", None, "HONG_KONG", "HK_AGENCY", date(2017, 6, 1)),
]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


INSTRUCTIONS = [
    # at the deadline moment: 00:00 on 21 June, the instant 20 June ends
    InstructionGroup("PaymentHoldPlaced", at("2017-06-21T00:00:00+08:00"), "NOT_CERTIFIED", 3),
    InstructionGroup("PaymentHoldReleased", at("2017-06-25T10:00:00+08:00"), None, 1, 350_000, 1),
    InstructionGroup("PaymentHoldReleased", at("2017-07-15T09:00:00+08:00"), None, 1, 700_050, 2),
    InstructionGroup("PaymentTerminated", at("2017-05-02T09:00:00+08:00"), "DECEASED", 1),
    InstructionGroup("OverpaymentDetected", at("2017-05-02T09:00:00+08:00"), None, 1, 123_456,
                     1),
    InstructionGroup("FraudSuspected", at("2017-05-03T11:00:00+08:00"),
                     "CERTIFIED_AFTER_DEATH", 1),
    InstructionGroup("HomeVisitDue", at("2017-07-01T00:00:00+08:00"), None, 2),
]


# The deceased one's death, found through the civil-affairs register on 2 May.
DEATHS = [DeathGroup("CIVIL_AFFAIRS", date(2017, 5, 2))]


def figures(as_of: date | None = None) -> Figures:
    return compute("foshan-2017", WINDOW_OPENS, DEADLINE, RETIREES, INSTRUCTIONS, as_of,
                   DEATHS)
