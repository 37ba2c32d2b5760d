"""What a retiree should do next, in plain Chinese and English, from the status, where
the retiree lives, the scheme, and the cycle's deadline."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import cache

from lifecert.domain.policy import PolicyError, load_policy


@dataclass(frozen=True)
class Step:
    code: str
    zh: str
    en: str


@cache
def deadline_of(policy: str) -> date | None:
    try:
        return load_policy(policy).deadline
    except (PolicyError, OSError, ValueError):
        return None


# Where to certify, by residence: (Chinese, English).
_WHERE: dict[str, tuple[str, str]] = {
    "FOSHAN": (
        "用手机App“刷脸”认证，或带身份证到社保经办窗口办理",
        "use face verification in the mobile app, or bring your ID card to a "
        "social-insurance office",
    ),
    "GUANGDONG": (
        "到当地社保经办机构通过省内异地协同认证办理，或用手机App“刷脸”认证",
        "certify at the local social-insurance office (Guangdong cross-region service), "
        "or use face verification in the mobile app",
    ),
    "OTHER_PROVINCE": (
        "到居住地社保经办机构或街道、社区办理，或用手机App“刷脸”认证",
        "certify at the social-insurance office, street office or community where you "
        "live, or use face verification in the mobile app",
    ),
    "HONG_KONG": (
        "到香港的协助认证机构办理，或用手机App“刷脸”认证",
        "certify with an assisting body in Hong Kong, or use face verification in the "
        "mobile app",
    ),
    "MACAU": (
        "到澳门社会保障基金办理，或用手机App“刷脸”认证",
        "certify at the Macau Social Security Fund, or use face verification in the "
        "mobile app",
    ),
    "ABROAD": (
        "到所在国的中国使领馆办理（表二），或用手机App“刷脸”认证",
        "certify at a Chinese embassy or consulate in your country of residence (form 2), "
        "or use face verification in the mobile app",
    ),
}
_UNIT = (
    "由您的原单位统一办理，请与单位联系",
    "your employing unit certifies you in its batch; contact your unit",
)


def _by(deadline: date | None) -> tuple[str, str]:
    if deadline is None:
        return "", ""
    return (
        f"请在{deadline.year}年{deadline.month}月{deadline.day}日前",
        f"before {deadline.day} {deadline:%B} {deadline.year}, ",
    )


def next_step(
    status: str | None,
    policy: str,
    residence: str | None,
    unit_certifies: bool,
    hold_month: str | None = None,
) -> Step:
    """The next step for a retiree with ``status`` in the cycle ``policy``."""
    where_zh, where_en = _UNIT if unit_certifies else _WHERE.get(
        residence or "FOSHAN", _WHERE["FOSHAN"]
    )
    if status == "NOT_CERTIFIED":
        by_zh, by_en = _by(deadline_of(policy))
        return Step(
            "CERTIFY_BEFORE_DEADLINE",
            f"您本年度尚未完成认证。{by_zh}{where_zh}。逾期未认证将暂停发放养老金。",
            f"You have not been certified this year. Please, {by_en}{where_en}. "
            "Without certification by the deadline your pension is suspended.",
        )
    if status == "PENDING_DOCUMENTS":
        return Step(
            "RETURN_FORM",
            "认证已登记，请尽快将签字盖章的认证表寄回社保经办机构，收到后即完成认证。",
            "Your certification is recorded. Please mail the signed and stamped form back "
            "to the social-insurance bureau; it is complete once the form arrives.",
        )
    if status == "SUSPENDED":
        month = f"（自{hold_month}起）" if hold_month else ""
        month_en = f" (from {hold_month})" if hold_month else ""
        return Step(
            "CERTIFY_TO_RESUME",
            f"您的养老金已暂停发放{month}。请尽快认证：{where_zh}。认证完成后的次月恢复发放，"
            "并补发暂停期间的养老金。",
            f"Your pension is suspended{month_en}. Please certify as soon as you can: "
            f"{where_en}. Payment resumes the month after, with the suspended months paid "
            "back.",
        )
    if status == "CERTIFIED":
        return Step(
            "NOTHING_TO_DO",
            "您本年度已完成认证，无需再办理。",
            "You are certified for this year; there is nothing more to do.",
        )
    if status == "EXEMPT":
        return Step(
            "NOT_REQUIRED",
            "您本年度无需认证。",
            "You do not need to certify this year.",
        )
    if status == "DECEASED":
        return Step(
            "CONTACT_BUREAU",
            "已登记死亡，养老金已停发。请家属联系社保经办机构办理后续手续。",
            "A death is recorded and the pension has stopped. Family members, please "
            "contact the social-insurance bureau for the next formalities.",
        )
    return Step(
        "NO_DECISION_YET",
        "暂未查到本年度的认证状态，请稍后再查询。",
        "No status for this year is available yet; please check again later.",
    )


# Why a certification did not count, by reason code (lifecert/domain/reasons.py), in the
# retiree's words: (Chinese, English). CHANNEL_NOT_ALLOWED depends on who certifies them.
_NOT_COUNTED: dict[str, tuple[str, str]] = {
    "OUTSIDE_WINDOW": (
        "认证办理时间早于本年度认证开始日期",
        "it was done before this year's certification period opened",
    ),
    "RETIREE_DECEASED": (
        "系统中已登记死亡",
        "a death is recorded",
    ),
    "CERTIFICATION_REVOKED": (
        "该认证已被撤销",
        "that certification was revoked",
    ),
    "CERTIFICATION_NOT_COUNTING": (
        "所寄回的认证表对应的认证未被计入",
        "the form returned belongs to a certification that did not count",
    ),
    "DOCUMENTS_NOT_REQUIRED": (
        "该认证方式无需寄回认证表",
        "that way of certifying needs no form",
    ),
}
_CHANNEL_UNIT = ("您只能由原单位统一认证", "only your employing unit may certify you")
_CHANNEL_NOT_UNIT = (
    "单位批量认证只适用于由原单位认证的人员",
    "an employing unit's batch counts only for those their unit certifies",
)
# Verdicts a retiree is told about: their certifications and returned forms that did not
# count (a duplicate changes nothing and is not worth a word).
EXPLAINED_TYPES = ("CertificationRecorded", "CertificationDocumentsReceived")
EXPLAINED_REASONS = ("CHANNEL_NOT_ALLOWED", *_NOT_COUNTED)


def not_counted(
    reason: str, judged_type: str, on: date | None, unit_certifies: bool
) -> tuple[str, str]:
    """One sentence each in Chinese and English: the retiree's certification (or form)
    of ``on`` (a local date) did not count, and why."""
    if reason == "CHANNEL_NOT_ALLOWED":
        why_zh, why_en = _CHANNEL_UNIT if unit_certifies else _CHANNEL_NOT_UNIT
    else:
        why_zh, why_en = _NOT_COUNTED.get(reason, (f"原因代码 {reason}", f"reason code {reason}"))
    form = judged_type == "CertificationDocumentsReceived"
    what_zh, what_en = ("寄回的认证表", "returned form") if form else ("认证", "certification")
    if on is None:
        when_zh, when_en = "", ""
    else:
        when_zh = f"于{on.year}年{on.month}月{on.day}日办理的"
        when_en = f" of {on.day} {on:%B} {on.year}"
    return (
        f"您{when_zh}{what_zh}未被计入：{why_zh}。",
        f"Your {what_en}{when_en} did not count: {why_en}.",
    )
