"""The report's content as blocks (headings, paragraphs, tables, charts) built from the
figures: the HTML and the PDF render the same blocks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from lifecert.report.charts import Chart, columns, hbars, split_bar
from lifecert.report.figures import (
    Figures,
    channel_label,
    district_label,
    rate,
    source_label,
)
from lifecert.summary import yuan


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Para:
    text: str


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    numeric: tuple[bool, ...]  # per column: right-aligned


@dataclass(frozen=True)
class Figure:
    chart: Chart


Block = Heading | Para | Table | Figure


@dataclass(frozen=True)
class Document:
    title: str
    subtitle: str
    blocks: tuple[Block, ...]


def build(f: Figures, generated_on: date, source: str) -> Document:
    cut = f.as_of.isoformat() if f.as_of else "最新 latest"
    title = f"养老金领取资格认证工作报告 Pension certification campaign report ({f.policy})"
    subtitle = (f"截至 As of: {cut} · 认证期 Window: {f.window_opens.isoformat()} – "
                f"{f.deadline.isoformat()} · 数据来源 Source: {source} · "
                f"生成日期 Generated: {generated_on.isoformat()}")
    blocks: list[Block] = [Heading("主要结论 Findings"), Table(
        ("中文", "English"), tuple((x.zh, x.en) for x in f.findings), (False, False))]
    blocks += _certification(f)
    blocks += _payments(f)
    blocks += _deaths(f)
    return Document(title, subtitle, tuple(blocks))


def _certification(f: Figures) -> list[Block]:
    blocks: list[Block] = [
        Heading("认证情况 Certification"),
        Para(f"应认证 {f.in_scope:,} 人（全部在册 {f.retirees:,} 人，不含已故及免认证）；"
             f"已认证 {f.certified:,} 人，认证率 {rate(f.certified, f.in_scope)}。 "
             f"{f.certified:,} of {f.in_scope:,} retirees who must certify have certified "
             f"({f.retirees:,} on the rolls; the deceased and exempt are left out)."),
        Figure(hbars("各地区认证率 Certification rate by district",
                     [(district_label(a.area), a.certified, a.in_scope) for a in f.areas])),
        Table(("地区 District", "应认证 In scope", "已认证 Certified", "认证率 Rate",
               "人脸 Face", "逾期 Late"),
              (*((district_label(a.area), f"{a.in_scope:,}", f"{a.certified:,}",
                  rate(a.certified, a.in_scope), f"{a.face:,}", f"{a.late:,}")
                 for a in f.areas),
               ("合计 All", f"{f.in_scope:,}", f"{f.certified:,}",
                rate(f.certified, f.in_scope), f"{f.face:,}", f"{f.late:,}")),
              (False, True, True, True, True, True)),
        Figure(split_bar("人脸识别与人工认证 Face versus manual",
                         [("人脸识别 Face", f.face), ("其他方式 Manual and other", f.manual)])),
        Figure(hbars("各认证渠道 Certifications by channel",
                     [(channel_label(c), n, f.certified)
                      for c, n in sorted(f.channels.items(), key=lambda x: (-x[1], x[0]))])),
        Figure(split_bar("按时与逾期 On time versus late",
                         [(f"按时 On time (≤ {f.deadline.isoformat()})", f.on_time),
                          ("逾期 Late", f.late)])),
    ]
    if f.by_day:
        weeks = _weekly(f.by_day)
        blocks.append(Figure(columns(
            "每周认证人数 Certifications per week (week starting)",
            [(d.strftime("%m-%d"), n) for d, n in weeks], every=max(1, len(weeks) // 8))))
    return blocks


def _weekly(days: list[tuple[date, int]]) -> list[tuple[date, int]]:
    """Daily counts summed by week (weeks starting on the first day counted)."""
    first = days[0][0]
    weeks: dict[int, int] = {}
    for d, n in days:
        k = (d - first).days // 7
        weeks[k] = weeks.get(k, 0) + n
    last = max(weeks)
    return [(first + timedelta(days=7 * k), weeks.get(k, 0)) for k in range(last + 1)]


def _payments(f: Figures) -> list[Block]:
    placed = sum(f.holds_placed.values())
    rows: list[tuple[str, str, str]] = [
        ("暂停发放 Payments suspended", f"{placed:,}", ""),
        ("  其中未认证 of which not certified", f"{f.holds_placed.get('NOT_CERTIFIED', 0):,}",
         ""),
        ("  其中撤销认证 of which certification revoked",
         f"{f.holds_placed.get('CERTIFICATION_REVOKED', 0):,}", ""),
        ("恢复发放 Released (back-pay)", f"{f.holds_released:,}",
         f"{yuan(f.backpay_fen)} ({f.backpay_months:,} 月 months)"),
        ("重新发放 Reinstated", f"{f.reinstated:,}", yuan(f.reinstated_fen)),
        ("登记死亡停发 Deaths recorded, payments stopped", f"{f.terminated:,}", ""),
        ("多发待追回 Overpayments detected", f"{f.overpayments:,}",
         f"{yuan(f.overpaid_fen)} ({f.overpaid_months:,} 月 months)"),
        ("多发撤销 Overpayments cancelled", f"{f.overpayments_cancelled:,}",
         yuan(f.cancelled_fen)),
        ("遗属结算 Paid to estates", "", yuan(f.estate_fen)),
        ("上门核查 Home visits due", f"{f.home_visits:,}", ""),
    ]
    for reason, n in sorted(f.fraud.items()):
        rows.append((f"疑似冒领 Fraud alert: {reason}", f"{n:,}", ""))
    if not f.fraud:
        rows.append(("疑似冒领 Fraud alerts", "0", ""))
    blocks: list[Block] = [
        Heading("待遇发放 Payments"),
        Para("金额以分为单位计算，以元显示（保留两位小数）。 Amounts are summed in fen and "
             "shown in yuan with two decimals. 死亡人数为经死亡登记（民政、公安、医院等）"
             "或其他报告确认的人数，来源见下节。 Deaths are those recorded from the "
             "registers or other reports; the next section splits them by source."),
        Table(("项目 Item", "人次 Count", "金额（元） Amount (yuan)"), tuple(rows),
              (False, True, True)),
    ]
    if placed:
        blocks.append(Figure(hbars("暂停后恢复 Suspensions released",
                                   [("恢复 Released", f.holds_released, placed)])))
    return blocks


def _deaths(f: Figures) -> list[Block]:
    """The standing deaths by who reported them: the registers (civil affairs, public
    security, health), families, home visits, partners abroad."""
    whole = sum(f.deaths_by_source.values())
    ranked = sorted(f.deaths_by_source.items(), key=lambda x: (-x[1], x[0]))
    blocks: list[Block] = [
        Heading("死亡信息来源 Deaths found through the registers"),
        Para(f"已故 {whole:,} 人，按报告死亡的登记或渠道（以现存有效的死亡报告为准）。 "
             f"{whole:,} deceased, by the register or report whose death record stands."),
    ]
    if not ranked:
        return blocks
    blocks.append(Table(
        ("来源 Source", "人数 Deaths", "占比 Share"),
        (*((source_label(s), f"{n:,}", rate(n, whole)) for s, n in ranked),
         ("合计 All", f"{whole:,}", rate(whole, whole))),
        (False, True, True)))
    blocks.append(Figure(hbars("死亡信息来源 Deaths by source",
                               [(source_label(s), n, whole) for s, n in ranked])))
    return blocks
