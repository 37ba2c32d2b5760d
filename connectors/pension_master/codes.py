"""The pension master system's code tables and formats, and lifecert's names for them.

The master system speaks the national social-insurance codes, not lifecert's enums: the
connector maps master -> lifecert, the simulator (which plays a campaign into the master)
maps back, both from the tables here, so the two directions cannot drift apart.

Formats of the master system: dates ``YYYYMMDD``, months ``YYYYMM``, money in integer fen,
flags ``"1"`` / ``"0"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

# Outbox event kinds written by the master's write functions (schema.sql).
ENROLLED = "retiree.enrolled"
AMOUNT_CHANGED = "pension.amount_changed"
KINDS = (ENROLLED, AMOUNT_CHANGED)

# The master's fields of each outbox payload (schema.sql builds them from the business
# rows); the nullable ones may be JSON null.
ENROLLED_FIELDS = (
    "person_no", "full_name", "birth_date", "insurance_type", "personnel_class",
    "residence_type", "district_code", "country_code", "start_date", "monthly_amount_fen",
    "disability_flag", "unit_name",
)
ENROLLED_NULLABLE = frozenset({"district_code", "country_code", "unit_name"})
AMOUNT_CHANGED_FIELDS = ("person_no", "amount_fen", "effective_month", "previous_amount_fen")
AMOUNT_CHANGED_NULLABLE = frozenset({"previous_amount_fen"})


def _table(pairs: dict[str, str]) -> Mapping[str, str]:
    return MappingProxyType(pairs)


# 险种类型: the national insurance-type codes.
SCHEME = _table({
    "110": "URBAN_EMPLOYEE",        # 企业职工基本养老保险
    "120": "GOV_INSTITUTION",       # 机关事业单位养老保险
    "170": "URBAN_RURAL_RESIDENT",  # 城乡居民基本养老保险
})
# 人员类别: retired (退休) or retired cadre (离休).
CATEGORY = _table({"1": "REGULAR", "2": "CADRE_RETIREE"})
# 居住地类型.
RESIDENCE = _table({
    "1": "FOSHAN",          # 本市
    "2": "GUANGDONG",       # 省内异地
    "3": "OTHER_PROVINCE",  # 省外
    "4": "HONG_KONG",
    "5": "MACAU",
    "6": "ABROAD",          # 国外
})
# Administrative division codes (GB/T 2260) of Foshan's districts.
DISTRICT = _table({
    "440604": "CHANCHENG",
    "440605": "NANHAI",
    "440606": "SHUNDE",
    "440607": "SANSHUI",
    "440608": "GAOMING",
})
FLAG = MappingProxyType({"1": True, "0": False})


def inverse(table: Mapping[str, str]) -> Mapping[str, str]:
    """lifecert name -> master code."""
    return MappingProxyType({name: code for code, name in table.items()})
