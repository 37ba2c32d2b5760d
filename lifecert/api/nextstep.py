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
