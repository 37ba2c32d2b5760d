"""The figures of the campaign report, computed from rows by pure functions (no I/O).

The rows come from the PostgreSQL read models (``projections.queries.report_rows``) or
from the files ``lifecert replay`` writes (``lifecert.report.sources``); both are reduced
to the two row types below first, so one computation serves both.

The as-of cut-off: a certification counts when its completion day (Asia/Shanghai) is on
or before the as-of day; an instruction counts when it was recorded no later than the end
of that day (the instant ``lifecert replay --until`` decides the clock moments up to).
Statuses other than "certified" (deceased, exempt) are those of the rows as read: the read
models keep no history of them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime

from lifecert.domain.clock import cutoff
from lifecert.domain.state import NOT_CERTIFIED
from lifecert.summary import OUTSIDE_RATE, area, yuan

# Channels where the retiree's face was matched: the notice's goal is that these become
# the main way to certify.
FACE_CHANNELS = frozenset({"FACE_APP", "FACE_COUNTER"})


@dataclass(frozen=True)
class RetireeGroup:
    """``n`` retirees sharing these values (one retiree, or a GROUP BY row)."""

    status: str
    district: str | None
    residence: str
    channel: str | None  # the channel that completed the certification, None if none did
    completed_day: date | None  # Asia/Shanghai
    n: int = 1


@dataclass(frozen=True)
class InstructionGroup:
    """``n`` instructions of one type and reason recorded at one instant, with their sums."""

    type: str
    recorded_at: datetime  # aware
    reason: str | None = None
    n: int = 1
    amount_fen: int = 0  # back-pay, overpayment, reinstatement or estate amount
    months: int = 0  # back-pay or overpaid months


@dataclass(frozen=True)
class DeathGroup:
    """``n`` standing deaths reported by ``source`` (DeathRecorded.source: a register, a
    family report, a home visit...; "" when the row does not say) and recorded on ``day``
    (Asia/Shanghai; None when the row does not say)."""

    source: str
    day: date | None
    n: int = 1


@dataclass(frozen=True)
class AreaRow:
    area: str
    in_scope: int
    certified: int
    face: int
    late: int


@dataclass(frozen=True)
class Finding:
    zh: str
    en: str


@dataclass
class Figures:
    """Everything the report shows; amounts in fen."""

    policy: str
    as_of: date | None
    window_opens: date
    deadline: date
    retirees: int = 0
    in_scope: int = 0
    certified: int = 0
    areas: list[AreaRow] = field(default_factory=list)
    channels: Counter[str] = field(default_factory=Counter)
    by_day: list[tuple[date, int]] = field(default_factory=list)
    on_time: int = 0
    late: int = 0
    face: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    holds_placed: Counter[str] = field(default_factory=Counter)  # by reason
    holds_released: int = 0
    backpay_fen: int = 0
    backpay_months: int = 0
    reinstated: int = 0
    reinstated_fen: int = 0
    terminated: int = 0  # payments stopped for a recorded death
    overpayments: int = 0
    overpaid_fen: int = 0
    overpaid_months: int = 0
    overpayments_cancelled: int = 0
    cancelled_fen: int = 0
    estate_fen: int = 0
    fraud: Counter[str] = field(default_factory=Counter)  # by reason
    # the standing deaths by who reported them (deaths found through the registers)
    deaths_by_source: Counter[str] = field(default_factory=Counter)
    home_visits: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def manual(self) -> int:
        return self.certified - self.face

    @property
    def deceased(self) -> int:
        return self.statuses.get("DECEASED", 0)


def rate(part: int, whole: int) -> str:
    """``part`` of ``whole`` as a percentage with one decimal (integer arithmetic)."""
    if whole == 0:
        return "–"
    tenths = (part * 1000 * 2 + whole) // (2 * whole)  # rounded half up
    return f"{tenths // 10}.{tenths % 10}%"


def compute(
    policy: str, window_opens: date, deadline: date, retirees: list[RetireeGroup],
    instructions: list[InstructionGroup], as_of: date | None = None,
    deaths: list[DeathGroup] | None = None,
) -> Figures:
    figures = Figures(policy, as_of, window_opens, deadline)
    _count_retirees(figures, retirees)
    _count_instructions(figures, instructions)
    figures.deaths_by_source = count_deaths(deaths or [], as_of)
    figures.findings = findings(figures)
    return figures


def _count_retirees(figures: Figures, groups: list[RetireeGroup]) -> None:
    as_of, deadline = figures.as_of, figures.deadline
    in_scope: Counter[str] = Counter()
    certified: Counter[str] = Counter()
    face: Counter[str] = Counter()
    late: Counter[str] = Counter()
    days: Counter[date] = Counter()
    for g in groups:
        figures.retirees += g.n
        done = g.channel is not None and (
            as_of is None or (g.completed_day is not None and g.completed_day <= as_of))
        # A certification completed after the as-of day did not exist yet.
        status = g.status if done or g.channel is None else NOT_CERTIFIED
        figures.statuses[status] += g.n
        if g.status in OUTSIDE_RATE:
            continue
        where = area(g.district, g.residence)
        in_scope[where] += g.n
        if not done or g.channel is None:
            continue
        certified[where] += g.n
        figures.channels[g.channel] += g.n
        if g.channel in FACE_CHANNELS:
            face[where] += g.n
        if g.completed_day is not None:
            days[g.completed_day] += g.n
            if g.completed_day > deadline:
                late[where] += g.n
    figures.areas = [
        AreaRow(a, in_scope[a], certified[a], face[a], late[a])
        for a in sorted(in_scope, key=lambda a: (a.startswith("("), a))
    ]
    figures.in_scope = sum(in_scope.values())
    figures.certified = sum(certified.values())
    figures.face = sum(face.values())
    figures.late = sum(late.values())
    figures.on_time = figures.certified - figures.late
    figures.by_day = sorted(days.items())


def _count_instructions(figures: Figures, groups: list[InstructionGroup]) -> None:
    until = None if figures.as_of is None else cutoff(figures.as_of)
    for g in groups:
        if until is not None and g.recorded_at > until:
            continue
        kind = g.type
        if kind == "PaymentHoldPlaced":
            figures.holds_placed[g.reason or "NOT_CERTIFIED"] += g.n
        elif kind == "PaymentHoldReleased":
            figures.holds_released += g.n
            figures.backpay_fen += g.amount_fen
            figures.backpay_months += g.months
        elif kind == "PaymentReinstated":
            figures.reinstated += g.n
            figures.reinstated_fen += g.amount_fen
        elif kind == "PaymentTerminated":
            figures.terminated += g.n
        elif kind == "OverpaymentDetected":
            figures.overpayments += g.n
            figures.overpaid_fen += g.amount_fen
            figures.overpaid_months += g.months
        elif kind == "OverpaymentCancelled":
            figures.overpayments_cancelled += g.n
            figures.cancelled_fen += g.amount_fen
        elif kind == "PaymentEstateSettled":
            figures.estate_fen += g.amount_fen
        elif kind == "FraudSuspected":
            figures.fraud[g.reason or "UNKNOWN"] += g.n
        elif kind == "HomeVisitDue":
            figures.home_visits += g.n


# A death's source is a partner's free text: the report shows at most this many characters
# of it, and folds the rarest sources beyond the first MAX_SOURCES into one line.
SOURCE_CHARS = 40
MAX_SOURCES = 12
OTHER_SOURCES = "(other)"
UNKNOWN_SOURCE = "(not recorded)"


def count_deaths(groups: list[DeathGroup], as_of: date | None) -> Counter[str]:
    """The standing deaths by source, recorded no later than ``as_of`` (when given)."""
    counts: Counter[str] = Counter()
    for g in groups:
        if as_of is not None and g.day is not None and g.day > as_of:
            continue
        text = g.source.strip()[:SOURCE_CHARS] if g.source.strip() else UNKNOWN_SOURCE
        counts[text if text.isprintable() else UNKNOWN_SOURCE] += g.n
    if len(counts) > MAX_SOURCES:
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        kept = Counter(dict(ranked[:MAX_SOURCES - 1]))
        kept[OTHER_SOURCES] += sum(n for _, n in ranked[MAX_SOURCES - 1:])
        counts = kept
    return counts


def findings(f: Figures) -> list[Finding]:
    """The short table of findings: what a reader should take away, in both languages."""
    out = [Finding(
        f"认证率 {rate(f.certified, f.in_scope)}（应认证 {f.in_scope:,} 人，已认证 "
        f"{f.certified:,} 人）",
        f"Certification rate {rate(f.certified, f.in_scope)} ({f.certified:,} of "
        f"{f.in_scope:,} retirees who must certify)")]
    rated = [a for a in f.areas if a.in_scope]
    if len(rated) > 1:
        low = min(rated, key=lambda a: (a.certified * 10**6 // a.in_scope, a.area))
        out.append(Finding(
            f"认证率最低的地区：{district_label(low.area)} {rate(low.certified, low.in_scope)}",
            f"Lowest rate: {low.area} at {rate(low.certified, low.in_scope)}"))
    if f.certified:
        main = f.face * 2 > f.certified
        out.append(Finding(
            f"人脸识别认证占 {rate(f.face, f.certified)}："
            + ("已成为主要认证方式" if main else "尚未成为主要认证方式"),
            f"Face recognition: {rate(f.face, f.certified)} of certifications; "
            + ("it is the main way" if main else "not yet the main way")))
    out.append(Finding(
        f"逾期认证 {f.late:,} 人（截止日 {f.deadline.isoformat()} 之后）",
        f"{f.late:,} certified late (after the {f.deadline.isoformat()} deadline)"))
    placed = sum(f.holds_placed.values())
    out.append(Finding(
        f"暂停发放 {placed:,} 人次，恢复 {f.holds_released:,} 人次，补发 "
        f"{yuan(f.backpay_fen)} 元",
        f"{placed:,} payments suspended, {f.holds_released:,} released with "
        f"{yuan(f.backpay_fen)} yuan back-pay"))
    out.append(Finding(
        f"登记死亡 {f.terminated:,} 人，停发；多发待追回 {f.overpayments:,} 宗，"
        f"{yuan(f.overpaid_fen)} 元",
        f"{f.terminated:,} deaths recorded and payments stopped; {f.overpayments:,} "
        f"overpayments to recover, {yuan(f.overpaid_fen)} yuan"))
    if f.deaths_by_source:
        # ties go to the name first in order: the same whichever source the rows came from
        top, n = min(f.deaths_by_source.items(), key=lambda kv: (-kv[1], kv[0]))
        whole = sum(f.deaths_by_source.values())
        out.append(Finding(
            f"死亡信息来源最多的是 {source_label(top)}：{n:,} 人（共 {whole:,} 人）",
            f"Most deaths were found through {top}: {n:,} of {whole:,}"))
    fraud = sum(f.fraud.values())
    if fraud:
        out.append(Finding(f"疑似冒领预警 {fraud:,} 宗，需核查",
                           f"{fraud:,} fraud alerts to investigate"))
    return out


DISTRICT_NAMES = {
    "CHANCHENG": "禅城区", "NANHAI": "南海区", "SHUNDE": "顺德区", "GAOMING": "高明区",
    "SANSHUI": "三水区", "(FOSHAN)": "（佛山，未分区）", "(GUANGDONG)": "（省内其他市）",
    "(OTHER_PROVINCE)": "（外省）", "(HONG_KONG)": "（香港）", "(MACAU)": "（澳门）",
    "(ABROAD)": "（境外）",
}

CHANNEL_NAMES = {
    "FACE_APP": "手机人脸识别 Face (app)", "FACE_COUNTER": "窗口人脸识别 Face (counter)",
    "COUNTER": "窗口人工 Counter", "PROVINCIAL_XREGION": "省内异地 Province",
    "MINISTRY_OFFSITE": "部异地平台 Ministry", "ASSISTED_OFFICE": "社区协助 Community",
    "ASSISTING_AGENCY": "协助机构 Agency", "CONSULATE": "使领馆 Consulate",
    "HK_AGENCY": "香港机构 HK agency", "MACAU_SSF": "澳门社保 Macau SSF",
    "EMPLOYER_BATCH": "单位批量 Employer", "HOME_VISIT": "上门认证 Home visit",
}


# The death sources the connectors and the API write (DeathRecorded.source).
SOURCE_NAMES = {
    "CIVIL_AFFAIRS": "民政殡葬 Civil affairs", "HUKOU_CANCELLATION": "公安户籍注销 Hukou",
    "DEATH_CERTIFICATE": "卫健死亡医学证明 Death certificate",
    "HOSPITAL_REPORT": "医院报告 Hospital report",
    "CREMATION_RECORD": "火化记录 Cremation record", "FAMILY_REPORT": "家属报告 Family report",
    "HOME_VISIT": "上门核查 Home visit", "CONSULATE_REPORT": "使领馆报告 Consulate",
    "MACAU_SSF": "澳门社保 Macau SSF", UNKNOWN_SOURCE: "未记录 Not recorded",
    OTHER_SOURCES: "其他 Other",
}


def source_label(code: str) -> str:
    return SOURCE_NAMES.get(code, code)


def district_label(code: str) -> str:
    name = DISTRICT_NAMES.get(code)
    return code if name is None else f"{name} {code}"


def channel_label(code: str) -> str:
    return CHANNEL_NAMES.get(code, code)
