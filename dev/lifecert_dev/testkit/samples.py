"""Valid events the test kit feeds a source's partner system: realistic values of every
input type, in time order, for made-up retirees ``KIT<seed>-<n>``."""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import date, datetime, timedelta

from lifecert.events.catalogue import Event
from lifecert.events.time import SHANGHAI

START = datetime(2017, 4, 3, 9, 0, tzinfo=SHANGHAI)
MISSIONS = (("EMBASSY", "CN-EMB-CA", "CA"), ("CONSULATE_GENERAL", "CN-CG-VANCOUVER", "CA"),
            ("TRADE_OFFICE", "CN-TO-PORTMORESBY", "PG"),
            ("CARETAKER_EMBASSY", "CT-CH-FOR-CN-TUVALU", "TV"))
NAMES = ("李秀英", "陈伟", "黄丽娟", "梁国强", "何美玲", "Lam Wing-kei", "张建华", "刘淑珍")


def sample_events(
    carries: Iterable[tuple[str, str | None]], count: int, seed: int
) -> list[Event]:
    """``count`` events of the (type, channel) pairs in ``carries``, cycled, each with a
    ``recorded_at`` a few minutes after the previous one (Asia/Shanghai offsets)."""
    kinds = sorted(carries, key=lambda c: (c[0], c[1] or ""))
    if not kinds:
        raise ValueError("the harness carries no event types")
    rng = random.Random(seed)
    out: list[Event] = []
    at = START + timedelta(days=seed % 30)
    for n in range(count):
        type_name, channel = kinds[n % len(kinds)]
        at += timedelta(minutes=rng.randint(1, 90), seconds=rng.randint(0, 59))
        out.append(_event(type_name, channel, f"KIT{seed}-{n:05d}", n, at, rng))
    return out


def _event(type_name: str, channel: str | None, retiree_id: str, n: int, at: datetime,
           rng: random.Random) -> Event:
    recorded = at.isoformat()
    if type_name == "RetireeEnrolled":
        born = date(1930, 1, 1) + timedelta(days=rng.randint(0, 11000))
        return {"type": type_name, "recorded_at": recorded, "retiree_id": retiree_id,
                "name": NAMES[n % len(NAMES)], "birth_date": born.isoformat(),
                "scheme": "URBAN_EMPLOYEE", "category": "REGULAR", "residence": "FOSHAN",
                "district": rng.choice(["CHANCHENG", "NANHAI", "SHUNDE", "GAOMING", "SANSHUI"]),
                "country": None, "pension_start": "2008-03-01",
                "monthly_amount_fen": rng.randint(150_000, 600_000),
                "disabled": rng.random() < 0.1, "managing_unit": None}
    if type_name == "PensionAmountChanged":
        return {"type": type_name, "recorded_at": recorded, "retiree_id": retiree_id,
                "monthly_amount_fen": rng.randint(150_000, 600_000),
                "effective_month": f"2017-{rng.randint(1, 12):02d}"}
    if type_name == "CertificationRecorded":
        performed = at - timedelta(hours=rng.randint(0, 72), minutes=rng.randint(0, 59))
        return {"type": type_name, "recorded_at": recorded, "certification_id": f"C-{retiree_id}",
                "retiree_id": retiree_id, "channel": channel or "COUNTER",
                "agency_id": f"AG{rng.randint(100, 999)}", "performed_at": performed.isoformat()}
    if type_name == "CertificationDocumentsReceived":
        return {"type": type_name, "recorded_at": recorded, "certification_id": f"C-{retiree_id}",
                "retiree_id": retiree_id, "received_at": (at - timedelta(hours=2)).isoformat()}
    if type_name == "ConsularCaseReceived":
        performed = at - timedelta(hours=rng.randint(1, 48), minutes=rng.randint(0, 59))
        kind, mission, country = rng.choice(MISSIONS)
        return {"type": type_name, "recorded_at": recorded, "case_id": f"LS-{retiree_id}",
                "retiree_id": retiree_id, "mission_id": mission, "mission_kind": kind,
                "country": country, "passport_checked": True,
                "residence_permit_checked": rng.random() < 0.9,
                "face_checked": rng.random() < 0.9, "performed_at": performed.isoformat()}
    if type_name == "DeathRecorded":
        return {"type": type_name, "recorded_at": recorded, "retiree_id": retiree_id,
                "date_of_death": (at.date() - timedelta(days=rng.randint(1, 200))).isoformat(),
                "source": "CIVIL_AFFAIRS"}
    raise ValueError(f"the test kit cannot make a {type_name} (not an input event)")
