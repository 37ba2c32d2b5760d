"""Synthetic 2017 certification campaign: the input events a hub would receive.

``lifecert generate`` writes them; tests, the demo and the benchmark read them. The
output is JSON lines in the interchange form of DESIGN.md, one event per line, in **log
order** (the order the hub receives them), each with ``type``, ``event_id``,
``recorded_at``, ``source_agency`` and the fields of its type.

The campaign (rates are fields of :class:`CampaignProfile`):

- ``RetireeEnrolled`` for every retiree, recorded January-March 2017 (a data migration on
  working days), in retiree order;
- ``CertificationRecorded`` through the channel that fits the person (residence, scheme,
  age), mostly on time (April 1 - June 20), some late (to December), some never, some
  twice; government and cadre retirees certified in batches by their managing unit; small
  rates of mistakes (wrong channel, performed before the window) and resent records;
- ``CertificationDocumentsReceived`` for paper-form channels, days to weeks later (some
  after the deadline, some never, some in the first minute of a month);
- ``DeathRecorded`` for ~1.5%, reported promptly or months late, with certifications
  performed after the death for some (fraud);
- ``PensionAmountChanged``: the 2017 raise effective 2017-07 and retroactive corrections;
- corrections (rules 11-14): a few certifications revoked weeks later by their agency, a
  few recorded by a second agency under the same certification id just before the first
  (the ids clash; each agency's counts), and a few deaths reported in error and retracted
  days to weeks later. They draw on a random generator of their own (seeded from
  ``seed``), so the rest of the campaign is as it was without them;
- partner-feed realities: redelivered events (identical line), late arrivals (out of
  ``recorded_at`` order), events for never-enrolled retirees, times written in UTC, in
  +08:00 and (consulates) in the office's own offset, many near local midnight.

Everything is a deterministic function of ``(retirees, seed, profile)``: the same inputs
give byte-identical output. Memory: retirees are generated in enrollment order; each
event is rendered at once and kept, as its line, in the bucket of its log day; days
before the current enrollment day are written out as soon as no later retiree can add
to them. The April-December days are held until the end: peak memory is about 0.6 KiB
per retiree (~620 MB resident for 1,000,000 retirees, ~2.4 million lines, ~820 MB file).

Internal time is integer seconds since 2017-01-01T00:00 Asia/Shanghai (UTC+8, no DST);
``day`` numbers count local days from 2017-01-01 (day 0).

Every event is built as its typed class (:mod:`lifecert.events.types`, generated from the
``.avsc`` schemas: a field it lacks or does not have fails at once, mypy checks the values)
and written by one function, :func:`_line`. A time is written in the offset of its value
(UTC, +08:00, a consulate's), UTC as ``Z`` or, when its value's zone is
:data:`PLUS_ZERO`, as ``+00:00``: the spellings partners use, drawn by the generator.
"""

from __future__ import annotations

import math
import os
import random
from bisect import bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, timedelta, timezone
from itertools import count
from operator import attrgetter, itemgetter
from typing import BinaryIO, cast

import msgspec

from lifecert.events.record import EventRecord
from lifecert.events.types import (
    CertificationDocumentsReceived,
    CertificationRecorded,
    CertificationRevoked,
    Channel,
    DeathRecorded,
    DeathReportRetracted,
    District,
    PensionAmountChanged,
    Residence,
    RetireeEnrolled,
    RevocationReason,
    Scheme,
)

__all__ = [
    "CHANNELS",
    "CampaignProfile",
    "CampaignStats",
    "iter_campaign",
    "iter_campaign_chunks",
    "retiree_id",
    "write_campaign",
    "write_campaign_file",
]

# --------------------------------------------------------------------------------------
# Calendar
# --------------------------------------------------------------------------------------

_DAY = 86_400
_HOUR = 3_600
_SHANGHAI = 8 * _HOUR
_EPOCH = date(2017, 1, 1)
_FIRST_DAY = -400  # first day in the tables (2015-11-28)
_LAST_DAY = 800  # one past the last day in the tables (2019-03)


def _day(d: date) -> int:
    return (d - _EPOCH).days


WINDOW_OPEN_DAY = _day(date(2017, 4, 1))  # 90
DEADLINE_DAY = _day(date(2017, 6, 20))  # 170
HOME_VISIT_SWEEP_DAY = _day(date(2017, 6, 1))
HORIZON_DAY = _day(date(2018, 1, 1))  # events recorded from here on are not in the file
_LATE_LAST_DAY = _day(date(2017, 12, 20))
_BUCKETS = _day(date(2018, 2, 1))  # log-order buckets; later keys go to the last one

_DATES: list[date] = [_EPOCH + timedelta(days=d) for d in range(_FIRST_DAY, _LAST_DAY)]

# 2017 mainland public holidays and the weekend days worked in exchange (State Council).
_HOLIDAYS = {
    date(2017, 1, 2),
    *(date(2017, 1, 27) + timedelta(days=k) for k in range(7)),
    *(date(2017, 4, 2) + timedelta(days=k) for k in range(3)),
    *(date(2017, 4, 29) + timedelta(days=k) for k in range(3)),
    *(date(2017, 5, 28) + timedelta(days=k) for k in range(3)),
    *(date(2017, 10, 1) + timedelta(days=k) for k in range(8)),
    date(2018, 1, 1),
}
_WORKED_WEEKENDS = {date(2017, 1, 22), date(2017, 2, 4), date(2017, 4, 1), date(2017, 5, 27),
                    date(2017, 9, 30)}


def _is_workday(d: date) -> bool:
    if d in _WORKED_WEEKENDS:
        return True
    return d.weekday() < 5 and d not in _HOLIDAYS


_WORKDAY: list[bool] = [
    _is_workday(_EPOCH + timedelta(days=d)) for d in range(_FIRST_DAY, _LAST_DAY)
]


def _next_workday_table() -> list[int]:
    n = len(_WORKDAY)
    out = [0] * n
    nxt = _LAST_DAY - 1
    for k in range(n - 1, -1, -1):
        if _WORKDAY[k]:
            nxt = k + _FIRST_DAY
        out[k] = nxt
    return out


_NEXT_WORKDAY: list[int] = _next_workday_table()  # index day - _FIRST_DAY


def _next_month_start_table() -> list[int]:
    out = []
    for d in range(_FIRST_DAY, _LAST_DAY):
        x = _EPOCH + timedelta(days=d)
        first = date(x.year + (x.month == 12), x.month % 12 + 1, 1)
        out.append(_day(first))
    return out


_NEXT_MONTH_START: list[int] = _next_month_start_table()  # index day - _FIRST_DAY

# --------------------------------------------------------------------------------------
# Vocabulary
# --------------------------------------------------------------------------------------

CHANNELS: tuple[Channel, ...] = (
    "FACE_APP",
    "FACE_COUNTER",
    "COUNTER",
    "PROVINCIAL_XREGION",
    "MINISTRY_OFFSITE",
    "ASSISTED_OFFICE",
    "ASSISTING_AGENCY",
    "CONSULATE",
    "HK_AGENCY",
    "MACAU_SSF",
    "EMPLOYER_BATCH",
    "HOME_VISIT",
)
(
    _FACE_APP,
    _FACE_COUNTER,
    _COUNTER,
    _XREGION,
    _MINISTRY,
    _ASSISTED,
    _ASSISTING,
    _CONSULATE,
    _HK,
    _MACAU,
    _BATCH,
    _HOME_VISIT,
) = range(len(CHANNELS))
_CH_INDEX: dict[str, int] = {name: k for k, name in enumerate(CHANNELS)}
_PAPER = frozenset({_ASSISTED, _ASSISTING, _CONSULATE, _HK})
_CERT_PREFIX = ("FAPP", "FCTR", "CTR", "GDXR", "MOHRSS", "AOFF", "FORM1", "FORM2", "HKA",
                "MOSSF", "BATCH", "HV")

_SCHEMES: tuple[Scheme, ...] = ("URBAN_EMPLOYEE", "URBAN_RURAL_RESIDENT", "GOV_INSTITUTION")
_RESIDENCES: tuple[Residence, ...] = ("FOSHAN", "GUANGDONG", "OTHER_PROVINCE", "HONG_KONG",
                                      "MACAU", "ABROAD")
_DISTRICTS: tuple[District, ...] = ("CHANCHENG", "NANHAI", "SHUNDE", "GAOMING", "SANSHUI")

