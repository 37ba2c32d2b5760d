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
"""

from __future__ import annotations

import math
import os
import random
from bisect import bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from datetime import date, timedelta
from itertools import count
from typing import BinaryIO

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

_DAYS: list[str] = [
    (_EPOCH + timedelta(days=d)).isoformat() for d in range(_FIRST_DAY, _LAST_DAY)
]
_HMS: list[str] = [
    f"{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60)
]

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

CHANNELS: tuple[str, ...] = (
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
_CH_INDEX = {name: k for k, name in enumerate(CHANNELS)}
_PAPER = frozenset({_ASSISTED, _ASSISTING, _CONSULATE, _HK})
_CERT_PREFIX = ("FAPP", "FCTR", "CTR", "GDXR", "MOHRSS", "AOFF", "FORM1", "FORM2", "HKA",
                "MOSSF", "BATCH", "HV")

_SCHEMES = ("URBAN_EMPLOYEE", "URBAN_RURAL_RESIDENT", "GOV_INSTITUTION")
_RESIDENCES = ("FOSHAN", "GUANGDONG", "OTHER_PROVINCE", "HONG_KONG", "MACAU", "ABROAD")
_DISTRICTS = ("CHANCHENG", "NANHAI", "SHUNDE", "GAOMING", "SANSHUI")

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
_REVOCATION_REASONS = ("FRAUD", "MISATTRIBUTED", "ENTERED_IN_ERROR")
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
        known = {
            "scheme_weights": set(_SCHEMES),
            "residence_weights": set(_RESIDENCES),
            "district_weights": set(_DISTRICTS),
            "country_weights": set(_POSTS),
        }
        for f in fields(self):
            if f.name.endswith("channel_weights"):
                known[f.name] = set(CHANNELS) - {"EMPLOYER_BATCH"}
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
    rng = random.Random(seed)
    rand = rng.random
    getrandbits = rng.getrandbits
    log = math.log
    exp = math.exp

    days, hms, first = _DAYS, _HMS, _FIRST_DAY
    next_workday, next_month_start = _NEXT_WORKDAY, _NEXT_MONTH_START
    by_type = st.by_type
    for t in ("RetireeEnrolled", "PensionAmountChanged", "CertificationRecorded",
              "CertificationDocumentsReceived", "DeathRecorded", "CertificationRevoked",
              "DeathReportRetracted"):
        by_type.setdefault(t, 0)
    feat = st.features
    for feature in ("redelivered", "late_arrival", "unknown_retiree", "exempt", "cadre",
              "turning_80_on_deadline", "on_time", "late_certification", "never_certified",
              "certified_twice", "pre_window", "window_edge", "resent_certification",
              "wrong_channel", "late_unit_batch", "deadline_evening_batch", "documents",
              "documents_after_deadline", "documents_missing", "duplicate_documents",
              "month_edge_documents", "stray_documents", "reenrolled", "deaths",
              "late_death_report", "unreported_death",
              "certified_after_death", "second_death_report", "raise", "retro_change",
              "near_local_midnight", "revoked_certification", "clashing_certification_id",
              "retracted_death"):
        feat.setdefault(feature, 0)

    # ---- time rendering --------------------------------------------------------------
    z_rate = p.utc_z_rate
    zo_rate = p.utc_z_rate + p.utc_offset_rate
    near_midnight = [0]

    def ts(t: int) -> str:
        """A JSON string for local-seconds ``t``, in UTC or +08:00."""
        s = t % _DAY
        if s < 1800 or s >= 84600:
            near_midnight[0] += 1
        r = rand()
        if r < z_rate:
            u = t - _SHANGHAI
            return f'"{days[u // _DAY - first]}T{hms[u % _DAY]}Z"'
        if r < zo_rate:
            u = t - _SHANGHAI
            return f'"{days[u // _DAY - first]}T{hms[u % _DAY]}+00:00"'
        return f'"{days[t // _DAY - first]}T{hms[s]}+08:00"'

    def ts_offset(t: int, hours: int) -> str:
        u = t - _SHANGHAI + hours * _HOUR
        sign = "-" if hours < 0 else "+"
        return f'"{days[u // _DAY - first]}T{hms[u % _DAY]}{sign}{abs(hours):02d}:00"'

    def event_id() -> str:
        h = f"{getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"

    def office(day: int) -> int:
        """A time in office hours (08:30-12:00, 14:00-17:30) on ``day``."""
        s = int(rand() * 25_200)
        return day * _DAY + (30_600 + s if s < 12_600 else 37_800 + s)

    def work_office(day: int) -> int:
        return office(next_workday[day - first])

    app_table = _lookup_table(list(_APP_HOUR_WEIGHTS), list(range(24)))

    def app_time(day: int) -> int:
        return day * _DAY + app_table[int(rand() * 4096)] * _HOUR + int(rand() * _HOUR)

    def log_uniform(lo: float, hi: float) -> int:
        return int(lo * exp(rand() * log(hi / lo)))

    # ---- corrections: a generator of their own ---------------------------------------
    crng = random.Random(f"lifecert-corrections/{seed}")
    crand = crng.random

    def cts(t: int) -> str:
        return f'"{days[t // _DAY - first]}T{hms[t % _DAY]}+08:00"'

    def cevent_id() -> str:
        h = f"{crng.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"

    def clog_uniform(lo: float, hi: float) -> int:
        return int(lo * exp(crand() * log(hi / lo)))

    def cemit(rec: int, body: str, kind: str) -> None:
        by_type[kind] += 1
        push(rec, body)

    # ---- log-order buckets -----------------------------------------------------------
    buckets: list[list[str]] = [[] for _ in range(_BUCKETS)]
    last_bucket = _BUCKETS - 1
    seq = count().__next__
    flushed = [0]  # buckets below this index have been written

    late_rate = p.late_arrival_rate
    redeliver_to = p.late_arrival_rate + p.redelivery_rate

    def push(key: int, body: str) -> None:
        b = key // _DAY
        if b > last_bucket:
            b = last_bucket
        if b < flushed[0]:
            raise AssertionError("generator bug: event for a day already written")
        buckets[b].append(f"{key:010d}{seq():08x}{body}")

    def emit(rec: int, body: str, kind: str) -> None:
        by_type[kind] += 1
        r = rand()
        if r < late_rate:
            feat["late_arrival"] += 1
            push(rec + log_uniform(60, 6 * _HOUR), body)
            return
        push(rec, body)
        if r < redeliver_to:
            feat["redelivered"] += 1
            by_type[kind] += 1
            push(rec + log_uniform(30, 3 * _DAY), body)

    def flush(upto: int) -> Iterator[str]:
        upto = min(upto, _BUCKETS)
        while flushed[0] < upto:
            b = flushed[0]
            lines = buckets[b]
            buckets[b] = []
            flushed[0] = b + 1
            if lines:
                lines.sort()
                text = "".join([line[18:] for line in lines])
                st.lines += len(lines)
                yield text

    # ---- population tables -----------------------------------------------------------
    scheme_pick = _Pick(p.scheme_weights)
    residence_pick = _Pick(p.residence_weights)
    district_pick = _Pick(p.district_weights)
    country_pick = _Pick(p.country_weights)
    channel_picks = {
        "FOSHAN": _Pick(p.foshan_channel_weights),
        "GUANGDONG": _Pick(p.guangdong_channel_weights),
        "OTHER_PROVINCE": _Pick(p.other_province_channel_weights),
        "HONG_KONG": _Pick(p.hong_kong_channel_weights),
        "MACAU": _Pick(p.macau_channel_weights),
        "ABROAD": _Pick(p.abroad_channel_weights),
    }
    elderly_pick = _Pick(p.foshan_elderly_channel_weights)

    def pick(pk: _Pick) -> str:
        return pk.values[bisect_right(pk.cum, rand())]

    def pick_channel(pk: _Pick) -> int:
        return _CH_INDEX[pk.values[bisect_right(pk.cum, rand())]]

    ages = list(range(p.age_min, p.age_max + 1))
    age_weights = []
    for a in ages:
        if a <= p.age_mode:
            w = 0.6 + 0.4 * (a - p.age_min + 1) / (p.age_mode - p.age_min + 1)
        else:
            w = exp(-(((a - p.age_mode) / 13.0) ** 2))
        age_weights.append(w + 0.002)
    age_table = _lookup_table(age_weights, ages)
    deadline_date = date(2017, 6, 20)
    deadline_ord = deadline_date.toordinal()
    birth_80 = date(1937, 6, 20).toordinal()  # 80 on the deadline day

    def triangular(lo: int, mode: int, hi: int) -> int:
        u = rand()
        c = (mode - lo) / (hi - lo)
        if u < c:
            return int(lo + math.sqrt(u * (hi - lo) * (mode - lo)))
        return int(hi - math.sqrt((1 - u) * (hi - lo) * (hi - mode)))

    # On-time certification days: a rush in the first weeks and before the deadline.
    window_days = list(range(WINDOW_OPEN_DAY, DEADLINE_DAY + 1))
    window_table = _lookup_table(
        [1 + 2.5 * exp(-(d - WINDOW_OPEN_DAY) / 6) + 3 * exp(-(DEADLINE_DAY - d) / 4)
         for d in window_days], window_days)

    # Enrollment: a migration spread over the working days of 2017-01-03 .. 2017-03-24,
    # 09:00-17:30, in retiree order (non-decreasing recorded_at).
    enroll_days = [d for d in range(_day(date(2017, 1, 3)), _day(date(2017, 3, 24)) + 1)
                   if _WORKDAY[d - first]]
    enroll_slot = 30_600
    enroll_total = len(enroll_days) * enroll_slot

    # Managing units and their batch uploads.
    gov_share = (dict(p.scheme_weights).get("GOV_INSTITUTION", 0.0)
                 / sum(w for _, w in p.scheme_weights) + p.cadre_rate * 0.8)
    n_units = max(1, round(retirees * gov_share / p.unit_mean_size))
    unit_names = [f"UNIT-{u + 1:04d}" for u in range(n_units)]
    unit_upload: list[int] = []
    unit_kind: list[int] = []  # 0 in the window, 1 deadline evening, 2 late
    batch_days = [d for d in range(_day(date(2017, 4, 10)), _day(date(2017, 6, 16)) + 1)
                  if _WORKDAY[d - first]]
    late_batch_days = [d for d in range(_day(date(2017, 6, 21)), _day(date(2017, 8, 31)) + 1)
                       if _WORKDAY[d - first]]
    for _ in range(n_units):
        r = rand()
        if r < p.deadline_unit_rate:
            unit_kind.append(1)
            unit_upload.append(DEADLINE_DAY * _DAY + 22 * _HOUR + int(rand() * 7000))
        elif r < p.deadline_unit_rate + p.late_unit_rate:
            unit_kind.append(2)
            d = late_batch_days[int(rand() * len(late_batch_days))]
            unit_upload.append(d * _DAY + 15 * _HOUR + int(rand() * 3 * _HOUR))
        else:
            unit_kind.append(0)
            d = batch_days[int(rand() * len(batch_days))]
            unit_upload.append(d * _DAY + 15 * _HOUR + int(rand() * 3 * _HOUR))

    raise_days = [_day(date(2017, 7, d)) for d in (14, 21, 28)] + [
        _day(date(2017, 8, d)) for d in (4, 11, 18)]
    raise_factor = 1 + p.raise_percent / 100

    id_offset = _ID_OFFSET
    cert_counter = count(1).__next__

    # ---- events ----------------------------------------------------------------------

    t_enroll_now = [0]  # the enrollment time of the retiree being generated

    def certification(rid: str, c: int, perf: int, rec: int, agency: str, source: str,
                      perf_text: str | None = None, death_rec: int | None = None) -> None:
        """Emit a certification (and its paper form, resends) if recorded in 2017."""
        cid = f"{_CERT_PREFIX[c]}-17-{cert_counter():08d}"
        if rec < HORIZON_DAY * _DAY:
            ptext = perf_text if perf_text is not None else ts(perf)
            tail = (f'"source_agency":"{source}","certification_id":"{cid}",'
                    f'"retiree_id":"{rid}","channel":"{CHANNELS[c]}",'
                    f'"agency_id":"{agency}","performed_at":{ptext}}}\n')
            emit(rec, f'{{"type":"CertificationRecorded","event_id":"{event_id()}",'
                      f'"recorded_at":{ts(rec)},{tail}', "CertificationRecorded")
            corrections_of(rid, c, cid, perf, rec, agency)
            if rand() < p.resend_rate:
                rec2 = rec + log_uniform(60, 2 * _DAY)
                if rec2 < HORIZON_DAY * _DAY:
                    feat["resent_certification"] += 1
                    emit(rec2, f'{{"type":"CertificationRecorded","event_id":"{event_id()}",'
                               f'"recorded_at":{ts(rec2)},{tail}', "CertificationRecorded")
        if c in _PAPER:
            if rand() >= p.documents_rate:
                feat["documents_missing"] += 1
                return
            copies = 2 if rand() < p.duplicate_documents_rate else 1
            received_day = perf // _DAY + 4 + int(-log(1.0 - rand()) * p.mail_mean_days)
            for copy in range(copies):
                if received_day >= _LAST_DAY - 40:
                    return
                received = work_office(received_day)
                if rand() < p.month_edge_rate:
                    drec = (next_month_start[received // _DAY - first] * _DAY
                            + int(rand() * 60))
                    edge = True
                else:
                    drec = received + log_uniform(600, 2 * _DAY)
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
                documents(rid, cid, received, drec)
                received_day += 3 + int(rand() * 20)
        elif c == _COUNTER and rand() < p.stray_documents_rate:
            # Some district offices still ask for the paper form at the counter.
            received = work_office(perf // _DAY + 2 + int(rand() * 10))
            drec = received + log_uniform(600, _DAY)
            if drec < HORIZON_DAY * _DAY:
                feat["stray_documents"] += 1
                documents(rid, cid, received, drec)

    def corrections_of(rid: str, c: int, cid: str, perf: int, rec: int, agency: str) -> None:
        """Rules 11-12 in the campaign: the same id from another agency, recorded first;
        the certification revoked by its agency later."""
        if crand() < p.clash_rate:
            other = f"{agency[:40]}-B"
            crec = max(rec - clog_uniform(60, 6 * _HOUR), t_enroll_now[0] + 60)
            cperf = min(perf, crec - 1)
            feat["clashing_certification_id"] += 1
            cemit(crec, f'{{"type":"CertificationRecorded","event_id":"{cevent_id()}",'
                        f'"recorded_at":{cts(crec)},"source_agency":"{other}",'
                        f'"certification_id":"{cid}","retiree_id":"{rid}",'
                        f'"channel":"{CHANNELS[c]}","agency_id":"{other}",'
                        f'"performed_at":{cts(cperf)}}}\n', "CertificationRecorded")
        if crand() < p.revocation_rate:
            rrec = rec + clog_uniform(_DAY, 90 * _DAY)
            if rrec < HORIZON_DAY * _DAY:
                feat["revoked_certification"] += 1
                reason = _REVOCATION_REASONS[int(crand() * len(_REVOCATION_REASONS))]
                cemit(rrec, f'{{"type":"CertificationRevoked","event_id":"{cevent_id()}",'
                            f'"recorded_at":{cts(rrec)},"source_agency":"{agency}",'
                            f'"retiree_id":"{rid}","certification_id":"{cid}",'
                            f'"agency_id":"{agency}","reason":"{reason}"}}\n',
                      "CertificationRevoked")

    def wrong_death(rid: str, birth: date, t_enroll: int) -> None:
        """Rule 13 in the campaign: a death reported in error, retracted later."""
        day = next_workday[max(t_enroll // _DAY + 1, int(crand() * 330)) - first]
        rec = day * _DAY + 30_600 + int(crand() * 25_200)  # office hours, its own draws
        died = max(rec // _DAY - 1 - int(crand() * 20), _day(birth))
        back = rec + clog_uniform(_DAY, 60 * _DAY)
        if back >= HORIZON_DAY * _DAY:
            return
        feat["retracted_death"] += 1
        cemit(rec, f'{{"type":"DeathRecorded","event_id":"{cevent_id()}",'
                   f'"recorded_at":{cts(rec)},"source_agency":"FS-CIVIL-AFFAIRS",'
                   f'"retiree_id":"{rid}","date_of_death":"{days[died - first]}",'
                   f'"source":"HUKOU_CANCELLATION"}}\n', "DeathRecorded")
        why = _RETRACTION_REASONS[int(crand() * len(_RETRACTION_REASONS))]
        cemit(back, f'{{"type":"DeathReportRetracted","event_id":"{cevent_id()}",'
                    f'"recorded_at":{cts(back)},"source_agency":"FS-SIB-CITY",'
                    f'"retiree_id":"{rid}","source":"HUKOU_CANCELLATION",'
                    f'"reason":"{why}"}}\n', "DeathReportRetracted")

    def documents(rid: str, cid: str, received: int, drec: int) -> None:
        emit(drec, f'{{"type":"CertificationDocumentsReceived","event_id":"{event_id()}",'
                   f'"recorded_at":{ts(drec)},"source_agency":"FS-SIB-MAILROOM",'
                   f'"certification_id":"{cid}","retiree_id":"{rid}",'
                   f'"received_at":{ts(received)}}}\n',
             "CertificationDocumentsReceived")

    def perf_and_rec(c: int, day: int, place: str, district: str | None,
                     country: str | None) -> tuple[int, int, str, str, str | None]:
        """Performed and recorded times, agency, source agency and (consulates) the
        performed_at text in the post's own offset."""
        ptext: str | None = None
        if c == _FACE_APP:
            perf = app_time(day)
            return perf, perf + 1 + int(rand() * 120), "FS-SIB-FACEAPP", "FS-SIB-FACEAPP", None
        if c in (_FACE_COUNTER, _COUNTER):
            perf = work_office(day)
            dist = district if district is not None else _DISTRICTS[int(rand() * 5)]
            if c == _FACE_COUNTER:
                rec = perf + 5 + int(rand() * 295)
                agency = f"FS-{dist}-WIN{1 + int(rand() * 12):02d}"
            else:
                rec = perf + log_uniform(60, 4 * _HOUR)
                agency = (f"FS-{dist}-OFFICE{1 + int(rand() * 9):02d}" if rand() < 0.6
                          else f"FS-{dist}-VILLAGE{1 + int(rand() * 80):03d}")
            return perf, rec, agency, f"FS-SIB-{dist}", None
        if c == _HOME_VISIT:
            d = day if (day + 6) % 7 != 6 else day + 1  # no visits on Sundays
            perf = office(d)
            dist = district if district is not None else _DISTRICTS[int(rand() * 5)]
            return (perf, perf + log_uniform(_HOUR, 5 * _DAY), f"FS-{dist}-HOMEVISIT",
                    f"FS-SIB-{dist}", None)
        if c == _XREGION:
            perf = work_office(day)
            return (perf, perf + log_uniform(600, 2 * _DAY), f"GD-{place}-SIB", "GD-XREGION",
                    None)
        if c == _MINISTRY:
            perf = work_office(day)
            rday = perf // _DAY + 1 + int(rand() * 10)
            return (perf, rday * _DAY + _HOUR + int(rand() * _HOUR), f"{place}-SIB",
                    "MOHRSS-OFFSITE", None)
        if c == _ASSISTED:
            perf = work_office(day)
            agency = f"GD-{place}-SIB" if "-" not in place else f"{place}-SIB"
            return perf, perf + log_uniform(_HOUR, 3 * _DAY), agency, agency, None
        if c == _ASSISTING:
            perf = work_office(day)
            region = f"GD-{place}" if "-" not in place else place
            agency = f"{region}-{_ASSISTING_KINDS[int(rand() * 3)]}-{1 + int(rand() * 300):03d}"
            return perf, perf + log_uniform(_HOUR, 5 * _DAY), agency, agency, None
        if c == _CONSULATE:
            cc = country or "US"
            posts = _POSTS[cc]
            post, offset = posts[int(rand() * len(posts))]
            d = day
            while (d + 6) % 7 >= 5:  # the post's weekdays
                d += 1
            perf = d * _DAY + 32_400 + int(rand() * 28_800) - (offset - 8) * _HOUR
            if rand() < p.foreign_offset_rate:
                ptext = ts_offset(perf, offset)
            agency = f"CN-CONSULATE-{cc}-{post}"
            return perf, perf + log_uniform(2 * _DAY, 20 * _DAY), agency, agency, ptext
        if c == _HK:
            perf = work_office(day)
            agency = "HK-FTU" if rand() < 0.7 else "HK-GDLO"
            return perf, perf + log_uniform(_DAY, 7 * _DAY), agency, agency, None
        if c == _MACAU:
            perf = work_office(day)
            rday = perf // _DAY + 1 + int(rand() * 5)
            return perf, rday * _DAY + 2 * _HOUR + int(rand() * 600), "MO-FSS", "MO-FSS", None
        raise AssertionError(f"channel {CHANNELS[c]} has no timing")

    def batch_member(u: int) -> tuple[int, int]:
        """Performed and recorded times of a retiree in unit ``u``'s batch."""
        upload = unit_upload[u]
        d = upload // _DAY - int(rand() * 8)
        if unit_kind[u] != 2 and d < WINDOW_OPEN_DAY + 2:
            d = WINDOW_OPEN_DAY + 2
        perf = work_office(d)
        if perf >= upload:
            perf = upload - _HOUR - int(rand() * _HOUR)
        return perf, upload

    def unknown_event(k: int) -> None:
        """An event about a retiree id that is never enrolled."""
        rid = retiree_id(retirees + k)
        feat["unknown_retiree"] += 1
        r = rand()
        if r < 0.80:
            c = pick_channel(channel_picks["FOSHAN"])
            day = window_table[int(rand() * 4096)]
            perf, rec, agency, source, _ = perf_and_rec(c, day, "", None, None)
            certification(rid, c, perf, rec, agency, source)
        elif r < 0.88:
            received = work_office(window_table[int(rand() * 4096)] + 10)
            drec = received + log_uniform(600, _DAY)
            emit(drec, f'{{"type":"CertificationDocumentsReceived","event_id":"{event_id()}",'
                       f'"recorded_at":{ts(drec)},"source_agency":"FS-SIB-MAILROOM",'
                       f'"certification_id":"FORM1-17-X{k:07d}","retiree_id":"{rid}",'
                       f'"received_at":{ts(received)}}}\n', "CertificationDocumentsReceived")
        elif r < 0.94:
            dday = WINDOW_OPEN_DAY + int(rand() * 200)
            rec = work_office(dday + 3)
            emit(rec, f'{{"type":"DeathRecorded","event_id":"{event_id()}",'
                      f'"recorded_at":{ts(rec)},"source_agency":"FS-CIVIL-AFFAIRS",'
                      f'"retiree_id":"{rid}","date_of_death":"{days[dday - first]}",'
                      f'"source":"CREMATION_RECORD"}}\n', "DeathRecorded")
        else:
            rec = raise_days[int(rand() * len(raise_days))] * _DAY + 21 * _HOUR + int(
                rand() * 3 * _HOUR)
            emit(rec, f'{{"type":"PensionAmountChanged","event_id":"{event_id()}",'
                      f'"recorded_at":{ts(rec)},"source_agency":"FS-SIB-PENSION",'
                      f'"retiree_id":"{rid}","monthly_amount_fen":{150_000 + int(rand() * 1e5)},'
                      f'"effective_month":"2017-07"}}\n', "PensionAmountChanged")

    unknown_count = 0
    progress_every = 4096
    pending_progress = 0
    on_time_rate, late_cert_rate = p.on_time_rate, p.late_rate
    cadre_rate, exempt_rate = p.cadre_rate, p.exempt_rate
    female_rate, disabled_rate = p.female_rate, p.disabled_rate
    n_given = len(_GIVEN)
    n_surnames = len(_SURNAMES)

    for i in range(retirees):
        rid = f"FS{(i * _ID_MULTIPLIER + id_offset) % _ID_SPACE:09d}"

        # -- who ---------------------------------------------------------------------
        scheme = pick(scheme_pick)
        cadre = scheme != "URBAN_RURAL_RESIDENT" and rand() < cadre_rate
        gov = cadre or scheme == "GOV_INSTITUTION"
        residence = pick(residence_pick)
        district: str | None = None
        country: str | None = None
        place = ""
        if residence == "FOSHAN":
            district = pick(district_pick)
        elif residence == "GUANGDONG":
            place = _GD_CITIES[int(rand() * len(_GD_CITIES))]
        elif residence == "OTHER_PROVINCE":
            place = _OTHER_PLACES[int(rand() * len(_OTHER_PLACES))]
        elif residence == "HONG_KONG":
            country = "HK"
        elif residence == "MACAU":
            country = "MO"
        else:
            country = pick(country_pick)

        if rand() < p.turning_80_rate:
            birth_ord = birth_80 + (1 if rand() < 0.3 else 0)
            feat["turning_80_on_deadline"] += 1
        else:
            age = age_table[int(rand() * 4096)]
            birth_ord = deadline_ord - int((age + rand()) * 365.2425)
        birth = date.fromordinal(birth_ord)
        elderly = birth_ord <= birth_80
        female = rand() < female_rate
        disabled = rand() < disabled_rate

        if rand() < exempt_rate:
            feat["exempt"] += 1
            start_year, start_month = 2017, 1 + int(rand() * 12)
        else:
            retire_age = 60 if not female else (55 if (gov or rand() < 0.4) else 50)
            start_year, start_month = birth.year + retire_age, birth.month % 12 + 1
            if start_month == 1:
                start_year += 1
            if start_year >= 2017:
                start_year, start_month = 2015 + int(rand() * 2), 1 + int(rand() * 12)
        pension_start = f"{start_year:04d}-{start_month:02d}-01"

        if scheme == "URBAN_RURAL_RESIDENT":
            amount = triangular(*p.resident_amount_fen)
        elif scheme == "GOV_INSTITUTION":
            amount = triangular(*p.gov_amount_fen)
        else:
            amount = triangular(*p.employee_amount_fen)
        unit = int(rand() * n_units) if gov else -1
        if cadre:
            feat["cadre"] += 1
        s1 = _SURNAMES[int(rand() * n_surnames)]
        g1 = _GIVEN[int(rand() * n_given)]
        name = s1 + g1 + (_GIVEN[int(rand() * n_given)] if rand() < 0.75 else "")

        # -- enrollment ----------------------------------------------------------------
        pos = int((i + rand()) * enroll_total / retirees)
        k, s = divmod(pos, enroll_slot)
        t_enroll = enroll_days[k] * _DAY + 32_400 + s
        enrolled = (
            f'"source_agency":"FS-SIB-{district or "CITY"}","retiree_id":"{rid}",'
            f'"name":"{name}","birth_date":"{birth.isoformat()}","scheme":"{scheme}",'
            f'"category":"{"CADRE_RETIREE" if cadre else "REGULAR"}",'
            f'"residence":"{residence}",'
            f'"district":{"null" if district is None else chr(34) + district + chr(34)},'
            f'"country":{"null" if country is None else chr(34) + country + chr(34)},'
            f'"pension_start":"{pension_start}","monthly_amount_fen":{amount},'
            f'"disabled":{"true" if disabled else "false"},'
            f'"managing_unit":{chr(34) + unit_names[unit] + chr(34) if gov else "null"}}}\n')
        t_enroll_now[0] = t_enroll
        emit(t_enroll, f'{{"type":"RetireeEnrolled","event_id":"{event_id()}",'
                       f'"recorded_at":{ts(t_enroll)},{enrolled}', "RetireeEnrolled")
        if rand() < p.reenrollment_rate:
            t2 = t_enroll + log_uniform(_HOUR, 20 * _DAY)
            if t2 < WINDOW_OPEN_DAY * _DAY:
                feat["reenrolled"] += 1
                emit(t2, f'{{"type":"RetireeEnrolled","event_id":"{event_id()}",'
                         f'"recorded_at":{ts(t2)},{enrolled}', "RetireeEnrolled")

        # -- death ---------------------------------------------------------------------
        death_day = -1
        death_rec: int | None = None
        fraud = False
        if rand() < p.death_rate:
            feat["deaths"] += 1
            death_day = int(rand() * 360)
            if rand() < p.late_death_report_rate:
                rec = work_office(death_day + 60 + int(rand() * 150))
                late_death = True
            else:
                rec = work_office(death_day + 1 + int(rand() * 20))
                late_death = False
            if rec < t_enroll + _HOUR:
                rec = work_office(t_enroll // _DAY + 1 + int(rand() * 10))
            fraud = rand() < p.fraud_rate
            if rec < HORIZON_DAY * _DAY:
                death_rec = rec
                if late_death:
                    feat["late_death_report"] += 1
            else:
                feat["unreported_death"] += 1

        # -- certifications ------------------------------------------------------------
        # (channel, performed, recorded, agency, source, performed text)
        certs: list[tuple[int, int, int, str, str, str | None]] = []
        if gov:
            if rand() >= p.gov_missed_rate:
                perf, rec = batch_member(unit)
                certs.append((_BATCH, perf, rec, unit_names[unit], unit_names[unit], None))
                kind = unit_kind[unit]
                feat["on_time" if perf // _DAY <= DEADLINE_DAY else "late_certification"] += 1
                if kind == 1:
                    feat["deadline_evening_batch"] += 1
                elif kind == 2:
                    feat["late_unit_batch"] += 1
            else:
                feat["never_certified"] += 1
            if rand() < p.gov_face_app_rate:
                feat["wrong_channel"] += 1
                perf = app_time(window_table[int(rand() * 4096)])
                certs.append((_FACE_APP, perf, perf + 1 + int(rand() * 120), "FS-SIB-FACEAPP",
                              "FS-SIB-FACEAPP", None))
        else:
            chan_pick = (elderly_pick if residence == "FOSHAN" and (elderly or disabled)
                         else channel_picks[residence])
            r = rand()
            day = -1
            if r < on_time_rate:
                day = window_table[int(rand() * 4096)]
                feat["on_time"] += 1
            elif r < on_time_rate + late_cert_rate:
                day = DEADLINE_DAY + 1 + int(-log(1.0 - rand()) * p.late_mean_days)
                if day > _LATE_LAST_DAY:
                    day = DEADLINE_DAY + 1 + int(rand() * (_LATE_LAST_DAY - DEADLINE_DAY))
                feat["late_certification"] += 1
            else:
                feat["never_certified"] += 1
            if day >= 0:
                c = pick_channel(chan_pick)
                if rand() < p.regular_batch_rate:
                    feat["wrong_channel"] += 1
                    u = int(rand() * n_units)
                    perf, rec = batch_member(u)
                    certs.append((_BATCH, perf, rec, unit_names[u], unit_names[u], None))
                elif c == _FACE_APP and rand() < p.window_edge_rate:
                    feat["window_edge"] += 1
                    edge = int(rand() * 3)
                    if edge == 0:  # the app opens at midnight on April 1
                        perf = WINDOW_OPEN_DAY * _DAY + int(rand() * _HOUR)
                    elif edge == 1:  # the last hour of the deadline day
                        perf = DEADLINE_DAY * _DAY + 23 * _HOUR + int(rand() * _HOUR)
                    else:  # minutes too late
                        perf = (DEADLINE_DAY + 1) * _DAY + int(rand() * _HOUR)
                    certs.append((_FACE_APP, perf, perf + 1 + int(rand() * 120),
                                  "FS-SIB-FACEAPP", "FS-SIB-FACEAPP", None))
                else:
                    perf, rec, agency, source, ptext = perf_and_rec(c, day, place, district,
                                                                    country)
                    certs.append((c, perf, rec, agency, source, ptext))
                if rand() < p.twice_rate:
                    feat["certified_twice"] += 1
                    c2 = pick_channel(chan_pick)
                    day2 = certs[-1][1] // _DAY + 1 + int(rand() * 30)
                    perf, rec, agency, source, ptext = perf_and_rec(c2, day2, place, district,
                                                                    country)
                    certs.append((c2, perf, rec, agency, source, ptext))
            if rand() < p.pre_window_rate:
                lo = max(t_enroll // _DAY + 1, _day(date(2017, 3, 1)))
                if lo < WINDOW_OPEN_DAY:
                    feat["pre_window"] += 1
                    c = pick_channel(chan_pick)
                    pday = lo + int(rand() * (WINDOW_OPEN_DAY - lo))
                    if c == _FACE_APP and rand() < 0.3:  # 23:00-23:59 on March 31
                        perf = (WINDOW_OPEN_DAY - 1) * _DAY + 23 * _HOUR + int(rand() * _HOUR)
                        certs.append((c, perf, perf + 1 + int(rand() * 120), "FS-SIB-FACEAPP",
                                      "FS-SIB-FACEAPP", None))
                    else:
                        perf, rec, agency, source, ptext = perf_and_rec(c, pday, place,
                                                                        district, country)
                        certs.append((c, perf, rec, agency, source, ptext))

        if death_day >= 0:
            kept = [x for x in certs if x[1] // _DAY <= death_day or fraud]
            if fraud and not any(x[1] // _DAY > death_day for x in kept):
                fday = death_day + 2 + int(rand() * 60)
                if fday < WINDOW_OPEN_DAY:  # someone certifies for the dead in the campaign
                    fday = window_table[int(rand() * 4096)]
                if fday <= _LATE_LAST_DAY:
                    if rand() < 0.7 or gov:
                        perf = app_time(fday)
                        kept.append((_FACE_APP, perf, perf + 1 + int(rand() * 120),
                                     "FS-SIB-FACEAPP", "FS-SIB-FACEAPP", None))
                    else:
                        c = _COUNTER
                        perf, rec, agency, source, ptext = perf_and_rec(c, fday, place,
                                                                        district, country)
                        kept.append((c, perf, rec, agency, source, ptext))
            feat["certified_after_death"] += sum(
                1 for x in kept if x[1] // _DAY > death_day and x[2] < HORIZON_DAY * _DAY)
            certs = kept
        for c, perf, rec, agency, source, ptext in certs:
            certification(rid, c, perf, rec, agency, source, ptext, death_rec)

        # -- the death itself ----------------------------------------------------------
        if death_rec is not None:
            if residence in ("FOSHAN", "GUANGDONG"):
                source_text = _DEATH_SOURCES_LOCAL[int(rand() * 4)]
                agency = "FS-CIVIL-AFFAIRS"
            elif residence == "ABROAD":
                source_text, agency = "CONSULATE_REPORT", "FS-SIB-CITY"
            elif residence == "MACAU":
                source_text, agency = "MACAU_SSF", "MO-FSS"
            else:
                source_text, agency = "FAMILY_REPORT", "FS-SIB-CITY"
            ddate = days[death_day - first]
            emit(death_rec, f'{{"type":"DeathRecorded","event_id":"{event_id()}",'
                            f'"recorded_at":{ts(death_rec)},"source_agency":"{agency}",'
                            f'"retiree_id":"{rid}","date_of_death":"{ddate}",'
                            f'"source":"{source_text}"}}\n', "DeathRecorded")
            if rand() < p.second_death_report_rate:
                rec2 = death_rec + log_uniform(_DAY, 60 * _DAY)
                if rec2 < HORIZON_DAY * _DAY:
                    feat["second_death_report"] += 1
                    d2 = days[death_day - first + (1 if rand() < 0.3 else 0)]
                    emit(rec2, f'{{"type":"DeathRecorded","event_id":"{event_id()}",'
                               f'"recorded_at":{ts(rec2)},"source_agency":"FS-CIVIL-AFFAIRS",'
                               f'"retiree_id":"{rid}","date_of_death":"{d2}",'
                               f'"source":"HUKOU_CANCELLATION"}}\n', "DeathRecorded")

        if death_day < 0 and crand() < p.wrong_death_rate:
            wrong_death(rid, birth, t_enroll)

        # -- pension amounts -----------------------------------------------------------
        if rand() < p.raise_rate:
            rec = raise_days[int(rand() * len(raise_days))] * _DAY + 21 * _HOUR + int(
                rand() * 3 * _HOUR)
            if death_rec is None or rec < death_rec:
                feat["raise"] += 1
                emit(rec, f'{{"type":"PensionAmountChanged","event_id":"{event_id()}",'
                          f'"recorded_at":{ts(rec)},"source_agency":"FS-SIB-PENSION",'
                          f'"retiree_id":"{rid}",'
                          f'"monthly_amount_fen":{round(amount * raise_factor)},'
                          f'"effective_month":"2017-07"}}\n', "PensionAmountChanged")
        if rand() < p.retro_change_rate:
            rec = work_office(100 + int(rand() * 230))
            if death_rec is None or rec < death_rec:
                feat["retro_change"] += 1
                new_amount = max(1, amount + int(amount * (rand() * 0.1 - 0.05)))
                emit(rec, f'{{"type":"PensionAmountChanged","event_id":"{event_id()}",'
                          f'"recorded_at":{ts(rec)},"source_agency":"FS-SIB-PENSION",'
                          f'"retiree_id":"{rid}","monthly_amount_fen":{new_amount},'
                          f'"effective_month":"2017-01"}}\n', "PensionAmountChanged")

        # -- noise: events for ids never enrolled ----------------------------------------
        if rand() < p.unknown_retiree_rate:
            unknown_event(unknown_count)
            unknown_count += 1

        # -- write the days no later retiree can add to ---------------------------------
        today = t_enroll // _DAY
        if today > flushed[0]:
            yield from flush(today)
        pending_progress += 1
        if pending_progress >= progress_every and progress is not None:
            progress(pending_progress)
            pending_progress = 0

    if progress is not None and pending_progress:
        progress(pending_progress)
    yield from flush(_BUCKETS)
    feat["near_local_midnight"] = near_midnight[0]


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
