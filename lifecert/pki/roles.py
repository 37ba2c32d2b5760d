"""The roles a partner's certificate can carry (``lifecert pki issue AGENCY --role ROLE``),
one per kind of partner. What each role may do, and about whom, is the partner API's
matrix (lifecert/api/authz.py), which must have a row for each and no other (it checks so
when imported).
"""

from __future__ import annotations

ROLES: tuple[str, ...] = (
    "MACAU_SSF",
    "HK_AGENCY",
    "CONSULATE",
    "EMPLOYER",
    "PROVINCIAL_XREGION",
    "MINISTRY_OFFSITE",
    "ASSISTED_OFFICE",
    "ASSISTING_AGENCY",
    "HOME_VISIT",
    "COUNTER",
    "APP",
    "PORTAL",
    "STAFF",
)