_GD_CITIES = ("GUANGZHOU", "SHENZHEN", "ZHUHAI", "SHANTOU", "SHAOGUAN", "HEYUAN", "MEIZHOU",
              "HUIZHOU", "SHANWEI", "DONGGUAN", "ZHONGSHAN", "JIANGMEN", "YANGJIANG",
              "ZHANJIANG", "MAOMING", "ZHAOQING", "QINGYUAN", "CHAOZHOU", "JIEYANG", "YUNFU")
_OTHER_PLACES = ("HN-CHANGSHA", "HN-HENGYANG", "GX-NANNING", "GX-WUZHOU", "HB-WUHAN",
                 "JX-GANZHOU", "SC-CHENGDU", "HA-ZHENGZHOU", "BJ-BEIJING", "SH-SHANGHAI",
                 "FJ-XIAMEN", "HI-HAIKOU", "CQ-CHONGQING", "ZJ-HANGZHOU")
# Consular posts per country, with the UTC offset of their office (summer time, 2017).
_POSTS: dict[str, tuple[tuple[str, int], ...]] = {
    "US": (("SF", -7), ("LA", -7), ("NY", -4), ("CHI", -5), ("HOU", -5)),
    "CA": (("VAN", -7), ("TOR", -4)),
    "AU": (("SYD", 10), ("MEL", 10)),
    "GB": (("LDN", 1), ("MAN", 1)),
    "SG": (("SIN", 8),),
    "NZ": (("AKL", 12),),
    "MY": (("KUL", 8),),
    "JP": (("TKO", 9), ("OSA", 9)),
    "DE": (("BER", 2), ("FRA", 2)),
    "TH": (("BKK", 7),),
}
_ASSISTING_KINDS = ("POLICE", "STREET", "COMMUNITY")
_REVOCATION_REASONS: tuple[RevocationReason, ...] = ("FRAUD", "MISATTRIBUTED", "ENTERED_IN_ERROR")
_RETRACTION_REASONS = (
    "hukou of a namesake cancelled in error",
    "the retiree came to the counter in person",
    "wrong id number on the cremation record (同名误报)",
)
_DEATH_SOURCES_LOCAL = ("CREMATION_RECORD", "HUKOU_CANCELLATION", "FAMILY_REPORT",
                        "HOSPITAL_REPORT")

_SURNAMES = "陈李黄梁何吴张罗林刘谭冯周邓麦区潘杨叶郭苏卢关霍招胡钟孔伍谢"
_GIVEN = "伟明华强英芳丽玉珍兰桂秀金荣国志建文辉燕红萍平雄坤彩妹娣好根发财福添耀权洪锦汉惠群蓉霞"

# App use by local hour (the app is open day and night; some use it around midnight).
_APP_HOUR_WEIGHTS = (1.6, 0.7, 0.3, 0.2, 0.2, 0.5, 2, 4, 6, 8, 9, 8, 5, 4, 6, 7, 7, 6, 5, 6,
                     7, 6, 4, 2.6)

_ID_MULTIPLIER = 387_420_489  # 3**18: coprime with 10**9, so ids are a bijection of indices
_ID_SPACE = 1_000_000_000
_ID_OFFSET = 104_729

# --------------------------------------------------------------------------------------
# Profile and stats
# --------------------------------------------------------------------------------------

Weights = tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class CampaignProfile:
    """Rates and mixes of a synthetic campaign. All rates are probabilities in [0, 1].

    The defaults describe a plausible Foshan 2017 campaign; tests raise rates to make rare
    cases common. Weights need not sum to 1.
    """

    # -- population ------------------------------------------------------------------
    scheme_weights: Weights = (
        ("URBAN_EMPLOYEE", 0.80), ("URBAN_RURAL_RESIDENT", 0.15), ("GOV_INSTITUTION", 0.05))
    cadre_rate: float = 0.03  # CADRE_RETIREE among URBAN_EMPLOYEE and GOV_INSTITUTION
    residence_weights: Weights = (
        ("FOSHAN", 0.86), ("GUANGDONG", 0.05), ("OTHER_PROVINCE", 0.045), ("HONG_KONG", 0.02),
        ("MACAU", 0.01), ("ABROAD", 0.015))
    district_weights: Weights = (
        ("CHANCHENG", 0.20), ("NANHAI", 0.33), ("SHUNDE", 0.30), ("GAOMING", 0.08),
        ("SANSHUI", 0.09))
    country_weights: Weights = (
        ("US", 0.30), ("CA", 0.18), ("AU", 0.14), ("GB", 0.08), ("SG", 0.08), ("NZ", 0.05),
        ("MY", 0.05), ("JP", 0.04), ("DE", 0.04), ("TH", 0.04))
    age_min: int = 55  # age on the deadline day
    age_max: int = 100
    age_mode: int = 63
    turning_80_rate: float = 0.002  # born 2017-06-20 minus 80 years (or a day later)
    exempt_rate: float = 0.03  # pension_start during 2017: out of scope
    disabled_rate: float = 0.03
    female_rate: float = 0.52  # only shapes the retirement age (50/55 or 60)
    employee_amount_fen: tuple[int, int, int] = (150_000, 260_000, 600_000)  # low, mode, high
    resident_amount_fen: tuple[int, int, int] = (12_000, 25_000, 90_000)
    gov_amount_fen: tuple[int, int, int] = (350_000, 520_000, 1_000_000)
    unit_mean_size: int = 40  # government / cadre retirees per managing unit

    # -- certification behaviour -------------------------------------------------------
    on_time_rate: float = 0.88  # performed in the window
    late_rate: float = 0.05  # performed after the deadline; the rest never certify
    late_mean_days: float = 35.0  # mean delay after the deadline of a late certification
    twice_rate: float = 0.03  # a second certification, days after the first
    pre_window_rate: float = 0.01  # an extra certification performed in March
    window_edge_rate: float = 0.01  # app users certifying in the hour around a window edge
    resend_rate: float = 0.003  # the same certification resent with a new event_id
    reenrollment_rate: float = 0.0005  # a migration batch loaded twice: enrolled again
    gov_face_app_rate: float = 0.03  # government/cadre retiree also tries the app (rejected)
    regular_batch_rate: float = 0.002  # regular retiree certified by a unit batch (rejected)
    gov_missed_rate: float = 0.02  # left out of their unit's batch
    late_unit_rate: float = 0.04  # units whose batch comes after the deadline
    deadline_unit_rate: float = 0.02  # units uploading on the deadline evening
    foshan_channel_weights: Weights = (
        ("FACE_APP", 0.45), ("FACE_COUNTER", 0.20), ("COUNTER", 0.31), ("HOME_VISIT", 0.04))
    foshan_elderly_channel_weights: Weights = (  # aged 80+ or disabled
        ("FACE_APP", 0.20), ("FACE_COUNTER", 0.15), ("COUNTER", 0.30), ("HOME_VISIT", 0.35))
    guangdong_channel_weights: Weights = (
        ("PROVINCIAL_XREGION", 0.62), ("ASSISTED_OFFICE", 0.12), ("ASSISTING_AGENCY", 0.10),
        ("FACE_APP", 0.12), ("COUNTER", 0.04))
    other_province_channel_weights: Weights = (
        ("MINISTRY_OFFSITE", 0.50), ("ASSISTED_OFFICE", 0.20), ("ASSISTING_AGENCY", 0.15),
        ("FACE_APP", 0.15))
    hong_kong_channel_weights: Weights = (("HK_AGENCY", 0.85), ("FACE_APP", 0.15))
    macau_channel_weights: Weights = (("MACAU_SSF", 0.90), ("FACE_APP", 0.10))
    abroad_channel_weights: Weights = (("CONSULATE", 0.85), ("FACE_APP", 0.15))

    # -- paper forms -------------------------------------------------------------------
    documents_rate: float = 0.92  # paper-form certifications whose form comes back
    mail_mean_days: float = 10.0  # mean mail delay on top of 4 days
    duplicate_documents_rate: float = 0.005  # a second copy of the form is recorded
    stray_documents_rate: float = 0.002  # a form recorded for a COUNTER certification
    month_edge_rate: float = 0.03  # forms recorded in the first minute of a month

    # -- deaths ------------------------------------------------------------------------
    death_rate: float = 0.015
    late_death_report_rate: float = 0.35  # reported 2-7 months after the death
    fraud_rate: float = 0.10  # of the deceased: a certification performed after death
    second_death_report_rate: float = 0.05  # a second DeathRecorded from another source

    # -- amounts -----------------------------------------------------------------------
    raise_rate: float = 0.30  # the 2017 raise, effective 2017-07, recorded July-August
    raise_percent: float = 5.5
    retro_change_rate: float = 0.02  # a correction effective 2017-01, recorded later

    # -- corrections (rules 11-14) ------------------------------------------------------
    revocation_rate: float = 0.004  # of certifications: revoked by its agency weeks later
    clash_rate: float = 0.003  # of certifications: another agency's record, same id, first
    wrong_death_rate: float = 0.002  # of retirees who live: a death reported, then retracted

    # -- delivery ----------------------------------------------------------------------
    redelivery_rate: float = 0.01  # an event appears a second time later in the log
    late_arrival_rate: float = 0.005  # an event appears after events recorded later
    unknown_retiree_rate: float = 0.002  # events for never-enrolled ids, per retiree

    # -- how times are written ---------------------------------------------------------
    utc_z_rate: float = 0.45  # "...Z"
    utc_offset_rate: float = 0.15  # "...+00:00"; the rest "+08:00"
    foreign_offset_rate: float = 0.5  # consulate performed_at in the post's own offset

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("_rate") and not 0.0 <= value <= 1.0:
                raise ValueError(f"{f.name} must be in [0, 1], not {value!r}")
            if f.name.endswith("_weights") and (
                not value or any(w < 0 for _, w in value) or sum(w for _, w in value) <= 0
            ):
                raise ValueError(f"{f.name} needs positive weights")
        if self.on_time_rate + self.late_rate > 1.0:
            raise ValueError("on_time_rate + late_rate must not exceed 1")
        if self.utc_z_rate + self.utc_offset_rate > 1.0:
            raise ValueError("utc_z_rate + utc_offset_rate must not exceed 1")
        if not 18 <= self.age_min <= self.age_mode <= self.age_max <= 115:
            raise ValueError("need 18 <= age_min <= age_mode <= age_max <= 115")
        if self.unit_mean_size < 1:
            raise ValueError("unit_mean_size must be at least 1")
        known: dict[str, set[str]] = {
            "scheme_weights": set(_SCHEMES),
            "residence_weights": set(_RESIDENCES),
            "district_weights": set(_DISTRICTS),
            "country_weights": set(_POSTS),
        }
        for f in fields(self):
            if f.name.endswith("channel_weights"):
                known[f.name] = {str(c) for c in CHANNELS} - {"EMPLOYER_BATCH"}
        for name, allowed in known.items():
            bad = [k for k, _ in getattr(self, name) if k not in allowed]
            if bad:
                raise ValueError(f"{name}: unknown {bad}")


