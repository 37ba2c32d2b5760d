"""The status page's words, Simplified Chinese first, then English."""

from __future__ import annotations

from lifecert.api import statusanswer as sa

STATUS: dict[str | None, tuple[str, str]] = {
    "CERTIFIED": ("已完成认证", "Certified"),
    "NOT_CERTIFIED": ("尚未认证", "Not certified yet"),
    "PENDING_DOCUMENTS": ("已认证，待寄回认证表", "Certified, waiting for the signed form"),
    "SUSPENDED": ("养老金已暂停发放", "Pension suspended"),
    "EXEMPT": ("本年度无需认证", "No certification needed this year"),
    "DECEASED": ("已登记死亡", "Death recorded"),
    None: ("暂无本年度状态", "No status for this year yet"),
}

CHANNEL: dict[str, tuple[str, str]] = {
    "FACE_APP": ("手机App刷脸认证", "face verification in the mobile app"),
    "FACE_COUNTER": ("窗口刷脸认证", "face verification at an office window"),
    "COUNTER": ("社保经办窗口办理", "at a social-insurance office window"),
    "PROVINCIAL_XREGION": ("省内异地协同认证", "Guangdong cross-region service"),
    "MINISTRY_OFFSITE": ("跨省异地认证", "another province's social-insurance office"),
    "ASSISTED_OFFICE": ("街道、社区协助办理", "with a street office or community"),
    "ASSISTING_AGENCY": ("协助认证机构办理", "with an assisting agency"),
    "CONSULATE": ("中国驻外使领馆办理", "at a Chinese embassy or consulate"),
    "HK_AGENCY": ("香港协助认证机构办理", "with an assisting body in Hong Kong"),
    "MACAU_SSF": ("澳门社会保障基金办理", "at the Macau Social Security Fund"),
    "EMPLOYER_BATCH": ("原单位统一认证", "in your employing unit's batch"),
    "HOME_VISIT": ("上门认证", "on a home visit"),
}

REFUSAL: dict[str, tuple[str, str]] = {
    sa.INVALID: ("输入格式不正确，请检查退休人员编号和身份证号后4位。",
                 "Please check the retiree number and the last 4 characters of the ID number."),
    sa.NO_MATCH: ("没有与该编号及身份证号后4位相符的记录。",
                  "No retiree matches this number and these 4 characters."),
    sa.LOCKED: ("错误次数过多，查询已暂时锁定，请稍后再试。",
                "Too many wrong attempts: queries are locked for a while; please try later."),
    sa.BUDGET_SPENT: ("错误次数过多，查询已暂时锁定，请稍后再试。",
                      "Too many wrong attempts: queries are locked for a while; please try "
                      "later."),
    sa.UNAVAILABLE: ("系统繁忙，请稍后再试。", "The service is busy; please try again shortly."),
}


def channel(code: str | None) -> tuple[str, str] | None:
    if code is None:
        return None
    return CHANNEL.get(code, (code, code))
