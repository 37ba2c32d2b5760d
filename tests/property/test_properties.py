"""Property tests over small generated event logs.

``event_logs()`` draws a few retirees with random attributes (scheme, category, residence,
age around the 80th birthday, disability, pension start around 2017-01-01), certifications
through every channel with times around the window edges and local midnight written in
various UTC offsets, paper forms (sometimes before their certification), deaths (sometimes
two), amount changes, redeliveries, events without an event_id, retirees never enrolled,
in a log mostly ordered by ``recorded_at`` with a few events moved.

The properties: production == reference; a duplicate delivery changes nothing; back-pay
is the sum of the held months; an open hold means SUSPENDED; who completes on time is
never held; plus a few invariants of the instruction stream.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import random
from collections import Counter
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lifecert.events.catalogue import enum_symbols
from tests.helpers import (
    ReplayImpl,
    examples,
    first_differences,
    normalize,
    reasons,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
DEADLINE_MOMENT = dt.datetime(2017, 6, 21, tzinfo=SHANGHAI)
WINDOW_OPENS = dt.date(2017, 4, 1)
HOLD_MONTH = "2017-07"
FORM_CHANNELS = ("ASSISTED_OFFICE", "ASSISTING_AGENCY", "CONSULATE", "HK_AGENCY")
CHANNELS = enum_symbols("Channel")  # the schema's vocabulary, not the fold's rules
OFFSETS = (
    dt.timezone(dt.timedelta(hours=8)),
    dt.UTC,
    dt.timezone(dt.timedelta(hours=-5)),
    dt.timezone(dt.timedelta(hours=9)),
    dt.timezone(dt.timedelta(hours=5, minutes=30)),
)

SETTINGS = settings(
    max_examples=examples(100),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def local(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=SHANGHAI)  # type: ignore[misc]


# Instants around the edges of the campaign: window, sweep, deadline, month ends.
EDGE_INSTANTS = [
    local(2017, 3, 31, 23, 50),
    local(2017, 4, 1, 0, 20),
    local(2017, 4, 20, 10, 0),
    local(2017, 5, 15, 12, 0),
    local(2017, 5, 31, 23, 59, 59),
    local(2017, 6, 1, 0, 0),
    local(2017, 6, 1, 0, 20),
    local(2017, 6, 12, 9, 0),
    local(2017, 6, 20, 23, 30),
    local(2017, 6, 20, 23, 59, 59),
    local(2017, 6, 21, 0, 0),
    local(2017, 6, 21, 0, 20),
    local(2017, 6, 30, 23, 59, 30),
    local(2017, 7, 1, 0, 0, 30),
    local(2017, 7, 18, 15, 0),
    local(2017, 7, 31, 23, 59, 30),
    local(2017, 8, 1, 0, 0, 30),
    local(2017, 8, 25, 11, 0),
    local(2017, 9, 30, 23, 59, 30),
    local(2017, 10, 1, 0, 0, 30),
    local(2017, 11, 20, 8, 0),
]
EARLY_INSTANTS = [local(2016, 12, 20, 10, 0), local(2017, 2, 10, 10, 0), local(2017, 3, 20, 10)]
JITTER_MINUTES = [0, 0, 0, 0, 1, 17, -3, 60 * 5, 60 * 24 * 2, -60 * 24]
DELAYS = [
    dt.timedelta(0),
    dt.timedelta(0),
    dt.timedelta(minutes=3),
    dt.timedelta(hours=2),
    dt.timedelta(days=1),
    dt.timedelta(days=9),
    dt.timedelta(days=35),
    dt.timedelta(days=70),
]
DOCS_DELAYS = [
    dt.timedelta(days=-2),
    dt.timedelta(hours=1),
    dt.timedelta(days=5),
    dt.timedelta(days=20),
    dt.timedelta(days=50),
]
DEATH_DATES = [
    "2017-02-14",
    "2017-03-31",
    "2017-04-30",
    "2017-05-15",
    "2017-05-31",
    "2017-06-01",
    "2017-06-20",
    "2017-06-21",
    "2017-07-31",
    "2017-08-15",
]
MONTHS = ["2017-03", "2017-05", "2017-06", "2017-07", "2017-08", "2017-09", "2017-10"]
UNTILS = [None, None, None, dt.date(2017, 5, 31), dt.date(2017, 6, 20), dt.date(2017, 7, 31)]


def instants(extra: list[dt.datetime] | None = None) -> st.SearchStrategy[dt.datetime]:
    base = st.sampled_from(EDGE_INSTANTS + (extra or []))
    jitter = st.sampled_from(JITTER_MINUTES)
    return st.builds(lambda t, j: t + dt.timedelta(minutes=j), base, jitter)


# The strategies of one retiree's events, built once: a strategy made inside a draw is a
# new object each time, which hypothesis validates (and labels) again at every example;
# that bookkeeping cost five times the replays it fed.
INSTANTS = instants()
INSTANTS_OR_EARLY = instants(EARLY_INSTANTS)
SCHEMES = st.sampled_from(
    ["URBAN_EMPLOYEE"] * 3 + ["URBAN_RURAL_RESIDENT"] * 2 + ["GOV_INSTITUTION"])
CATEGORIES = st.sampled_from(["REGULAR"] * 4 + ["CADRE_RETIREE"])
RESIDENCES = st.sampled_from(
    ["FOSHAN"] * 4 + ["GUANGDONG", "OTHER_PROVINCE", "HONG_KONG", "MACAU", "ABROAD"])
BIRTH_DATES = st.sampled_from(
    ["1937-06-20", "1937-06-21", "1936-02-29", "1930-05-05", "1950-03-15"])
PENSION_STARTS = st.sampled_from(["2005-03-01"] * 4 + ["2016-12-31", "2017-01-01", "2017-04-15"])
AMOUNTS = st.sampled_from([250_000, 300_000, 412_345])
EMPLOYER_CHANNELS = st.sampled_from(["EMPLOYER_BATCH"] * 4 + list(CHANNELS))
ANY_CHANNEL = st.sampled_from(CHANNELS)
RECORDING_DELAYS = st.sampled_from(DELAYS)
REVOCATIONS = st.sampled_from([0, 0, 1, 1, 2])
# a revocation at an edge instant, or some delay after its certification
REVOKED_AT = st.one_of(INSTANTS, st.sampled_from(DELAYS[1:]))
REVOKING_AGENCIES = {agency: st.sampled_from([agency] * 4 + ["AG-9"])
                     for agency in ("AG-1", "AG-2")}
REVOCATION_REASONS = st.sampled_from(["FRAUD", "MISATTRIBUTED", "ENTERED_IN_ERROR"])
FORM_DELAYS = st.sampled_from(DOCS_DELAYS)
FORM_AGENCIES = {agency: st.sampled_from([agency, agency, "AG-2", "AG-1"])
                 for agency in ("AG-1", "AG-2")}
DEATH_COUNTS = st.sampled_from([0] * 17 + [1] * 4 + [2])
DEATH_COUNTS_WITH_CORRECTIONS = st.sampled_from([0] * 17 + [1] * 4 + [2] + [1] * 8)
DEATH_DATE = st.sampled_from(DEATH_DATES)
DEATH_REPORT_DAYS = st.sampled_from([0, 3, 20, 45, 100])
RETRACTIONS = st.sampled_from([0, 1, 1, 2])
LATER_DELAYS = st.sampled_from(DELAYS[1:])
PHONES = st.sampled_from([None, "+86 757 0000 0001"])
NEW_AMOUNTS = st.sampled_from([260_000, 330_000, 345_678])
EFFECTIVE_MONTHS = st.sampled_from(MONTHS)
MOVES = st.sampled_from([0, 0, 1, 2, 3])
REDELIVERIES = st.sampled_from([0, 0, 1, 2])
RANDOMS = st.randoms(use_true_random=False)
UP_TO = {n: st.integers(0, n) for n in (2, 3, 4, 9, 19, 29)}
COIN = st.booleans()


def after(recorded: dt.datetime, at_or_delay: dt.datetime | dt.timedelta) -> dt.datetime:
    """An instant drawn as it is, a delay after ``recorded``."""
    return at_or_delay if isinstance(at_or_delay, dt.datetime) else recorded + at_or_delay


class _Ids:
    def __init__(self) -> None:
        self.n = 0

    def next(self) -> str:
        self.n += 1
        return f"E{self.n}"


@st.composite
def retiree_events(
    draw: st.DrawFn,
    rid: str,
    index: int,
    ids: _Ids,
    corrections: bool = False,
) -> list[dict[str, Any]]:
    """The events of one retiree (structured: times are datetimes). With ``corrections``,
    also rules 11-14's: certification ids clashing between agencies, forms naming their
    agency (or another), revocations, death retractions, contact updates."""

    def event_id() -> str | None:
        return ids.next() if draw(UP_TO[9]) else None

    events: list[dict[str, Any]] = []
    scheme = draw(SCHEMES)
    category = draw(CATEGORIES)
    residence = draw(RESIDENCES)
    employer_only = scheme == "GOV_INSTITUTION" or category == "CADRE_RETIREE"
    enrolled_at = local(2016, 12, 1, 9, 0) + dt.timedelta(minutes=index)
    presence = draw(UP_TO[29])
    if presence == 0:
        enrolled_at = None  # never enrolled: every event of this retiree is UNKNOWN_RETIREE
    elif presence == 1:
        enrolled_at = draw(INSTANTS)  # enrolled late (maybe after its other events)
    if enrolled_at is not None:
        events.append(
            {
                "type": "RetireeEnrolled",
                "event_id": event_id(),
                "recorded_at": enrolled_at,
                "retiree_id": rid,
                "name": f"Retiree {rid}",
                "birth_date": draw(BIRTH_DATES),
                "scheme": scheme,
                "category": category,
                "residence": residence,
                "district": "NANHAI" if residence == "FOSHAN" else None,
                "country": None,
                "pension_start": draw(PENSION_STARTS),
                "monthly_amount_fen": draw(AMOUNTS),
                "disabled": draw(UP_TO[4]) == 0,
                "managing_unit": "UNIT-1" if employer_only else None,
            }
        )
    if enrolled_at is not None and draw(UP_TO[19]) == 0:
        # enrolled again, differently (ALREADY_ENROLLED: the first enrollment stands)
        events.append(
            dict(
                events[0],
                event_id=ids.next(),
                recorded_at=draw(INSTANTS),
                pension_start="2017-02-01",
                scheme="GOV_INSTITUTION",
                residence="FOSHAN",
                disabled=True,
            )
        )
    for k in range(draw(UP_TO[3])):
        channel = draw(EMPLOYER_CHANNELS if employer_only else ANY_CHANNEL)
        performed = draw(INSTANTS_OR_EARLY)
        recorded = performed + draw(RECORDING_DELAYS)
        cid = f"C-{rid}-{k}"
        agency = "AG-1"
        if corrections and k and draw(UP_TO[2]) == 0:
            cid, agency = f"C-{rid}-0", "AG-2"  # another agency's certification, same id
        cert = {
            "type": "CertificationRecorded",
            "event_id": event_id(),
            "recorded_at": recorded,
            "certification_id": cid,
            "retiree_id": rid,
            "channel": channel,
            "agency_id": agency,
            "performed_at": performed,
        }
        events.append(cert)
        if draw(UP_TO[9]) == 0:  # redelivered by the partner with a new event id
            events.append(
                dict(cert, event_id=ids.next(), recorded_at=recorded + dt.timedelta(days=3))
            )
        for _ in range(draw(REVOCATIONS) if corrections else 0):
            events.append(
                {
                    "type": "CertificationRevoked",
                    "event_id": event_id(),
                    "recorded_at": after(recorded, draw(REVOKED_AT)),
                    "retiree_id": rid,
                    "certification_id": cid,
                    "agency_id": draw(REVOKING_AGENCIES[agency]),
                    "reason": draw(REVOCATION_REASONS),
                }
            )
        wants_docs = draw(UP_TO[9]) < (8 if channel in FORM_CHANNELS else 1)
        if wants_docs:
            docs_at = recorded + draw(FORM_DELAYS)
            form = {
                "type": "CertificationDocumentsReceived",
                "event_id": event_id(),
                "recorded_at": docs_at,
                "certification_id": cid,
                "retiree_id": rid,
                "received_at": docs_at - dt.timedelta(hours=2),
            }
            if corrections and draw(COIN):
                form["agency_id"] = draw(FORM_AGENCIES[agency])
            events.append(form)
            if draw(UP_TO[9]) == 0:  # the form reported twice
                events.append(
                    dict(form, event_id=ids.next(), recorded_at=docs_at + dt.timedelta(days=1))
                )
    deaths = draw(DEATH_COUNTS_WITH_CORRECTIONS if corrections else DEATH_COUNTS)
    for _ in range(deaths):
        died = dt.date.fromisoformat(draw(DEATH_DATE))
        if draw(COIN):
            reported = dt.datetime.combine(died, dt.time(10, 0), tzinfo=SHANGHAI)
            reported += dt.timedelta(days=draw(DEATH_REPORT_DAYS))
        else:
            reported = draw(INSTANTS)
        events.append(
            {
                "type": "DeathRecorded",
                "event_id": event_id(),
                "recorded_at": reported,
                "retiree_id": rid,
                "date_of_death": died.isoformat(),
                "source": "CIVIL_AFFAIRS",
            }
        )
    if corrections:
        deaths_at = [e["recorded_at"] for e in events if e["type"] == "DeathRecorded"]
        for _ in range(draw(RETRACTIONS)):
            at = draw(INSTANTS)
            if deaths_at and draw(COIN):
                at = draw(st.sampled_from(deaths_at)) + draw(LATER_DELAYS)
            events.append(
                {
                    "type": "DeathReportRetracted",
                    "event_id": event_id(),
                    "recorded_at": at,
                    "retiree_id": rid,
                    "source": "FS-SIB-STAFF",
                    "reason": "reported in error",
                }
            )
        if draw(UP_TO[3]) == 0:
            events.append(
                {
                    "type": "ContactDetailsUpdated",
                    "event_id": event_id(),
                    "recorded_at": draw(INSTANTS),
                    "retiree_id": rid,
                    "phone": draw(PHONES),
                    "address": None,
                    "channel": "COUNTER",
                    "agency_id": "AG-1",
                }
            )
    for _ in range(draw(UP_TO[2])):
        events.append(
            {
                "type": "PensionAmountChanged",
                "event_id": event_id(),
                "recorded_at": draw(INSTANTS),
                "retiree_id": rid,
                "monthly_amount_fen": draw(NEW_AMOUNTS),
                "effective_month": draw(EFFECTIVE_MONTHS),
            }
        )
    return events


def _render(rnd: random.Random, event: dict[str, Any]) -> str:
    """One event as a JSON line, each time written in a randomly chosen UTC offset."""
    obj: dict[str, Any] = {}
    for key, value in event.items():
        if key == "event_id" and value is None:
            continue
        if isinstance(value, dt.datetime):
            text = value.astimezone(rnd.choice(OFFSETS)).isoformat()
            if text.endswith("+00:00") and rnd.random() < 0.5:
                text = text[: -len("+00:00")] + "Z"
            obj[key] = text
        else:
            obj[key] = value
    return json.dumps(obj)


@st.composite
def event_logs(
    draw: st.DrawFn, max_retirees: int = 4, corrections: bool = False, in_order: bool = False
) -> list[str]:
    """A small event log as JSON lines, in log order (with rules 11-14's corrections when
    ``corrections``). ``in_order``: every event in recorded_at order, no redelivered line,
    no death reported before it happened (what a payment system sees in real time)."""
    ids = _Ids()
    events: list[dict[str, Any]] = []
    for index in range(draw(st.integers(1, max_retirees))):
        events.extend(
            draw(retiree_events(f"R{index + 1}", index, ids, corrections))
        )
    # Distinct recorded_at instants (so that an instruction's recorded_at names the event
    # that caused it); the first of equal instants keeps its value.
    events.sort(key=lambda e: e["recorded_at"])
    for before, after in itertools.pairwise(events):
        if after["recorded_at"] <= before["recorded_at"]:
            after["recorded_at"] = before["recorded_at"] + dt.timedelta(microseconds=1)
    if not events:
        return []
    # Mostly in recorded_at order, with a few events moved.
    for _ in range(0 if in_order else draw(MOVES)):
        i = draw(st.integers(0, len(events) - 1))
        j = draw(st.integers(0, len(events) - 1))
        events.insert(j, events.pop(i))
    rnd = draw(RANDOMS)
    lines = [_render(rnd, e) for e in events]
    # Exact redeliveries, later in the log.
    for _ in range(0 if in_order else draw(REDELIVERIES)):
        i = draw(st.integers(0, len(lines) - 1))
        j = draw(st.integers(i + 1, len(lines)))
        lines.insert(j, lines[i])
    return lines


# ---------------------------------------------------------------------------------------
# Reading a log back (for the properties that recompute from it)
# ---------------------------------------------------------------------------------------
def parse(lines: list[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines]


def instant(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def local_month(text: str) -> str:
    return instant(text).astimezone(SHANGHAI).strftime("%Y-%m")


def add_month(month: str) -> str:
    year, mon = int(month[:4]), int(month[5:])
    return f"{year + mon // 12:04d}-{mon % 12 + 1:02d}"


def months_from_to(first: str, last: str) -> list[str]:
    out = []
    while first <= last:
        out.append(first)
        first = add_month(first)
    return out


def first_index(events: list[dict[str, Any]], rid: str, kind: str, start: int = 0) -> int | None:
    for index in range(start, len(events)):
        if events[index]["retiree_id"] == rid and events[index]["type"] == kind:
            return index
    return None


def amount_in_force(changes: list[tuple[str, int]], enrolled_amount: int, month: str) -> int:
    """Greatest effective month not after ``month``, the last of equals; else enrolled."""
    best: tuple[str, int] | None = None
    for effective, value in changes:
        if effective <= month and (best is None or effective >= best[0]):
            best = (effective, value)
    return enrolled_amount if best is None else best[1]


def judged_instants(events: list[dict[str, Any]]) -> list[dt.datetime]:
    """The instant each line of a log (no --until) is judged as of, by docs/rules.md
    "Late-logged events": max(recorded_at, K), K the latest recorded_at of the earlier
    lines of the same retiree from its first RetireeEnrolled on and, once a line recorded
    at or after it was read, the deadline moment."""
    out: list[dt.datetime] = []
    latest: dict[str, dt.datetime] = {}  # of the retirees enrolled so far
    deadline_decided = False
    for e in events:
        rid = e["retiree_id"]
        recorded = instant(e["recorded_at"])
        deadline_decided = deadline_decided or recorded >= DEADLINE_MOMENT
        known = [recorded, *([latest[rid]] if rid in latest else [])]
        if deadline_decided:
            known.append(DEADLINE_MOMENT)
        out.append(max(known))
        if rid in latest or e["type"] == "RetireeEnrolled":
            latest[rid] = max(recorded, latest.get(rid, recorded))
    return out


def describe(lines: list[str]) -> str:
    return "\n".join(f"{n:3d} {line}" for n, line in enumerate(lines, start=1))


# ---------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------
@settings(SETTINGS, max_examples=examples(400))
@given(lines=event_logs(), until=st.sampled_from(UNTILS))
def test_production_equals_reference(
    production_impl: ReplayImpl,
    reference_impl: ReplayImpl,
    lines: list[str],
    until: dt.date | None,
) -> None:
    expected = reference_impl(lines, until=until)
    actual = production_impl(lines, until=until)
    want, got = normalize(expected.instructions), normalize(actual.instructions)
    assert got == want, (
        f"instructions differ (until={until})\n{first_differences(want, got)}\n"
        f"log:\n{describe(lines)}"
    )
    assert dict(actual.statuses) == dict(expected.statuses), (
        f"statuses differ (until={until}): reference {dict(expected.statuses)}, "
        f"production {dict(actual.statuses)}\nlog:\n{describe(lines)}"
    )
    want_r, got_r = reasons(expected), reasons(actual)
    assert got_r == want_r, (
        f"rejections differ (until={until})\n{first_differences(want_r, got_r)}\n"
        f"log:\n{describe(lines)}"
    )


@SETTINGS
@given(lines=event_logs(), data=st.data())
def test_duplicate_delivery_changes_nothing(
    replay_impl: ReplayImpl, lines: list[str], data: st.DataObject
) -> None:
    before = replay_impl(lines)
    unknown = {r["line"] for r in before.rejections if r["reason"] == "UNKNOWN_RETIREE"}
    events = parse(lines)
    # Excluded: an event rejected as UNKNOWN_RETIREE (its event_id is not remembered, so a
    # copy after the enrollment is a first delivery), and an amount change without an
    # event_id (nothing identifies it as the same event).
    candidates = [
        i
        for i, e in enumerate(events)
        if i + 1 not in unknown
        and not (e["type"] == "PensionAmountChanged" and "event_id" not in e)
    ]
    if not candidates:
        return
    i = data.draw(st.sampled_from(candidates), label="duplicated line index")
    j = data.draw(st.integers(i + 1, len(lines)), label="inserted at")
    twice = [*lines[:j], lines[i], *lines[j:]]
    after = replay_impl(twice)
    assert normalize(after.instructions) == normalize(before.instructions), describe(twice)
    assert dict(after.statuses) == dict(before.statuses), describe(twice)


@SETTINGS
@given(lines=event_logs())
def test_backpay_is_sum_of_held_months(replay_impl: ReplayImpl, lines: list[str]) -> None:
    result = replay_impl(lines)
    events = parse(lines)
    # The instant each line is judged as of (docs/rules.md "Late-logged events"):
    # max(recorded_at, K). The release is stamped with the instant its cause was judged as of.
    judged = judged_instants(events)
    for release in result.instructions:
        if release["type"] != "PaymentHoldReleased":
            continue
        rid = release["retiree_id"]
        enrolled = first_index(events, rid, "RetireeEnrolled")
        assert enrolled is not None
        at = instant(release["recorded_at"])
        # The cause: one line (several lines judged as of the same K may be it).
        causes = [
            i
            for i in range(enrolled + 1, len(events))
            if events[i]["retiree_id"] == rid
            and events[i]["type"] in ("CertificationRecorded", "CertificationDocumentsReceived")
            and judged[i] == at
        ]
        assert causes, f"no line of {rid} judged as of {at} caused {release}\n{describe(lines)}"
        enrolled_amount = int(events[enrolled]["monthly_amount_fen"])
        completed_in = local_month(release["recorded_at"])
        held = months_from_to(HOLD_MONTH, completed_in)
        assert list(release["backpay_months"]) == held, describe(lines)
        assert release["effective_month"] == max(add_month(completed_in), HOLD_MONTH)
        sums = []
        for cause in causes:
            # Amount changes decided before the cause, in log order (a redelivered copy of
            # one already decided has no effect).
            changes: list[tuple[str, int]] = []
            seen: set[str] = set()
            for e in events[enrolled + 1 : cause]:
                if e["retiree_id"] != rid:
                    continue
                if "event_id" in e:
                    if e["event_id"] in seen:
                        continue
                    seen.add(e["event_id"])
                if e["type"] == "PensionAmountChanged":
                    changes.append((e["effective_month"], e["monthly_amount_fen"]))
            sums.append(sum(amount_in_force(changes, enrolled_amount, m) for m in held))
        assert release["backpay_amount_fen"] in sums, describe(lines)


@SETTINGS
@given(lines=event_logs(), until=st.sampled_from(UNTILS))
def test_open_hold_means_suspended(
    replay_impl: ReplayImpl, lines: list[str], until: dt.date | None
) -> None:
    result = replay_impl(lines, until=until)
    open_hold: dict[str, bool] = {}
    for instruction in result.instructions:
        rid = instruction["retiree_id"]
        if instruction["type"] == "PaymentHoldPlaced":
            open_hold[rid] = True
        elif instruction["type"] in ("PaymentHoldReleased", "PaymentTerminated"):
            open_hold[rid] = False
    for rid, status in result.statuses.items():
        if open_hold.get(rid, False):
            assert status != "CERTIFIED", describe(lines)
            assert status == "SUSPENDED", describe(lines)
        else:
            assert status != "SUSPENDED", describe(lines)


@SETTINGS
@given(lines=event_logs())
def test_completed_on_time_never_held(replay_impl: ReplayImpl, lines: list[str]) -> None:
    """Whoever completes a counting certification before the deadline moment is decided
    (every line before the first one recorded at or after it) is never held."""
    result = replay_impl(lines)
    events = parse(lines)
    deadline_at = next(
        (i for i, e in enumerate(events) if instant(e["recorded_at"]) >= DEADLINE_MOMENT),
        len(events),
    )
    held = {i["retiree_id"] for i in result.instructions if i["type"] == "PaymentHoldPlaced"}
    for rid in {e["retiree_id"] for e in events}:
        enrolled = first_index(events, rid, "RetireeEnrolled")
        if enrolled is None or enrolled >= deadline_at:
            continue
        person = events[enrolled]
        died = first_index(events, rid, "DeathRecorded", enrolled + 1)
        alive_until = deadline_at if died is None else min(died, deadline_at)
        employer_only = person["scheme"] == "GOV_INSTITUTION" or person["category"] == (
            "CADRE_RETIREE"
        )
        for c in range(enrolled + 1, alive_until):
            e = events[c]
            if e["retiree_id"] != rid or e["type"] != "CertificationRecorded":
                continue
            if (e["channel"] == "EMPLOYER_BATCH") != employer_only:
                continue
            if instant(e["performed_at"]).astimezone(SHANGHAI).date() < WINDOW_OPENS:
                continue
            if e["channel"] in FORM_CHANNELS and not any(
                events[d]["retiree_id"] == rid
                and events[d]["type"] == "CertificationDocumentsReceived"
                and events[d]["certification_id"] == e["certification_id"]
                for d in range(enrolled + 1, alive_until)
            ):
                continue
            assert rid not in held, f"{rid} completed on time at line {c + 1}\n{describe(lines)}"


@SETTINGS
@given(lines=event_logs(), until=st.sampled_from(UNTILS))
def test_instruction_stream_invariants(
    replay_impl: ReplayImpl, lines: list[str], until: dt.date | None
) -> None:
    result = replay_impl(lines, until=until)
    kinds = Counter((i["type"], i["retiree_id"]) for i in result.instructions)
    for (kind, rid), count in kinds.items():
        assert rid in result.statuses, f"{kind} for a retiree not enrolled: {rid}"
        if kind in ("PaymentHoldPlaced", "PaymentHoldReleased", "PaymentTerminated"):
            assert count == 1, f"{count} x {kind} for {rid}\n{describe(lines)}"
        if kind in ("HomeVisitDue", "OverpaymentDetected"):
            assert count == 1, f"{count} x {kind} for {rid}\n{describe(lines)}"
    frauds = Counter(
        (i["retiree_id"], i["certification_id"])
        for i in result.instructions
        if i["type"] == "FraudSuspected"
    )
    assert all(n == 1 for n in frauds.values()), describe(lines)
    for rid, status in result.statuses.items():
        assert status in {
            "DECEASED",
            "EXEMPT",
            "SUSPENDED",
            "CERTIFIED",
            "PENDING_DOCUMENTS",
            "NOT_CERTIFIED",
        }
        assert (status == "DECEASED") == (kinds[("PaymentTerminated", rid)] == 1)
        if status == "EXEMPT":
            assert kinds[("PaymentHoldPlaced", rid)] == 0
            assert kinds[("HomeVisitDue", rid)] == 0
    # A release follows its hold; an overpayment follows its termination.
    seen: set[tuple[str, str]] = set()
    for i in result.instructions:
        if i["type"] == "PaymentHoldReleased":
            assert ("PaymentHoldPlaced", i["retiree_id"]) in seen
        if i["type"] == "OverpaymentDetected":
            assert ("PaymentTerminated", i["retiree_id"]) in seen
        seen.add((i["type"], i["retiree_id"]))