@dataclass
class CampaignStats:
    """What a run wrote: lines per event type (redeliveries included) and feature counts."""

    retirees: int = 0
    seed: int = 0
    lines: int = 0
    bytes: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    features: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        types = ", ".join(f"{k} {v:,}" for k, v in self.by_type.items())
        return f"{self.lines:,} lines ({types})"


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


def retiree_id(index: int) -> str:
    """The retiree id of the ``index``-th enrolled retiree (indices ``>= retirees`` are
    ids that are never enrolled). Looks like a bureau number, not like a sequence."""
    return f"FS{(index * _ID_MULTIPLIER + _ID_OFFSET) % _ID_SPACE:09d}"


class _Pick:
    """Weighted choice by a uniform number in [0, 1)."""

    __slots__ = ("cum", "values")

    def __init__(self, pairs: Weights) -> None:
        total = sum(w for _, w in pairs)
        acc = 0.0
        cum: list[float] = []
        for _, w in pairs:
            acc += w / total
            cum.append(acc)
        cum[-1] = 1.0
        self.cum = cum
        self.values = [v for v, _ in pairs]


def _lookup_table(weights: list[float], values: list[int], size: int = 4096) -> list[int]:
    """A table mapping ``int(u * size)`` to a value, so a weighted draw is one index."""
    total = sum(weights)
    cum: list[float] = []
    acc = 0.0
    for w in weights:
        acc += w / total
        cum.append(acc)
    cum[-1] = 1.0
    return [values[min(bisect_right(cum, (k + 0.5) / size), len(values) - 1)]
            for k in range(size)]


_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}

# --------------------------------------------------------------------------------------
# The generator
# --------------------------------------------------------------------------------------


def iter_campaign_chunks(
    retirees: int,
    seed: int = 2017,
    profile: CampaignProfile | None = None,
    *,
    stats: CampaignStats | None = None,
    progress: Callable[[int], None] | None = None,
) -> Iterator[str]:
    """Yield the campaign as text blocks of whole lines, in log order.

    ``stats``, when given, is filled in as the blocks are produced (complete once the
    iterator is exhausted). ``progress(n)`` is called with the number of retirees done
    since its last call (every few thousand retirees).
    """
    if retirees < 0:
        raise ValueError("retirees must be >= 0")
    p = profile if profile is not None else CampaignProfile()
    st = stats if stats is not None else CampaignStats()
    st.retirees, st.seed = retirees, seed
    yield from _Campaign(retirees, seed, p, st).chunks(progress)


# The order in which CampaignStats lists the event types and the features.
_EVENT_TYPES = ("RetireeEnrolled", "PensionAmountChanged", "CertificationRecorded",
                "CertificationDocumentsReceived", "DeathRecorded", "CertificationRevoked",
                "DeathReportRetracted")
_FEATURES = ("redelivered", "late_arrival", "unknown_retiree", "exempt", "cadre",
             "turning_80_on_deadline", "on_time", "late_certification", "never_certified",
             "certified_twice", "pre_window", "window_edge", "resent_certification",
             "wrong_channel", "late_unit_batch", "deadline_evening_batch", "documents",
             "documents_after_deadline", "documents_missing", "duplicate_documents",
             "month_edge_documents", "stray_documents", "reenrolled", "deaths",
             "late_death_report", "unreported_death",
             "certified_after_death", "second_death_report", "raise", "retro_change",
             "near_local_midnight", "revoked_certification", "clashing_certification_id",
             "retracted_death")

# A planned certification: (channel, performed, recorded, agency, source agency, the
# performed_at value when it is not drawn by ``ts``).
_Cert = tuple[int, int, int, str, str, datetime | None]


_ENROLL_SLOT = 30_600  # seconds of a migration day (09:00-17:30)
_DEADLINE_ORD = date(2017, 6, 20).toordinal()
_BIRTH_80 = date(1937, 6, 20).toordinal()  # 80 on the deadline day
_MARCH_1 = _day(date(2017, 3, 1))
_LAST_BUCKET = _BUCKETS - 1
_N_SURNAMES = len(_SURNAMES)
_N_GIVEN = len(_GIVEN)
_recorded = itemgetter(0)  # the sort key of a bucket's (recorded time, line)

# The zones a time is written in. UTC is written "Z", or "+00:00" when its value's zone is
# PLUS_ZERO (equal to UTC: the instant is the same, only the spelling differs).
PLUS_ZERO = timezone(timedelta(0), "+00:00")
SHANGHAI = timezone(timedelta(hours=8))
_POST_ZONES = {hours: timezone(timedelta(hours=hours))
               for posts in _POSTS.values() for _, hours in posts}
_T0 = int(datetime(2017, 1, 1, tzinfo=SHANGHAI).timestamp())  # local-seconds 0, POSIX
_at = datetime.fromtimestamp


def _local_ts(t: int) -> datetime:
    """Local-seconds ``t`` in +08:00 (the corrections write no other)."""
    return _at(_T0 + t, SHANGHAI)


def _offset_ts(t: int, hours: int) -> datetime:
    """Local-seconds ``t`` in the offset of ``hours`` (a consulate's)."""
    return _at(_T0 + t, _POST_ZONES[hours])


_encode = msgspec.json.Encoder().encode


# Fields the campaign does not write when they are null (its forms come from before the
# mailroom and rule 11): absent from the line, as partners of the time sent them.
_LEFT_OUT_WHEN_NULL: dict[type[EventRecord], tuple[str, ...]] = {
    CertificationDocumentsReceived: ("agency_id", "form_number", "postmarked_on",
                                     "scan_sha256"),
}


# How a class is written: the texts of its null fields left out; per time field, the text
# opening its value and the reader of the value.
_WrittenAs = tuple[tuple[str, ...], tuple[tuple[str, Callable[[EventRecord], datetime]], ...]]


def _written_as(cls: type[EventRecord]) -> _WrittenAs:
    """For one event class: the texts of the null fields the campaign leaves out, and for
    each time field, the text that opens its value and how to read it."""
    times = tuple((f'"{f.name}":"', attrgetter(f.name))
                  for f in msgspec.structs.fields(cls) if f.type is datetime)
    left_out = _LEFT_OUT_WHEN_NULL.get(cls, ())
    return tuple(f',"{name}":null' for name in left_out), times


