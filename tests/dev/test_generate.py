"""The synthetic campaign generator (`lifecert generate`) and the progress reporter."""

from __future__ import annotations

import argparse
import hashlib
import io
import itertools
import json
import re
import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from lifecert.events import catalogue, types
from lifecert.events.catalogue import Event
from lifecert.events.typed import parse_typed
from lifecert.progress import Progress
from lifecert.replay import replay_lines
from lifecert_dev import generate as generate_module
from lifecert_dev.commands import generate as generate_command
from lifecert_dev.generate import (
    CHANNELS,
    CampaignProfile,
    CampaignStats,
    iter_campaign,
    iter_campaign_chunks,
    retiree_id,
    write_campaign,
    write_campaign_file,
)

SHANGHAI = timezone(timedelta(hours=8))
WINDOW_OPEN = date(2017, 4, 1)
DEADLINE = date(2017, 6, 20)
N = 5000
SEED = 2017



def instant(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert value.tzinfo is not None, text
    return value


def local(text: str) -> datetime:
    return instant(text).astimezone(SHANGHAI)


def written_in_utc(text: str) -> bool:
    return text.endswith(("Z", "+00:00"))


@pytest.fixture(scope="module")
def lines() -> list[str]:
    return list(iter_campaign(N, SEED))


@pytest.fixture(scope="module")
def events(lines: list[str]) -> list[Event]:
    return [json.loads(line) for line in lines]


@pytest.fixture(scope="module")
def by_type(events: list[Event]) -> dict[str, list[Event]]:
    out: dict[str, list[Event]] = {t: [] for t in catalogue.INPUT_TYPES}
    for event in events:
        out[event["type"]].append(event)
    return out


@pytest.fixture(scope="module")
def enrolled(by_type: dict[str, list[Event]]) -> dict[str, Event]:
    out: dict[str, Event] = {}
    for event in by_type["RetireeEnrolled"]:
        out.setdefault(event["retiree_id"], event)
    return out


# ---------------------------------------------------------------------------------------
# Determinism and form
# ---------------------------------------------------------------------------------------


def _bytes(retirees: int, seed: int, profile: CampaignProfile | None = None) -> bytes:
    out = io.BytesIO()
    write_campaign(out, retirees, seed, profile)
    return out.getvalue()


def test_same_seed_same_bytes_and_other_seed_differs() -> None:
    first = _bytes(400, 7)
    assert first == _bytes(400, 7)
    assert first != _bytes(400, 8)
    assert first.decode("utf-8") == "".join(iter_campaign(400, 7))


# SHA-256 of campaigns written by the generator as it was before it built its events
# through the typed classes (main at c69b9c0, which wrote each line as text): the typed
# generator must write the same bytes, time spellings (Z, +00:00, +08:00, a consulate's
# offset) and left-out null fields included.
_HOT = {"utc_z_rate": 0.3, "utc_offset_rate": 0.5, "foreign_offset_rate": 1.0,
        "revocation_rate": 0.2, "clash_rate": 0.2, "wrong_death_rate": 0.2,
        "stray_documents_rate": 0.3, "death_rate": 0.3, "redelivery_rate": 0.2,
        "unknown_retiree_rate": 0.2, "residence_weights": (("ABROAD", 1.0), ("FOSHAN", 1.0))}


@pytest.mark.parametrize(("retirees", "seed", "rates", "digest"), [
    (400, 7, {}, "6bb724498da975a2fb8ab83daf0390298337c5f62e4ebefa3d141eebd4e79bad"),
    (300, 5, _HOT, "b0dbf98ee4acd671c4eaa7d4ebe4667aa5b4dbebd6e6cf2a270809abf87cb60d"),
])
def test_the_typed_generator_writes_the_bytes_of_the_text_one(
    retirees: int, seed: int, rates: dict[str, Any], digest: str
) -> None:
    data = _bytes(retirees, seed, CampaignProfile(**rates))
    assert hashlib.sha256(data).hexdigest() == digest
    if rates:  # every spelling of a time is in the hot campaign
        text = data.decode("utf-8")
        assert all(f'{suffix}"' in text for suffix in ("Z", "+00:00", "+08:00", "-07:00"))


def test_each_line_parses_back_to_the_typed_event_it_was_written_from() -> None:
    at = datetime(2017, 5, 2, 1, 30, tzinfo=UTC)
    plus_zero = at.astimezone(generate_module.PLUS_ZERO)
    consular = at.astimezone(timezone(timedelta(hours=-7)))
    events = [
        types.CertificationRecorded(
            event_id="e-1", recorded_at=plus_zero, source_agency="FS-SIB-CITY",
            certification_id="CTR-17-00000001", retiree_id="FS000000001", channel="COUNTER",
            agency_id="FS-NANHAI-OFFICE01", performed_at=consular),
        types.CertificationDocumentsReceived(
            event_id="e-2", recorded_at=at.astimezone(generate_module.SHANGHAI),
            source_agency="FS-SIB-MAILROOM", certification_id="FORM1-17-00000002",
            retiree_id="FS000000001", received_at=plus_zero),
        types.DeathReportRetracted(
            event_id="e-3", recorded_at=at, source_agency="FS-SIB-CITY",
            retiree_id="FS000000001", source="HUKOU_CANCELLATION",
            reason='a "namesake" \\ 同名误报'),
    ]
    lines = [generate_module._line(event) for event in events]
    assert '"recorded_at":"2017-05-02T01:30:00+00:00"' in lines[0]
    assert '"performed_at":"2017-05-01T18:30:00-07:00"' in lines[0]
    assert '"received_at":"2017-05-02T01:30:00+00:00"' in lines[1]
    assert '"recorded_at":"2017-05-02T01:30:00Z"' in lines[2]
    assert '"reason":"a \\"namesake\\" \\\\ 同名误报"' in lines[2]  # JSON, UTF-8
    assert all(f'"{name}"' not in lines[1] for name in (  # left out, not null
        "agency_id", "form_number", "postmarked_on", "scan_sha256"))
    assert [parse_typed(json.loads(line)) for line in lines] == events


def test_stats_match_the_output() -> None:
    out = io.BytesIO()
    stats = write_campaign(out, 300, 1)
    text = out.getvalue().decode("utf-8")
    assert stats.lines == text.count("\n")
    assert stats.bytes == len(out.getvalue())
    counted = Counter(json.loads(line)["type"] for line in text.splitlines())
    assert {k: v for k, v in stats.by_type.items() if v} == dict(counted)
    assert stats.retirees == 300 and stats.seed == 1
    assert str(stats.lines) in stats.summary().replace(",", "")


def test_no_retirees_no_lines() -> None:
    assert _bytes(0, 1) == b""


def _check_value(spec: catalogue.FieldSpec, value: Any, where: str) -> None:
    if value is None:
        assert spec.nullable, f"{where}: null in a non-nullable field"
        return
    kind = spec.kind
    if kind in ("string", "enum", "date", "timestamp", "month"):
        assert type(value) is str, where
    if kind == "enum":
        assert value in spec.symbols, f"{where}: {value!r} not in {spec.symbols}"
    elif kind == "long":
        assert type(value) is int, where
    elif kind == "boolean":
        assert type(value) is bool, where
    elif kind == "date":
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", value), where
        date.fromisoformat(value)
    elif kind == "month":
        assert re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", value), where
    elif kind == "timestamp":
        instant(value)
    elif kind == "string":
        assert value, f"{where}: empty string"


def test_every_line_is_a_valid_input_event(lines: list[str], events: list[Event]) -> None:
    envelope = {f.name: f for f in catalogue.envelope_spec()}
    for line_no, (line, event) in enumerate(zip(lines, events, strict=True), 1):
        assert line.endswith("\n") and "\n" not in line[:-1]
        assert event["type"] in catalogue.INPUT_TYPES, line_no
        spec = catalogue.event_spec(event["type"])
        expected = set(catalogue.ENVELOPE_FIELDS) | {f.name for f in spec.fields}
        # A nullable field added later may be absent (CertificationDocumentsReceived's
        # agency_id, rule 11: the generator's forms do not name their agency).
        required = set(catalogue.ENVELOPE_FIELDS) | {f.name for f in spec.fields if not f.nullable}
        assert required <= set(event) <= expected, f"line {line_no}: {set(event) ^ expected}"
        assert uuid.UUID(event["event_id"]).version == 4
        _check_value(envelope["recorded_at"], event["recorded_at"], f"{line_no} recorded_at")
        assert event["source_agency"] is None or isinstance(event["source_agency"], str)
        for f in spec.fields:
            _check_value(f, event.get(f.name), f"line {line_no} field {f.name}")


def test_generator_vocabulary_is_the_schemas() -> None:
    assert set(CHANNELS) == set(catalogue.enum_symbols("Channel"))


def test_event_ids_unique_except_redeliveries_which_repeat_the_line(
    lines: list[str], events: list[Event]
) -> None:
    seen: dict[str, tuple[int, str]] = {}
    repeats = 0
    for k, (line, event) in enumerate(zip(lines, events, strict=True)):
        if event["event_id"] in seen:
            first, first_line = seen[event["event_id"]]
            assert first_line == line, "a redelivery is the identical line"
            assert k > first
            repeats += 1
        else:
            seen[event["event_id"]] = (k, line)
    assert 0.003 * len(lines) < repeats < 0.03 * len(lines)


def test_times_are_consistent(events: list[Event], by_type: dict[str, list[Event]]) -> None:
    for cert in by_type["CertificationRecorded"]:
        assert instant(cert["recorded_at"]) >= instant(cert["performed_at"])
    for docs in by_type["CertificationDocumentsReceived"]:
        assert instant(docs["recorded_at"]) >= instant(docs["received_at"])
    for event in by_type["RetireeEnrolled"]:
        assert local(event["recorded_at"]).date() < WINDOW_OPEN
        assert local(event["recorded_at"]).year == 2017
    assert all(local(e["recorded_at"]).year == 2017 for e in events)


def test_log_order_is_mostly_by_recorded_at_with_a_few_late_arrivals(
    events: list[Event],
) -> None:
    times = [instant(e["recorded_at"]) for e in events]
    backwards = sum(1 for a, b in itertools.pairwise(times) if b < a)
    assert 0 < backwards < 0.03 * len(events)
    # A late arrival appears after events recorded later than it, within hours or days.
    latest = times[0]
    for t in times:
        assert latest - t < timedelta(days=4)
        latest = max(latest, t)


def test_events_of_a_retiree_come_after_their_enrollment(
    events: list[Event], enrolled: dict[str, Event]
) -> None:
    first_enrollment: dict[str, int] = {}
    for k, event in enumerate(events):
        if event["type"] == "RetireeEnrolled":
            first_enrollment.setdefault(event["retiree_id"], k)
    for k, event in enumerate(events):
        rid = event["retiree_id"]
        if rid in enrolled:
            assert first_enrollment[rid] <= k


# ---------------------------------------------------------------------------------------
# What the campaign covers
# ---------------------------------------------------------------------------------------


def test_population_covers_every_scheme_residence_district_and_category(
    enrolled: dict[str, Event],
) -> None:
    people = list(enrolled.values())
    assert len(people) == N
    assert {p["retiree_id"] for p in people} == {retiree_id(i) for i in range(N)}
    assert {p["scheme"] for p in people} == set(catalogue.enum_symbols("Scheme"))
    assert {p["category"] for p in people} == set(catalogue.enum_symbols("Category"))
    assert {p["residence"] for p in people} == set(catalogue.enum_symbols("Residence"))
    assert {p["district"] for p in people if p["residence"] == "FOSHAN"} == set(
        catalogue.enum_symbols("District"))
    assert all((p["district"] is None) == (p["residence"] != "FOSHAN") for p in people)
    countries = Counter(p["country"] for p in people if p["residence"] == "ABROAD")
    assert len(countries) >= 5 and all(re.fullmatch(r"[A-Z]{2}", c) for c in countries)
    assert {p["country"] for p in people if p["residence"] == "HONG_KONG"} == {"HK"}
    assert {p["country"] for p in people if p["residence"] == "MACAU"} == {"MO"}
    schemes = Counter(p["scheme"] for p in people)
    assert schemes["URBAN_EMPLOYEE"] > 0.7 * N
    assert 0.03 * N < schemes["GOV_INSTITUTION"] < 0.07 * N
    for p in people:
        gov = p["scheme"] == "GOV_INSTITUTION" or p["category"] == "CADRE_RETIREE"
        assert (p["managing_unit"] is not None) == gov
        if gov:
            assert re.fullmatch(r"UNIT-\d{4,}", p["managing_unit"])
        assert p["monthly_amount_fen"] > 0


def test_population_ages_amounts_and_exemptions(enrolled: dict[str, Event]) -> None:
    people = list(enrolled.values())

    def age(p: Event) -> int:
        b = date.fromisoformat(p["birth_date"])
        return DEADLINE.year - b.year - ((DEADLINE.month, DEADLINE.day) < (b.month, b.day))

    ages = [age(p) for p in people]
    assert min(ages) >= 55 and max(ages) <= 100
    assert any(a >= 90 for a in ages)
    assert any(p["birth_date"] == "1937-06-20" for p in people)  # 80 on the deadline day
    exempt = [p for p in people if p["pension_start"] >= "2017-01-01"]
    assert 0.01 * N < len(exempt) < 0.06 * N
    assert all(p["pension_start"].endswith("-01") for p in people)
    disabled = sum(p["disabled"] for p in people)
    assert 0.01 * N < disabled < 0.06 * N
    resident = [p["monthly_amount_fen"] for p in people if p["scheme"] == "URBAN_RURAL_RESIDENT"]
    employee = [p["monthly_amount_fen"] for p in people if p["scheme"] == "URBAN_EMPLOYEE"]
    assert max(resident) < min(employee)


def test_channels_fit_the_people(
    by_type: dict[str, list[Event]], enrolled: dict[str, Event]
) -> None:
    certs = by_type["CertificationRecorded"]
    assert {c["channel"] for c in certs} == set(CHANNELS)
    fits = {
        "FOSHAN": {"FACE_APP", "FACE_COUNTER", "COUNTER", "HOME_VISIT"},
        "GUANGDONG": {"PROVINCIAL_XREGION", "ASSISTED_OFFICE", "ASSISTING_AGENCY",
                      "FACE_APP", "COUNTER"},
        "OTHER_PROVINCE": {"MINISTRY_OFFSITE", "ASSISTED_OFFICE", "ASSISTING_AGENCY",
                           "FACE_APP"},
        "HONG_KONG": {"HK_AGENCY", "FACE_APP"},
        "MACAU": {"MACAU_SSF", "FACE_APP"},
        "ABROAD": {"CONSULATE", "FACE_APP"},
    }
    misfits = Counter()
    gov_by_app = regular_by_batch = 0
    for cert in certs:
        person = enrolled.get(cert["retiree_id"])
        if person is None:
            continue
        gov = person["scheme"] == "GOV_INSTITUTION" or person["category"] == "CADRE_RETIREE"
        if gov:
            if cert["channel"] == "FACE_APP":
                gov_by_app += 1
            else:
                misfits[cert["channel"] != "EMPLOYER_BATCH"] += 1
        elif cert["channel"] == "EMPLOYER_BATCH":
            regular_by_batch += 1
        else:
            misfits[cert["channel"] not in fits[person["residence"]]] += 1
    assert misfits[True] == 0
    assert gov_by_app > 0 and regular_by_batch > 0
    assert gov_by_app + regular_by_batch < 0.01 * len(certs)


def test_employer_batches_record_a_unit_together(by_type: dict[str, list[Event]]) -> None:
    batches = Counter(
        (c["agency_id"], c["recorded_at"][:16])
        for c in by_type["CertificationRecorded"]
        if c["channel"] == "EMPLOYER_BATCH"
    )
    assert max(batches.values()) >= 10
    # recorded at the same instant, written either in UTC or in +08:00
    per_unit_instant = Counter(
        (c["agency_id"], instant(c["recorded_at"]))
        for c in by_type["CertificationRecorded"]
        if c["channel"] == "EMPLOYER_BATCH"
    )
    assert max(per_unit_instant.values()) >= 20


def test_certification_timing(
    by_type: dict[str, list[Event]], enrolled: dict[str, Event]
) -> None:
    certs = [c for c in by_type["CertificationRecorded"] if c["retiree_id"] in enrolled]
    performed = [local(c["performed_at"]).date() for c in certs]
    on_time = sum(WINDOW_OPEN <= d <= DEADLINE for d in performed)
    late = sum(d > DEADLINE for d in performed)
    early = sum(d < WINDOW_OPEN for d in performed)
    assert on_time > 0.80 * N
    assert 0.03 * N < late < 0.10 * N
    assert 0 < early < 0.03 * N
    assert max(performed) >= date(2017, 11, 1)
    certified = {c["retiree_id"] for c in certs}
    never = N - len(certified)
    assert 0.03 * N < never < 0.12 * N
    first: dict[str, Event] = {}  # first record of each certification (no resends)
    for c in certs:
        first.setdefault(c["certification_id"], c)
    per_retiree = Counter(c["retiree_id"] for c in first.values())
    assert any(v >= 2 for v in per_retiree.values())  # some certify twice
    # face channels are recorded within minutes, consulates and the ministry days later
    delay: dict[str, list[timedelta]] = {}
    for c in first.values():
        delay.setdefault(c["channel"], []).append(
            instant(c["recorded_at"]) - instant(c["performed_at"]))
    assert max(delay["FACE_APP"]) < timedelta(minutes=5)
    assert min(delay["CONSULATE"]) >= timedelta(days=1)
    assert min(delay["MINISTRY_OFFSITE"]) > timedelta(hours=6)


def test_window_edges_and_local_midnight_written_in_utc(events: list[Event]) -> None:
    stamps = [
        e[k] for e in events for k in ("recorded_at", "performed_at", "received_at") if k in e
    ]
    near_midnight_utc = [
        s for s in stamps
        if written_in_utc(s) and local(s).hour == 0 and local(s).date() != instant(s).date()
    ]
    assert len(near_midnight_utc) >= 10
    assert any(s.endswith("+08:00") for s in stamps)
    assert sum(written_in_utc(s) for s in stamps) > 0.4 * len(stamps)
    performed = [e["performed_at"] for e in events if e["type"] == "CertificationRecorded"]
    # e.g. 2017-03-31T16:20:00Z: 00:20 on April 1 in Foshan, inside the window
    assert any(s.startswith("2017-03-31T16") and written_in_utc(s) for s in performed)
    assert any(local(s).date() == DEADLINE and local(s).hour == 23 for s in performed)
    assert any(local(s).date() == DEADLINE + timedelta(days=1) and local(s).hour == 0
               for s in performed)
    # consulates sometimes write the post's own offset
    assert any(not s.endswith(("Z", "+00:00", "+08:00")) for s in performed)


def test_paper_forms(by_type: dict[str, list[Event]]) -> None:
    certs: dict[str, Event] = {}
    for c in by_type["CertificationRecorded"]:
        certs.setdefault(c["certification_id"], c)
    paper = {"ASSISTED_OFFICE", "ASSISTING_AGENCY", "CONSULATE", "HK_AGENCY"}
    docs = by_type["CertificationDocumentsReceived"]
    assert docs
    with_forms = {d["certification_id"] for d in docs}
    paper_certs = [c for c in certs.values() if c["channel"] in paper]
    missing = [c for c in paper_certs if c["certification_id"] not in with_forms]
    assert 0 < len(missing) < 0.3 * len(paper_certs)
    late_forms = [
        d for d in docs
        if d["certification_id"] in certs
        and local(certs[d["certification_id"]]["performed_at"]).date() <= DEADLINE
        and local(d["recorded_at"]).date() > DEADLINE
    ]
    assert late_forms
    first_minute = [
        d for d in docs
        if local(d["recorded_at"]).day == 1
        and (local(d["recorded_at"]).hour, local(d["recorded_at"]).minute) == (0, 0)
    ]
    assert first_minute
    for d in docs:
        cert = certs.get(d["certification_id"])
        if cert is not None:
            assert cert["retiree_id"] == d["retiree_id"]
            gap = instant(d["received_at"]) - instant(cert["performed_at"])
            assert timedelta(days=1) < gap < timedelta(days=120)


def test_deaths_late_reports_and_certifications_after_death(
    by_type: dict[str, list[Event]], enrolled: dict[str, Event]
) -> None:
    deaths: dict[str, Event] = {}
    for d in by_type["DeathRecorded"]:
        if d["retiree_id"] in enrolled:
            deaths.setdefault(d["retiree_id"], d)
    assert 0.005 * N < len(deaths) < 0.03 * N
    prompt = [d for d in deaths.values()
              if local(d["recorded_at"]).date() - date.fromisoformat(d["date_of_death"])
              < timedelta(days=30)]
    assert prompt
    # died in spring, reported in autumn: the hold of July happens in between
    late = [d for d in deaths.values()
            if date.fromisoformat(d["date_of_death"]) <= DEADLINE
            and local(d["recorded_at"]).date() >= date(2017, 9, 1)]
    assert late
    after_death_recorded_before = after_death_recorded_after = 0
    for c in by_type["CertificationRecorded"]:
        d = deaths.get(c["retiree_id"])
        if d is None:
            continue
        if local(c["performed_at"]).date() > date.fromisoformat(d["date_of_death"]):
            if instant(c["recorded_at"]) < instant(d["recorded_at"]):
                after_death_recorded_before += 1
            else:
                after_death_recorded_after += 1
    assert after_death_recorded_before > 0
    assert after_death_recorded_after > 0


def test_pension_changes(by_type: dict[str, list[Event]], enrolled: dict[str, Event]) -> None:
    changes = [c for c in by_type["PensionAmountChanged"] if c["retiree_id"] in enrolled]
    months = Counter(c["effective_month"] for c in changes)
    assert months["2017-07"] > 0.1 * N
    assert months["2017-01"] > 0
    for c in changes:
        when = local(c["recorded_at"]).date()
        if c["effective_month"] == "2017-07":
            assert date(2017, 7, 1) <= when < date(2017, 9, 1)
            base = enrolled[c["retiree_id"]]["monthly_amount_fen"]
            assert base < c["monthly_amount_fen"] < base * 1.1
        else:
            assert when >= WINDOW_OPEN


def test_unknown_retirees(events: list[Event], enrolled: dict[str, Event]) -> None:
    unknown = [e for e in events if e["retiree_id"] not in enrolled]
    assert 0 < len(unknown) < 0.005 * len(events)
    assert {e["type"] for e in unknown} >= {"CertificationRecorded"}
    assert all(re.fullmatch(r"FS\d{9}", e["retiree_id"]) for e in unknown)


def test_resent_certifications_and_second_copies(by_type: dict[str, list[Event]]) -> None:
    # same certification, new event id: the partner retried
    ids: dict[str, set[str]] = {}
    for c in by_type["CertificationRecorded"]:
        ids.setdefault(c["certification_id"], set()).add(c["event_id"])
    assert any(len(v) > 1 for v in ids.values())
    retried = {k for k, v in ids.items() if len(v) > 1}
    assert len(retried) < 0.01 * len(ids)


def test_rates_are_parameters() -> None:
    quiet = CampaignProfile(
        redelivery_rate=0.0, late_arrival_rate=0.0, unknown_retiree_rate=0.0, death_rate=0.0,
        raise_rate=0.0, retro_change_rate=0.0, resend_rate=0.0, reenrollment_rate=0.0,
        utc_z_rate=0.0, utc_offset_rate=0.0, foreign_offset_rate=0.0,
    )
    events = [json.loads(line) for line in iter_campaign(500, 3, quiet)]
    types = Counter(e["type"] for e in events)
    assert types["DeathRecorded"] == 0 and types["PensionAmountChanged"] == 0
    assert len({e["event_id"] for e in events}) == len(events)
    assert all(e["recorded_at"].endswith("+08:00") for e in events)
    times = [instant(e["recorded_at"]) for e in events]
    assert times == sorted(times)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"death_rate": 1.5},
        {"on_time_rate": 0.9, "late_rate": 0.2},
        {"residence_weights": (("MARS", 1.0),)},
        {"scheme_weights": ()},
        {"age_min": 70, "age_mode": 60},
    ],
)
def test_profile_rejects_nonsense(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        CampaignProfile(**kwargs)


# ---------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lifecert")
    generate_command.register(parser.add_subparsers(dest="command", required=True))
    return parser


def test_command_writes_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "campaign.jsonl"
    args = _parser().parse_args(["generate", "--retirees", "200", "--seed", "5",
                                 "--out", str(out)])
    assert args.func(args) == 0
    assert out.read_bytes() == _bytes(200, 5)
    assert not list(tmp_path.glob("*.tmp-*"))
    err = capsys.readouterr().err
    assert "RetireeEnrolled" in err and "CertificationRecorded" in err


def test_command_defaults_and_required_arguments() -> None:
    args = _parser().parse_args(["generate", "--retirees", "3", "--out", "x"])
    assert args.seed == 2017
    with pytest.raises(SystemExit):
        _parser().parse_args(["generate", "--out", "x"])
    with pytest.raises(SystemExit):
        _parser().parse_args(["generate", "--retirees", "3"])
    with pytest.raises(SystemExit):
        _parser().parse_args(["generate", "--retirees", "-1", "--out", "x"])


def test_command_writes_to_stdout(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    args = _parser().parse_args(["generate", "--retirees", "50", "--out", "-"])
    assert args.func(args) == 0
    assert capsysbinary.readouterr().out == _bytes(50, 2017)


def test_command_reports_an_unwritable_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = _parser().parse_args(["generate", "--retirees", "5", "--out",
                                 str(tmp_path / "missing" / "x.jsonl")])
    assert args.func(args) == 1
    assert "cannot write" in capsys.readouterr().err


def test_lifecert_main_generate(tmp_path: Path) -> None:
    from lifecert import cli

    out = tmp_path / "c.jsonl"
    assert cli.main(["generate", "--retirees", "30", "--out", str(out)]) == 0
    assert out.read_bytes() == _bytes(30, 2017)


def test_write_campaign_file_returns_stats(tmp_path: Path) -> None:
    out = tmp_path / "c.jsonl"
    calls: list[int] = []
    stats = write_campaign_file(out, 4100, 1, progress=calls.append)
    assert isinstance(stats, CampaignStats)
    assert sum(calls) == 4100 and len(calls) >= 2
    assert stats.bytes == out.stat().st_size


# ---------------------------------------------------------------------------------------
# Progress
# ---------------------------------------------------------------------------------------


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_on_a_pipe_prints_about_every_tenth() -> None:
    stream = io.StringIO()
    progress = Progress(1000, "work", stream=stream, unit="rows")
    for _ in range(1000):
        progress.advance()
    progress.close("done right")
    out = stream.getvalue().splitlines()
    assert 5 <= len(out) <= 11
    assert out[-1].startswith("work: 1,000 rows in ") and out[-1].endswith("; done right")
    assert "\r" not in stream.getvalue()
    progress.close()  # idempotent
    assert stream.getvalue().count("\n") == len(out)


def test_progress_on_a_terminal_draws_a_bar() -> None:
    stream = _Terminal()
    with Progress(10, "bar", stream=stream, min_interval=0.0) as progress:
        for _ in range(10):
            progress.advance()
    text = stream.getvalue()
    assert "\r" in text and "[" in text and "%" in text
    assert text.endswith("\n") and text.count("\n") == 1
    assert "bar: 10 items" in text


def test_progress_without_a_total() -> None:
    stream = io.StringIO()
    progress = Progress(None, "stream", stream=stream)
    progress.advance(5)
    progress.close()
    assert stream.getvalue().startswith("stream: 5 items in ")


# ---------------------------------------------------------------------------------------
# Corrections (rules 11-14)
# ---------------------------------------------------------------------------------------


def test_corrections_are_mixed_in_without_changing_the_rest_of_the_campaign() -> None:
    """Revocations, clashing ids and retracted deaths come from a generator of their own:
    the campaign without them is the same lines less exactly theirs; deterministic."""
    stats = CampaignStats()
    with_them = list(iter_campaign_chunks(N, SEED, stats=stats))
    assert with_them == list(iter_campaign_chunks(N, SEED))
    lines = "".join(with_them).splitlines()
    off = CampaignProfile(revocation_rate=0.0, clash_rate=0.0, wrong_death_rate=0.0)
    without = "".join(iter_campaign_chunks(N, SEED, off)).splitlines()
    extra = Counter(lines) - Counter(without)
    assert not Counter(without) - Counter(lines)
    f = stats.features
    assert f["revoked_certification"] > 0 and f["retracted_death"] > 0
    assert f["clashing_certification_id"] > 0
    assert sum(extra.values()) == (f["revoked_certification"] + 2 * f["retracted_death"]
                                   + f["clashing_certification_id"])
    kinds = Counter(json.loads(line)["type"] for line in extra.elements())
    assert kinds == {"CertificationRevoked": f["revoked_certification"],
                     "DeathReportRetracted": f["retracted_death"],
                     "DeathRecorded": f["retracted_death"],
                     "CertificationRecorded": f["clashing_certification_id"]}
    # A modest share: under 1% of the lines.
    assert sum(extra.values()) < 0.01 * len(lines)


def test_a_campaign_with_corrections_replays_to_every_correcting_instruction() -> None:
    profile = CampaignProfile(revocation_rate=0.05, clash_rate=0.03, wrong_death_rate=0.03)
    result = replay_lines(iter_campaign(3000, 5, profile))
    kinds = Counter(i["type"] for i in result.instructions)
    for kind in ("PaymentReinstated", "OverpaymentCancelled", "PaymentEstateSettled"):
        assert kinds[kind] > 0, kinds
    assert any(i["type"] == "PaymentHoldPlaced" and i["reason"] == "CERTIFICATION_REVOKED"
               for i in result.instructions)
    reasons = Counter(r["reason"] for r in result.rejections)
    # Every revocation names a recorded certification and every retraction a standing death.
    assert reasons["UNKNOWN_CERTIFICATION"] == reasons["NO_DEATH_RECORDED"] == 0, reasons
