"""The retirees of the API tests (enrolled on the sandbox's events topic before the
server starts) and the ID numbers of two of them."""

from __future__ import annotations

from tests.helpers import enroll, gov_enroll

POLICY = "foshan-2017"
# ID numbers of two retirees: registered as second factors, and searched for afterwards
# in every table and in the server's log (they must appear nowhere).
ID_NUMBERS = {"MO-1": "820000195001011234", "FS-1": "44060419500315002X"}

RETIREES = [
    enroll("MO-1", residence="MACAU", district=None, country="MO"),
    enroll("MO-2", residence="MACAU", district=None, country="MO"),
    enroll("MO-3", residence="MACAU", district=None, country="MO"),
    enroll("FS-1"),
    enroll("FS-2"),
    # the home-visit team's contact updates (tests/api/test_api_contacts.py)
    enroll("HV-1", district="SHUNDE"),
    enroll("AB-1", residence="ABROAD", district=None, country="US"),
    gov_enroll("GOV-A1", managing_unit="UNIT-A"),
    gov_enroll("GOV-B1", managing_unit="UNIT-B"),
]
# Retirees of the face tests (their certifications must not disturb the others').
FACE_RETIREES = ("FC-1", "FC-2", "FC-3", "FC-4", "FC-5", "FC-6", "FC-7")
RETIREES += [enroll(rid) for rid in FACE_RETIREES]