_WRITTEN_AS: dict[type[EventRecord], _WrittenAs] = {
    cls: _written_as(cls) for cls in (
    RetireeEnrolled, PensionAmountChanged, CertificationRecorded,
        CertificationDocumentsReceived, DeathRecorded, CertificationRevoked,
        DeathReportRetracted)}


def _line(event: EventRecord) -> str:
    """The interchange line of ``event``: its JSON object (``type`` first, the fields in
    their schema's order, dates and times in ISO 8601), each time in the offset of its
    value, UTC as ``Z`` or, for a value in :data:`PLUS_ZERO`, as ``+00:00``."""
    text = _encode(event).decode()
    nulls, times = _WRITTEN_AS[type(event)]
    for null in nulls:
        text = text.replace(null, "", 1)
    for opening, value_of in times:
        if value_of(event).tzinfo is PLUS_ZERO:  # written "...Z" by the encoder
            z = text.index('Z"', text.index(opening) + len(opening))
            text = f"{text[:z]}+00:00{text[z + 1:]}"
    return text + "\n"


class _Retiree:
    """What the generator drew for one retiree, read by the steps that follow."""

    __slots__ = (
        "amount", "birth", "cadre", "country", "disabled", "district", "elderly", "gov",
        "name", "pension_start", "place", "residence", "rid", "scheme", "t_enroll",
        "unit",
    )
    rid: str
    scheme: Scheme
    cadre: bool
    gov: bool
    residence: Residence
    district: District | None
    country: str | None
    place: str
    birth: date
    elderly: bool
    disabled: bool
    pension_start: date
    amount: int
    unit: int
    name: str
    t_enroll: int


class _Campaign:
    """One run of the generator: its two random streams, its tables, its log-order
    buckets, and one method per step.

    Every draw is made in the order the campaign has always made them (the output is a
    function of the seed). Hot steps bind what they use to locals, as the single function
    this class was split from did with its closures: the benchmark generates its input.
    """

    __slots__ = (
        "age_table", "app_table", "buckets", "by_type", "cert_counter", "channel_picks",
        "country_pick", "crand", "crng", "district_pick", "elderly_pick", "enroll_days",
        "enroll_total", "feat", "flushed", "getrandbits", "late_rate", "n_units",
        "near_midnight", "p", "raise_days", "raise_factor", "rand", "redeliver_to",
        "residence_pick", "retirees", "scheme_pick", "st", "t_enroll_now",
        "unit_kind", "unit_names", "unit_upload", "unknown_count", "window_table",
        "z_rate", "zo_rate",
    )

    def __init__(self, retirees: int, seed: int, p: CampaignProfile,
                 st: CampaignStats) -> None:
        self.retirees, self.p, self.st = retirees, p, st
        rng = random.Random(seed)
        self.rand = rng.random
        self.getrandbits = rng.getrandbits
        # Corrections draw on a generator of their own: without them, the rest is as it was.
        self.crng = random.Random(f"lifecert-corrections/{seed}")
        self.crand = self.crng.random
        self.by_type = st.by_type
        for t in _EVENT_TYPES:
            self.by_type.setdefault(t, 0)
        self.feat = st.features
        for k in _FEATURES:
            self.feat.setdefault(k, 0)
        self.z_rate = p.utc_z_rate
        self.zo_rate = p.utc_z_rate + p.utc_offset_rate
        self.near_midnight = 0
        self.app_table = _lookup_table(list(_APP_HOUR_WEIGHTS), list(range(24)))
        self.buckets: list[list[tuple[int, str]]] = [[] for _ in range(_BUCKETS)]
        self.flushed = 0  # buckets below this index have been written
        self.late_rate = p.late_arrival_rate
        self.redeliver_to = p.late_arrival_rate + p.redelivery_rate
        self._population_tables()
        self._managing_units()
        self.raise_days = [_day(date(2017, 7, d)) for d in (14, 21, 28)] + [
            _day(date(2017, 8, d)) for d in (4, 11, 18)]
        self.raise_factor = 1 + p.raise_percent / 100
        self.cert_counter = count(1).__next__
        self.t_enroll_now = 0  # the enrollment time of the retiree being generated
        self.unknown_count = 0

    def _population_tables(self) -> None:
        p = self.p
        self.scheme_pick = _Pick(p.scheme_weights)
        self.residence_pick = _Pick(p.residence_weights)
        self.district_pick = _Pick(p.district_weights)
        self.country_pick = _Pick(p.country_weights)
        self.channel_picks = {
            "FOSHAN": _Pick(p.foshan_channel_weights),
            "GUANGDONG": _Pick(p.guangdong_channel_weights),
            "OTHER_PROVINCE": _Pick(p.other_province_channel_weights),
            "HONG_KONG": _Pick(p.hong_kong_channel_weights),
            "MACAU": _Pick(p.macau_channel_weights),
            "ABROAD": _Pick(p.abroad_channel_weights),
        }
        self.elderly_pick = _Pick(p.foshan_elderly_channel_weights)
        ages = list(range(p.age_min, p.age_max + 1))
        age_weights = []
        for a in ages:
            if a <= p.age_mode:
                w = 0.6 + 0.4 * (a - p.age_min + 1) / (p.age_mode - p.age_min + 1)
            else:
                w = math.exp(-(((a - p.age_mode) / 13.0) ** 2))
            age_weights.append(w + 0.002)
        self.age_table = _lookup_table(age_weights, ages)
        # On-time certification days: a rush in the first weeks and before the deadline.
        window_days = list(range(WINDOW_OPEN_DAY, DEADLINE_DAY + 1))
        self.window_table = _lookup_table(
            [1 + 2.5 * math.exp(-(d - WINDOW_OPEN_DAY) / 6)
             + 3 * math.exp(-(DEADLINE_DAY - d) / 4) for d in window_days], window_days)
        # Enrollment: a migration spread over the working days of 2017-01-03 .. 2017-03-24,
        # 09:00-17:30, in retiree order (non-decreasing recorded_at).
        self.enroll_days = [d for d in range(_day(date(2017, 1, 3)), _day(date(2017, 3, 24)) + 1)
                            if _WORKDAY[d - _FIRST_DAY]]
        self.enroll_total = len(self.enroll_days) * _ENROLL_SLOT

    def _managing_units(self) -> None:
        """Managing units and their batch uploads (the only draws before the retirees)."""
        p, rand = self.p, self.rand
        gov_share = (dict(p.scheme_weights).get("GOV_INSTITUTION", 0.0)
                     / sum(w for _, w in p.scheme_weights) + p.cadre_rate * 0.8)
        n_units = self.n_units = max(1, round(self.retirees * gov_share / p.unit_mean_size))
        self.unit_names = [f"UNIT-{u + 1:04d}" for u in range(n_units)]
        upload: list[int] = []
        kind: list[int] = []  # 0 in the window, 1 deadline evening, 2 late
        self.unit_upload, self.unit_kind = upload, kind
        batch_days = [d for d in range(_day(date(2017, 4, 10)), _day(date(2017, 6, 16)) + 1)
                      if _WORKDAY[d - _FIRST_DAY]]
        late_batch_days = [d for d in range(_day(date(2017, 6, 21)),
                                            _day(date(2017, 8, 31)) + 1)
                           if _WORKDAY[d - _FIRST_DAY]]
        for _ in range(n_units):
            r = rand()
            if r < p.deadline_unit_rate:
                kind.append(1)
                upload.append(DEADLINE_DAY * _DAY + 22 * _HOUR + int(rand() * 7000))
            elif r < p.deadline_unit_rate + p.late_unit_rate:
                kind.append(2)
                d = late_batch_days[int(rand() * len(late_batch_days))]
                upload.append(d * _DAY + 15 * _HOUR + int(rand() * 3 * _HOUR))
            else:
                kind.append(0)
                d = batch_days[int(rand() * len(batch_days))]
                upload.append(d * _DAY + 15 * _HOUR + int(rand() * 3 * _HOUR))

    # ---- the run ---------------------------------------------------------------------

    def chunks(self, progress: Callable[[int], None] | None) -> Iterator[str]:
        """The campaign, retiree by retiree, step by step; each day is written once no
        later retiree can add to it."""
        p, rand, crand = self.p, self.rand, self.crand
        certification = self.certification
        progress_every = 4096
        pending_progress = 0
        for i in range(self.retirees):
            r = self.person(i)
            self.enroll(r, i)
            death_day, death_rec, fraud = (self.death(r) if rand() < p.death_rate
                                           else (-1, None, False))
            certs = self.gov_certifications(r) if r.gov else self.regular_certifications(r)
            if death_day >= 0:
                certs = self.after_death(r, certs, death_day, fraud)
            rid = r.rid
            for c, perf, rec, agency, source, ptext in certs:
                certification(rid, c, perf, rec, agency, source, ptext, death_rec)
            if death_rec is not None:
                self.death_reports(r, death_day, death_rec)
            if death_day < 0 and crand() < p.wrong_death_rate:
                self.wrong_death(rid, r.birth, r.t_enroll)
            if rand() < p.raise_rate:
                self.pension_raise(r, death_rec)
            if rand() < p.retro_change_rate:
                self.retro_change(r, death_rec)
            # Noise: events for ids never enrolled.
            if rand() < p.unknown_retiree_rate:
                self.unknown_event(self.unknown_count)
                self.unknown_count += 1
            today = r.t_enroll // _DAY
            if today > self.flushed:
                yield from self.flush(today)
            pending_progress += 1
            if pending_progress >= progress_every and progress is not None:
                progress(pending_progress)
                pending_progress = 0
        if progress is not None and pending_progress:
            progress(pending_progress)
        yield from self.flush(_BUCKETS)
        self.feat["near_local_midnight"] = self.near_midnight

    # ---- how times and ids are written -----------------------------------------------

    def ts(self, t: int) -> datetime:
        """Local-seconds ``t`` as partners write it: in UTC (``Z`` or ``+00:00``) or in
        +08:00."""
        s = t % _DAY
        if s < 1800 or s >= 84600:
            self.near_midnight += 1
        rand = self.rand
        r = rand()
        if r < self.z_rate:
            return _at(_T0 + t, UTC)
        if r < self.zo_rate:
            return _at(_T0 + t, PLUS_ZERO)
        return _at(_T0 + t, SHANGHAI)

    def event_id(self) -> str:
        getrandbits = self.getrandbits
        h = f"{getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"

    def office(self, day: int) -> int:
        """A time in office hours (08:30-12:00, 14:00-17:30) on ``day``."""
        rand = self.rand
        s = int(rand() * 25_200)
        return day * _DAY + (30_600 + s if s < 12_600 else 37_800 + s)

    def work_office(self, day: int) -> int:
        return self.office(_NEXT_WORKDAY[day - _FIRST_DAY])

    def app_time(self, day: int) -> int:
        rand = self.rand
        return day * _DAY + self.app_table[int(rand() * 4096)] * _HOUR + int(rand() * _HOUR)

    def log_uniform(self, lo: float, hi: float) -> int:
        rand = self.rand
        return int(lo * math.exp(rand() * math.log(hi / lo)))

    def triangular(self, shape: tuple[int, int, int]) -> int:
        """A triangular draw for ``shape`` (low, mode, high)."""
        lo, mode, hi = shape
        rand = self.rand
        u = rand()
        c = (mode - lo) / (hi - lo)
        if u < c:
            return int(lo + math.sqrt(u * (hi - lo) * (mode - lo)))
        return int(hi - math.sqrt((1 - u) * (hi - lo) * (hi - mode)))

    def pick(self, pk: _Pick) -> str:
        rand = self.rand
        return pk.values[bisect_right(pk.cum, rand())]

    def pick_channel(self, pk: _Pick) -> int:
        rand = self.rand
        return _CH_INDEX[pk.values[bisect_right(pk.cum, rand())]]

    # The corrections' own stream: times always in +08:00.

    def cevent_id(self) -> str:
        getrandbits = self.crng.getrandbits
        h = f"{getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"

    def clog_uniform(self, lo: float, hi: float) -> int:
        crand = self.crand
        return int(lo * math.exp(crand() * math.log(hi / lo)))

    # ---- log-order buckets -----------------------------------------------------------

    def push(self, key: int, body: str) -> None:
        b = key // _DAY
        if b > _LAST_BUCKET:
            b = _LAST_BUCKET
        if b < self.flushed:
            raise AssertionError("generator bug: event for a day already written")
        self.buckets[b].append((key, body))

    def emit(self, rec: int, event: EventRecord) -> None:
        """An event recorded at ``rec``: some arrive late, some are delivered twice."""
        body, kind = _line(event), type(event).__name__
        by_type = self.by_type
        by_type[kind] += 1
        rand = self.rand
        r = rand()
        if r < self.late_rate:
            self.feat["late_arrival"] += 1
            self.push(rec + self.log_uniform(60, 6 * _HOUR), body)
            return
        self.push(rec, body)
        if r < self.redeliver_to:
            self.feat["redelivered"] += 1
            by_type[kind] += 1
            self.push(rec + self.log_uniform(30, 3 * _DAY), body)

    def cemit(self, rec: int, event: EventRecord) -> None:
        self.by_type[type(event).__name__] += 1
        self.push(rec, _line(event))

    def flush(self, upto: int) -> Iterator[str]:
        upto = min(upto, _BUCKETS)
        buckets, st = self.buckets, self.st
        while self.flushed < upto:
            b = self.flushed
            lines = buckets[b]
            buckets[b] = []
            self.flushed = b + 1
            if lines:
                lines.sort(key=_recorded)  # stable: events recorded at once stay in order
                text = "".join([line for _, line in lines])
                st.lines += len(lines)
                yield text

    # ---- who the retiree is ----------------------------------------------------------

    def person(self, i: int) -> _Retiree:
        """Who the ``i``-th retiree is: scheme, residence, birth, pension and name."""
        p, rand = self.p, self.rand
        r = _Retiree()
        r.rid = f"FS{(i * _ID_MULTIPLIER + _ID_OFFSET) % _ID_SPACE:09d}"
        scheme = r.scheme = cast(Scheme, self.pick(self.scheme_pick))
        cadre = r.cadre = scheme != "URBAN_RURAL_RESIDENT" and rand() < p.cadre_rate
        gov = r.gov = cadre or scheme == "GOV_INSTITUTION"
        self.draw_residence(r)
        self.draw_birth(r)
        female = rand() < p.female_rate
        r.disabled = rand() < p.disabled_rate
        r.pension_start = self.pension_start(r.birth, female, gov)
        if scheme == "URBAN_RURAL_RESIDENT":
            r.amount = self.triangular(p.resident_amount_fen)
        elif scheme == "GOV_INSTITUTION":
            r.amount = self.triangular(p.gov_amount_fen)
        else:
            r.amount = self.triangular(p.employee_amount_fen)
        r.unit = int(rand() * self.n_units) if gov else -1
        if cadre:
            self.feat["cadre"] += 1
        s1 = _SURNAMES[int(rand() * _N_SURNAMES)]
        g1 = _GIVEN[int(rand() * _N_GIVEN)]
        r.name = s1 + g1 + (_GIVEN[int(rand() * _N_GIVEN)] if rand() < 0.75 else "")
        return r

    def draw_residence(self, r: _Retiree) -> None:
        rand = self.rand
        residence = r.residence = cast(Residence, self.pick(self.residence_pick))
        r.district = r.country = None
        r.place = ""
        if residence == "FOSHAN":
            r.district = cast(District, self.pick(self.district_pick))
        elif residence == "GUANGDONG":
            r.place = _GD_CITIES[int(rand() * len(_GD_CITIES))]
        elif residence == "OTHER_PROVINCE":
            r.place = _OTHER_PLACES[int(rand() * len(_OTHER_PLACES))]
        elif residence == "HONG_KONG":
            r.country = "HK"
        elif residence == "MACAU":
            r.country = "MO"
        else:
            r.country = self.pick(self.country_pick)

    def draw_birth(self, r: _Retiree) -> None:
        rand = self.rand
        if rand() < self.p.turning_80_rate:
            birth_ord = _BIRTH_80 + (1 if rand() < 0.3 else 0)
            self.feat["turning_80_on_deadline"] += 1
        else:
            age = self.age_table[int(rand() * 4096)]
            birth_ord = _DEADLINE_ORD - int((age + rand()) * 365.2425)
        r.birth = date.fromordinal(birth_ord)
        r.elderly = birth_ord <= _BIRTH_80

    def pension_start(self, birth: date, female: bool, gov: bool) -> date:
        """The first month of the pension (during 2017 for the exempt)."""
        rand = self.rand
        if rand() < self.p.exempt_rate:
            self.feat["exempt"] += 1
            start_year, start_month = 2017, 1 + int(rand() * 12)
        else:
            retire_age = 60 if not female else (55 if (gov or rand() < 0.4) else 50)
            start_year, start_month = birth.year + retire_age, birth.month % 12 + 1
            if start_month == 1:
                start_year += 1
            if start_year >= 2017:
                start_year, start_month = 2015 + int(rand() * 2), 1 + int(rand() * 12)
        return date(start_year, start_month, 1)

    def enroll(self, r: _Retiree, i: int) -> None:
        """RetireeEnrolled, recorded by the migration in retiree order (a few twice)."""
        rand, district = self.rand, r.district
        pos = int((i + rand()) * self.enroll_total / self.retirees)
        k, s = divmod(pos, _ENROLL_SLOT)
        t_enroll = r.t_enroll = self.enroll_days[k] * _DAY + 32_400 + s
        self.t_enroll_now = t_enroll
        enrolled = RetireeEnrolled(
            event_id=self.event_id(), recorded_at=self.ts(t_enroll),
            source_agency=f"FS-SIB-{district or 'CITY'}", retiree_id=r.rid, name=r.name,
            birth_date=r.birth, scheme=r.scheme,
            category="CADRE_RETIREE" if r.cadre else "REGULAR", residence=r.residence,
            district=district, country=r.country, pension_start=r.pension_start,
            monthly_amount_fen=r.amount, disabled=r.disabled,
            managing_unit=self.unit_names[r.unit] if r.gov else None)
        self.emit(t_enroll, enrolled)
        if rand() < self.p.reenrollment_rate:
            t2 = t_enroll + self.log_uniform(_HOUR, 20 * _DAY)
            if t2 < WINDOW_OPEN_DAY * _DAY:
                self.feat["reenrolled"] += 1
                event_id = self.event_id()
                self.emit(t2, msgspec.structs.replace(enrolled, event_id=event_id,
                                                      recorded_at=self.ts(t2)))

    # ---- what happens to them --------------------------------------------------------

    def death(self, r: _Retiree) -> tuple[int, int | None, bool]:
        """A retiree who dies: (the day of death, when the death is recorded or None,
        whether someone certifies for them after it)."""
        p, rand, feat = self.p, self.rand, self.feat
        death_rec: int | None = None
        feat["deaths"] += 1
        death_day = int(rand() * 360)
        if rand() < p.late_death_report_rate:
            rec = self.work_office(death_day + 60 + int(rand() * 150))
            late_death = True
        else:
            rec = self.work_office(death_day + 1 + int(rand() * 20))
            late_death = False
        if rec < r.t_enroll + _HOUR:
            rec = self.work_office(r.t_enroll // _DAY + 1 + int(rand() * 10))
        fraud = rand() < p.fraud_rate
        if rec < HORIZON_DAY * _DAY:
            death_rec = rec
            if late_death:
                feat["late_death_report"] += 1
        else:
            feat["unreported_death"] += 1
        return death_day, death_rec, fraud

    def app_certification(self, perf: int) -> _Cert:
        rand = self.rand
        return (_FACE_APP, perf, perf + 1 + int(rand() * 120), "FS-SIB-FACEAPP",
                "FS-SIB-FACEAPP", None)

    def gov_certifications(self, r: _Retiree) -> list[_Cert]:
        """A government or cadre retiree's certifications: in their unit's batch (unless
        left out), a few also through the app (which rejects them)."""
        p, rand, feat = self.p, self.rand, self.feat
        certs: list[_Cert] = []
        unit = r.unit
        if rand() >= p.gov_missed_rate:
            perf, rec = self.batch_member(unit)
            certs.append((_BATCH, perf, rec, self.unit_names[unit], self.unit_names[unit], None))
            kind = self.unit_kind[unit]
            feat["on_time" if perf // _DAY <= DEADLINE_DAY else "late_certification"] += 1
            if kind == 1:
                feat["deadline_evening_batch"] += 1
            elif kind == 2:
                feat["late_unit_batch"] += 1
        else:
            feat["never_certified"] += 1
        if rand() < p.gov_face_app_rate:
            feat["wrong_channel"] += 1
            certs.append(self.app_certification(self.app_time(
                self.window_table[int(rand() * 4096)])))
        return certs

    def regular_certifications(self, r: _Retiree) -> list[_Cert]:
        """A regular retiree's certifications, by the channel that fits them: on time,
        late or never; some twice, some also before the window."""
        p, rand = self.p, self.rand
        chan_pick = (self.elderly_pick if r.residence == "FOSHAN" and (r.elderly or r.disabled)
                     else self.channel_picks[r.residence])
        certs: list[_Cert] = []
        day = self.certification_day()
        if day >= 0:
            certs.append(self.first_certification(r, self.pick_channel(chan_pick), day))
            if rand() < p.twice_rate:
                self.feat["certified_twice"] += 1
                c2 = self.pick_channel(chan_pick)
                day2 = certs[-1][1] // _DAY + 1 + int(rand() * 30)
                certs.append((c2, *self.perf_and_rec(c2, day2, r.place, r.district,
                                                     r.country)))
        if rand() < p.pre_window_rate:
            lo = max(r.t_enroll // _DAY + 1, _MARCH_1)
            if lo < WINDOW_OPEN_DAY:
                self.feat["pre_window"] += 1
                c = self.pick_channel(chan_pick)
                pday = lo + int(rand() * (WINDOW_OPEN_DAY - lo))
                if c == _FACE_APP and rand() < 0.3:  # 23:00-23:59 on March 31
                    certs.append(self.app_certification(
                        (WINDOW_OPEN_DAY - 1) * _DAY + 23 * _HOUR + int(rand() * _HOUR)))
                else:
                    certs.append((c, *self.perf_and_rec(c, pday, r.place, r.district,
                                                        r.country)))
        return certs

    def certification_day(self) -> int:
        """The day a regular retiree certifies: in the window, after the deadline, or
        never (-1)."""
        p, rand, feat = self.p, self.rand, self.feat
        r = rand()
        if r < p.on_time_rate:
            feat["on_time"] += 1
            return self.window_table[int(rand() * 4096)]
        if r < p.on_time_rate + p.late_rate:
            day = DEADLINE_DAY + 1 + int(-math.log(1.0 - rand()) * p.late_mean_days)
            if day > _LATE_LAST_DAY:
                day = DEADLINE_DAY + 1 + int(rand() * (_LATE_LAST_DAY - DEADLINE_DAY))
            feat["late_certification"] += 1
            return day
        feat["never_certified"] += 1
        return -1

    def first_certification(self, r: _Retiree, c: int, day: int) -> _Cert:
        """The certification on ``day`` by channel ``c``; a few are in a unit's batch the
        retiree is not in, some app users certify in the hour around a window edge."""
        p, rand, feat = self.p, self.rand, self.feat
        if rand() < p.regular_batch_rate:
            feat["wrong_channel"] += 1
            u = int(rand() * self.n_units)
            perf, rec = self.batch_member(u)
            return (_BATCH, perf, rec, self.unit_names[u], self.unit_names[u], None)
        if c == _FACE_APP and rand() < p.window_edge_rate:
            feat["window_edge"] += 1
            edge = int(rand() * 3)
            if edge == 0:  # the app opens at midnight on April 1
                perf = WINDOW_OPEN_DAY * _DAY + int(rand() * _HOUR)
            elif edge == 1:  # the last hour of the deadline day
                perf = DEADLINE_DAY * _DAY + 23 * _HOUR + int(rand() * _HOUR)
            else:  # minutes too late
                perf = (DEADLINE_DAY + 1) * _DAY + int(rand() * _HOUR)
            return self.app_certification(perf)
        return (c, *self.perf_and_rec(c, day, r.place, r.district, r.country))

    def after_death(self, r: _Retiree, certs: list[_Cert], death_day: int,
                    fraud: bool) -> list[_Cert]:
        """The certifications of one who dies: those performed before the death; with
        fraud, all of them and, if none is after the death, one performed after it."""
        rand = self.rand
        kept = [x for x in certs if x[1] // _DAY <= death_day or fraud]
        if fraud and not any(x[1] // _DAY > death_day for x in kept):
            fday = death_day + 2 + int(rand() * 60)
            if fday < WINDOW_OPEN_DAY:  # someone certifies for the dead in the campaign
                fday = self.window_table[int(rand() * 4096)]
            if fday <= _LATE_LAST_DAY:
                if rand() < 0.7 or r.gov:
                    kept.append(self.app_certification(self.app_time(fday)))
                else:
                    kept.append((_COUNTER, *self.perf_and_rec(_COUNTER, fday, r.place,
                                                              r.district, r.country)))
        self.feat["certified_after_death"] += sum(
            1 for x in kept if x[1] // _DAY > death_day and x[2] < HORIZON_DAY * _DAY)
        return kept

    def death_reports(self, r: _Retiree, death_day: int, death_rec: int) -> None:
        """DeathRecorded from the source that fits the residence; a few a second time."""
        rand, rid, residence = self.rand, r.rid, r.residence
        if residence in ("FOSHAN", "GUANGDONG"):
            source_text = _DEATH_SOURCES_LOCAL[int(rand() * 4)]
            agency = "FS-CIVIL-AFFAIRS"
        elif residence == "ABROAD":
            source_text, agency = "CONSULATE_REPORT", "FS-SIB-CITY"
        elif residence == "MACAU":
            source_text, agency = "MACAU_SSF", "MO-FSS"
        else:
            source_text, agency = "FAMILY_REPORT", "FS-SIB-CITY"
        self.emit(death_rec, DeathRecorded(
            event_id=self.event_id(), recorded_at=self.ts(death_rec), source_agency=agency,
            retiree_id=rid, date_of_death=_DATES[death_day - _FIRST_DAY], source=source_text))
        if rand() < self.p.second_death_report_rate:
            rec2 = death_rec + self.log_uniform(_DAY, 60 * _DAY)
            if rec2 < HORIZON_DAY * _DAY:
                self.feat["second_death_report"] += 1
                d2 = _DATES[death_day - _FIRST_DAY + (1 if rand() < 0.3 else 0)]
                self.emit(rec2, DeathRecorded(
                    event_id=self.event_id(), recorded_at=self.ts(rec2),
                    source_agency="FS-CIVIL-AFFAIRS", retiree_id=rid, date_of_death=d2,
                    source="HUKOU_CANCELLATION"))

    def pension_raise(self, r: _Retiree, death_rec: int | None) -> None:
        """The 2017 raise, effective 2017-07, recorded in July-August (unless dead by then)."""
        rand = self.rand
        rec = self.raise_days[int(rand() * len(self.raise_days))] * _DAY + 21 * _HOUR + int(
            rand() * 3 * _HOUR)
        if death_rec is None or rec < death_rec:
            self.feat["raise"] += 1
            self.emit(rec, PensionAmountChanged(
                event_id=self.event_id(), recorded_at=self.ts(rec),
                source_agency="FS-SIB-PENSION", retiree_id=r.rid,
                monthly_amount_fen=round(r.amount * self.raise_factor), effective_month="2017-07"))

    def retro_change(self, r: _Retiree, death_rec: int | None) -> None:
        """A correction of the amount, effective 2017-01, recorded later in the year."""
        rand, amount = self.rand, r.amount
        rec = self.work_office(100 + int(rand() * 230))
        if death_rec is None or rec < death_rec:
            self.feat["retro_change"] += 1
            new_amount = max(1, amount + int(amount * (rand() * 0.1 - 0.05)))
            self.emit(rec, PensionAmountChanged(
                event_id=self.event_id(), recorded_at=self.ts(rec),
                source_agency="FS-SIB-PENSION", retiree_id=r.rid, monthly_amount_fen=new_amount,
                effective_month="2017-01"))

    # ---- the events of a certification -------------------------------------------------

    def certification(self, rid: str, c: int, perf: int, rec: int, agency: str, source: str,
                      performed: datetime | None = None, death_rec: int | None = None) -> None:
        """Emit a certification (and its paper form, resends) if recorded in 2017."""
        p, rand = self.p, self.rand
        cert_counter = self.cert_counter
        cid = f"{_CERT_PREFIX[c]}-17-{cert_counter():08d}"
        if rec < HORIZON_DAY * _DAY:
            performed_at = performed if performed is not None else self.ts(perf)
            recorded = CertificationRecorded(
                event_id=self.event_id(), recorded_at=self.ts(rec), source_agency=source,
                certification_id=cid, retiree_id=rid, channel=CHANNELS[c], agency_id=agency,
                performed_at=performed_at)
            self.emit(rec, recorded)
            crand = self.crand  # rules 11-12, on the corrections' own stream
            if crand() < p.clash_rate:
                self.clash(rid, c, cid, perf, rec, agency)
            if crand() < p.revocation_rate:
                self.revocation(rid, cid, rec, agency)
            if rand() < p.resend_rate:
                rec2 = rec + self.log_uniform(60, 2 * _DAY)
                if rec2 < HORIZON_DAY * _DAY:
                    self.feat["resent_certification"] += 1
                    event_id = self.event_id()
                    self.emit(rec2, msgspec.structs.replace(recorded, event_id=event_id,
                                                            recorded_at=self.ts(rec2)))
        if c in _PAPER:
            self.paper_forms(rid, cid, perf, death_rec)
        elif c == _COUNTER and rand() < p.stray_documents_rate:
            # Some district offices still ask for the paper form at the counter.
            received = self.work_office(perf // _DAY + 2 + int(rand() * 10))
            drec = received + self.log_uniform(600, _DAY)
            if drec < HORIZON_DAY * _DAY:
                self.feat["stray_documents"] += 1
                self.documents(rid, cid, received, drec)

    def paper_forms(self, rid: str, cid: str, perf: int, death_rec: int | None) -> None:
        """The paper form of a certification coming back by mail (or not; some twice)."""
        p, rand, feat = self.p, self.rand, self.feat
        if rand() >= p.documents_rate:
            feat["documents_missing"] += 1
            return
        copies = 2 if rand() < p.duplicate_documents_rate else 1
        received_day = perf // _DAY + 4 + int(-math.log(1.0 - rand()) * p.mail_mean_days)
        for copy in range(copies):
            if received_day >= _LAST_DAY - 40:
                return
            received = self.work_office(received_day)
            if rand() < p.month_edge_rate:
                drec = (_NEXT_MONTH_START[received // _DAY - _FIRST_DAY] * _DAY
                        + int(rand() * 60))
                edge = True
            else:
                drec = received + self.log_uniform(600, 2 * _DAY)
                edge = False
            if drec >= HORIZON_DAY * _DAY:
                return
            if death_rec is not None and drec >= death_rec and rand() < 0.8:
                return  # the family stops mailing once the death is known (mostly)
            feat["documents"] += 1
            if edge:
                feat["month_edge_documents"] += 1
            if drec >= (DEADLINE_DAY + 1) * _DAY:
                feat["documents_after_deadline"] += 1
            if copy:
                feat["duplicate_documents"] += 1
            self.documents(rid, cid, received, drec)
            received_day += 3 + int(rand() * 20)

    def documents(self, rid: str, cid: str, received: int, drec: int) -> None:
        self.emit(drec, CertificationDocumentsReceived(
            event_id=self.event_id(), recorded_at=self.ts(drec), source_agency="FS-SIB-MAILROOM",
            certification_id=cid, retiree_id=rid, received_at=self.ts(received)))

    def perf_and_rec(self, c: int, day: int, place: str, district: str | None,
                     country: str | None) -> tuple[int, int, str, str, datetime | None]:
        """Performed and recorded times, agency, source agency and (consulates) the
        performed_at value in the post's own offset."""
        rand = self.rand
        ptext: datetime | None = None
        if c == _FACE_APP:
            perf = self.app_time(day)
            return perf, perf + 1 + int(rand() * 120), "FS-SIB-FACEAPP", "FS-SIB-FACEAPP", None
        if c in (_FACE_COUNTER, _COUNTER):
            perf = self.work_office(day)
            dist = district if district is not None else _DISTRICTS[int(rand() * 5)]
            if c == _FACE_COUNTER:
                rec = perf + 5 + int(rand() * 295)
                agency = f"FS-{dist}-WIN{1 + int(rand() * 12):02d}"
            else:
                rec = perf + self.log_uniform(60, 4 * _HOUR)
                agency = (f"FS-{dist}-OFFICE{1 + int(rand() * 9):02d}" if rand() < 0.6
                          else f"FS-{dist}-VILLAGE{1 + int(rand() * 80):03d}")
            return perf, rec, agency, f"FS-SIB-{dist}", None
        if c == _HOME_VISIT:
            d = day if (day + 6) % 7 != 6 else day + 1  # no visits on Sundays
            perf = self.office(d)
            dist = district if district is not None else _DISTRICTS[int(rand() * 5)]
            return (perf, perf + self.log_uniform(_HOUR, 5 * _DAY), f"FS-{dist}-HOMEVISIT",
                    f"FS-SIB-{dist}", None)
        if c == _XREGION:
            perf = self.work_office(day)
            return (perf, perf + self.log_uniform(600, 2 * _DAY), f"GD-{place}-SIB", "GD-XREGION",
                    None)
        if c == _MINISTRY:
            perf = self.work_office(day)
            rday = perf // _DAY + 1 + int(rand() * 10)
            return (perf, rday * _DAY + _HOUR + int(rand() * _HOUR), f"{place}-SIB",
                    "MOHRSS-OFFSITE", None)
        if c == _ASSISTED:
            perf = self.work_office(day)
            agency = f"GD-{place}-SIB" if "-" not in place else f"{place}-SIB"
            return perf, perf + self.log_uniform(_HOUR, 3 * _DAY), agency, agency, None
        if c == _ASSISTING:
            perf = self.work_office(day)
            region = f"GD-{place}" if "-" not in place else place
            agency = f"{region}-{_ASSISTING_KINDS[int(rand() * 3)]}-{1 + int(rand() * 300):03d}"
            return perf, perf + self.log_uniform(_HOUR, 5 * _DAY), agency, agency, None
        if c == _CONSULATE:
            cc = country or "US"
            posts = _POSTS[cc]
            post, offset = posts[int(rand() * len(posts))]
            d = day
            while (d + 6) % 7 >= 5:  # the post's weekdays
                d += 1
            perf = d * _DAY + 32_400 + int(rand() * 28_800) - (offset - 8) * _HOUR
            if rand() < self.p.foreign_offset_rate:
                ptext = _offset_ts(perf, offset)
            agency = f"CN-CONSULATE-{cc}-{post}"
            return perf, perf + self.log_uniform(2 * _DAY, 20 * _DAY), agency, agency, ptext
        if c == _HK:
            perf = self.work_office(day)
            agency = "HK-FTU" if rand() < 0.7 else "HK-GDLO"
            return perf, perf + self.log_uniform(_DAY, 7 * _DAY), agency, agency, None
        if c == _MACAU:
            perf = self.work_office(day)
            rday = perf // _DAY + 1 + int(rand() * 5)
            return perf, rday * _DAY + 2 * _HOUR + int(rand() * 600), "MO-FSS", "MO-FSS", None
        raise AssertionError(f"channel {CHANNELS[c]} has no timing")

    def batch_member(self, u: int) -> tuple[int, int]:
        """Performed and recorded times of a retiree in unit ``u``'s batch."""
        rand = self.rand
        upload = self.unit_upload[u]
        d = upload // _DAY - int(rand() * 8)
        if self.unit_kind[u] != 2 and d < WINDOW_OPEN_DAY + 2:
            d = WINDOW_OPEN_DAY + 2
        perf = self.work_office(d)
        if perf >= upload:
            perf = upload - _HOUR - int(rand() * _HOUR)
        return perf, upload

    # ---- corrections (rules 11-13), on their own random stream -------------------------

    def clash(self, rid: str, c: int, cid: str, perf: int, rec: int, agency: str) -> None:
        """Rule 11 in the campaign: the same certification id from another agency,
        recorded just before."""
        other = f"{agency[:40]}-B"
        crec = max(rec - self.clog_uniform(60, 6 * _HOUR), self.t_enroll_now + 60)
        cperf = min(perf, crec - 1)
        self.feat["clashing_certification_id"] += 1
        self.cemit(crec, CertificationRecorded(
            event_id=self.cevent_id(), recorded_at=_local_ts(crec), source_agency=other,
            certification_id=cid, retiree_id=rid, channel=CHANNELS[c], agency_id=other,
            performed_at=_local_ts(cperf)))

    def revocation(self, rid: str, cid: str, rec: int, agency: str) -> None:
        """Rule 12 in the campaign: the certification revoked by its agency weeks later."""
        rrec = rec + self.clog_uniform(_DAY, 90 * _DAY)
        if rrec < HORIZON_DAY * _DAY:
            self.feat["revoked_certification"] += 1
            crand = self.crand
            reason = _REVOCATION_REASONS[int(crand() * len(_REVOCATION_REASONS))]
            self.cemit(rrec, CertificationRevoked(
                event_id=self.cevent_id(), recorded_at=_local_ts(rrec), source_agency=agency,
                retiree_id=rid, certification_id=cid, agency_id=agency, reason=reason))

    def wrong_death(self, rid: str, birth: date, t_enroll: int) -> None:
        """Rule 13 in the campaign: a death reported in error, retracted later."""
        crand = self.crand
        day = _NEXT_WORKDAY[max(t_enroll // _DAY + 1, int(crand() * 330)) - _FIRST_DAY]
        rec = day * _DAY + 30_600 + int(crand() * 25_200)  # office hours, its own draws
        died = max(rec // _DAY - 1 - int(crand() * 20), _day(birth))
        back = rec + self.clog_uniform(_DAY, 60 * _DAY)
        if back >= HORIZON_DAY * _DAY:
            return
        self.feat["retracted_death"] += 1
        self.cemit(rec, DeathRecorded(
            event_id=self.cevent_id(), recorded_at=_local_ts(rec),
            source_agency="FS-CIVIL-AFFAIRS", retiree_id=rid,
            date_of_death=_DATES[died - _FIRST_DAY], source="HUKOU_CANCELLATION"))
        why = _RETRACTION_REASONS[int(crand() * len(_RETRACTION_REASONS))]
        self.cemit(back, DeathReportRetracted(
            event_id=self.cevent_id(), recorded_at=_local_ts(back), source_agency="FS-SIB-CITY",
            retiree_id=rid, source="HUKOU_CANCELLATION", reason=why))

    # ---- noise -----------------------------------------------------------------------

    def unknown_event(self, k: int) -> None:
        """An event about a retiree id that is never enrolled."""
        rand = self.rand
        rid = retiree_id(self.retirees + k)
        self.feat["unknown_retiree"] += 1
        r = rand()
        if r < 0.80:
            c = self.pick_channel(self.channel_picks["FOSHAN"])
            day = self.window_table[int(rand() * 4096)]
            perf, rec, agency, source, _ = self.perf_and_rec(c, day, "", None, None)
            self.certification(rid, c, perf, rec, agency, source)
        elif r < 0.88:
            received = self.work_office(self.window_table[int(rand() * 4096)] + 10)
            drec = received + self.log_uniform(600, _DAY)
            self.documents(rid, f"FORM1-17-X{k:07d}", received, drec)
        elif r < 0.94:
            dday = WINDOW_OPEN_DAY + int(rand() * 200)
            rec = self.work_office(dday + 3)
            self.emit(rec, DeathRecorded(
                event_id=self.event_id(), recorded_at=self.ts(rec),
                source_agency="FS-CIVIL-AFFAIRS", retiree_id=rid,
                date_of_death=_DATES[dday - _FIRST_DAY], source="CREMATION_RECORD"))
        else:
            rec = self.raise_days[int(rand() * len(self.raise_days))] * _DAY + 21 * _HOUR + int(
                rand() * 3 * _HOUR)
            self.emit(rec, PensionAmountChanged(
                event_id=self.event_id(), recorded_at=self.ts(rec),
                source_agency="FS-SIB-PENSION", retiree_id=rid,
                monthly_amount_fen=150_000 + int(rand() * 1e5), effective_month="2017-07"))


def iter_campaign(
    retirees: int,
    seed: int = 2017,
    profile: CampaignProfile | None = None,
    *,
    stats: CampaignStats | None = None,
) -> Iterator[str]:
    """Yield the campaign line by line (each line ends with ``\\n``), in log order."""
    for chunk in iter_campaign_chunks(retirees, seed, profile, stats=stats):
        yield from chunk.splitlines(keepends=True)


def write_campaign(
    out: BinaryIO,
    retirees: int,
    seed: int = 2017,
    profile: CampaignProfile | None = None,
    *,
    progress: Callable[[int], None] | None = None,
) -> CampaignStats:
    """Write the campaign as UTF-8 JSON lines to the binary stream ``out``."""
    stats = CampaignStats()
    written = 0
    for chunk in iter_campaign_chunks(retirees, seed, profile, stats=stats, progress=progress):
        data = chunk.encode("utf-8")
        out.write(data)
        written += len(data)
    stats.bytes = written
    return stats


def write_campaign_file(
    path: str | os.PathLike[str],
    retirees: int,
    seed: int = 2017,
    profile: CampaignProfile | None = None,
    *,
    progress: Callable[[int], None] | None = None,
) -> CampaignStats:
    """Write the campaign to ``path``: into a temporary file beside it, renamed into place
    when complete, so that an interrupted run never leaves a truncated file behind."""
    target = os.fspath(path)
    tmp = f"{target}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb", buffering=1 << 20) as out:
            stats = write_campaign(out, retirees, seed, profile, progress=progress)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return stats
