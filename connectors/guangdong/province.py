"""The provincial system's own vocabulary: paths, field names, codes and time format.

Shared by the simulator (which speaks it), the connectors (which map it to lifecert's
events) and the harnesses (which map lifecert's events to it).

A feed record (``GET /api/v1/certifications``)::

    {"itemId": "GDX17-000000042",          # the feed entry (a resend is a new entry)
     "certNo": "GDXR-17-00000042",         # the certification (a resend keeps it)
     "insuredId": "FS000123456",           # the retiree in the insuring city's system
     "insuredCity": "440600",              # insuring city (division code; 440600 = Foshan)
     "residenceCity": "440100",            # where the retiree lives (optional)
     "certType": "01",                     # see CERT_TYPES
     "handlerOrgCode": "GD-GUANGZHOU-SIB", # the office or agency that certified
     "certTime": "2017-05-02 09:30:00+08:00",
     "reportTime": "2017-05-02 10:12:45+08:00"}   # when it reached the provincial system

An assistance result (``POST /api/v1/assistance-results``, header ``Idempotency-Key``)::

    {"certNo": "...", "insuredId": "GZ000000017", "insuredCity": "440100",
     "assistCity": "440600", "assistMethod": "1", "handlerOrgCode": "FS-NANHAI-OFFICE02",
     "certTime": "2017-05-02 09:30:00+08:00"}

Assistance cases (协助认证案件): either city registers a case with the province, which
routes it to the other. The feed's ``recordType`` tells a case's records from the
certifications (a record without one is a certification, ``CERT``):

- ``ASSIST_CASE``: another city asks Foshan to certify its retiree living in Foshan::

    {"recordType": "ASSIST_CASE", "caseNo": "GDXC-440100-17-000042",
     "insuredId": "GZ000000017", "insuredCity": "440100", "assistCity": "440600",
     "registerTime": "2017-04-03 09:00:00+08:00"}

  Foshan answers it with ``POST /api/v1/assistance-cases/{caseNo}/answer``
  (``Idempotency-Key``; body :data:`ANSWER_FIELDS`, ``deathDate`` with result 3).
- Foshan registers a case about its retiree living elsewhere in the province:
  ``POST /api/v1/assistance-cases`` (``Idempotency-Key``; body :data:`CASE_FIELDS`, plus
  ``dueDate``); the province's receipt is in the answer and in the feed::

    {"recordType": "ASSIST_CASE_RECEIPT", "caseNo": "FS-2017-FS000123", "insuredId":
     "FS000123", "receiptNo": "GDXR-20170515-00000001",
     "receiveTime": "2017-05-15 09:00:01+08:00"}

- ``ASSIST_CASE_ANSWER``: the residence city's office answered Foshan's case (a
  certification, when it certified the retiree, is its own ``CERT`` record)::

    {"recordType": "ASSIST_CASE_ANSWER", "caseNo": "FS-2017-FS000123",
     "insuredId": "FS000123", "result": "1", "certNo": "GDXR-17-00000042",
     "assistMethod": "1", "handlerOrgCode": "GD-GUANGZHOU-SIB",
     "certTime": "2017-05-20 10:00:00+08:00", "reportTime": "2017-05-20 10:30:00+08:00"}
"""

from __future__ import annotations

from datetime import datetime
from typing import Final
from urllib.parse import quote

from lifecert.events import bounds
from lifecert.events.time import SHANGHAI

FEED_PATH: Final = "/api/v1/certifications"
RESULTS_PATH: Final = "/api/v1/assistance-results"
HEALTH_PATH: Final = "/api/v1/health"
CASES_PATH: Final = "/api/v1/assistance-cases"
IDEMPOTENCY_HEADER: Final = "Idempotency-Key"


def answer_path(case_no: str) -> str:
    """Where Foshan answers the province's case ``case_no`` (quoted: a case number is the
    other city's text)."""
    return f"{CASES_PATH}/{quote(case_no, safe='')}/answer"

MAX_PAGE: Final = 1000

FOSHAN: Final = "440600"

# lifecert's region names (AssistanceResult.home_region, the generator's cities) and the
# cities' administrative division codes (GB/T 2260), which the province uses.
CITY_CODES: Final[dict[str, str]] = {
    "GUANGZHOU": "440100", "SHAOGUAN": "440200", "SHENZHEN": "440300", "ZHUHAI": "440400",
    "SHANTOU": "440500", "FOSHAN": "440600", "JIANGMEN": "440700", "ZHANJIANG": "440800",
    "MAOMING": "440900", "ZHAOQING": "441200", "HUIZHOU": "441300", "MEIZHOU": "441400",
    "SHANWEI": "441500", "HEYUAN": "441600", "YANGJIANG": "441700", "QINGYUAN": "441800",
    "DONGGUAN": "441900", "ZHONGSHAN": "442000", "CHAOZHOU": "445100", "JIEYANG": "445200",
    "YUNFU": "445300",
}
CITY_NAMES: Final[dict[str, str]] = {code: name for name, code in CITY_CODES.items()}

# certType of a feed record: who certified the Foshan retiree living elsewhere.
CERT_TYPES: Final[dict[str, str]] = {
    "01": "PROVINCIAL_XREGION",  # 省内异地协助认证: face/ID check in the provincial system
    "02": "ASSISTED_OFFICE",     # 居住地社保经办机构协助 (paper form follows)
    "03": "ASSISTING_AGENCY",    # 派出所、街道、社区协助 (form 1 follows)
}
CERT_TYPE_OF_CHANNEL: Final[dict[str, str]] = {ch: code for code, ch in CERT_TYPES.items()}

# assistMethod of an assistance result: how Foshan certified another city's retiree.
ASSIST_METHODS: Final[dict[str, str]] = {"COUNTER": "1", "FACE_COUNTER": "2", "HOME_VISIT": "3"}

RECORD_FIELDS: Final = ("itemId", "certNo", "insuredId", "insuredCity", "certType",
                        "handlerOrgCode", "certTime", "reportTime")
# recordType of a feed record (none: CERT)
CERT: Final = "CERT"
ASSIST_CASE: Final = "ASSIST_CASE"
ASSIST_CASE_RECEIPT: Final = "ASSIST_CASE_RECEIPT"
ASSIST_CASE_ANSWER: Final = "ASSIST_CASE_ANSWER"
RECORD_TYPES: Final = (CERT, ASSIST_CASE, ASSIST_CASE_RECEIPT, ASSIST_CASE_ANSWER)

# result of a case answer, both directions
CASE_RESULTS: Final[dict[str, str]] = {"1": "CERTIFIED_ALIVE", "2": "NOT_FOUND",
                                       "3": "DECEASED"}
CASE_RESULT_OF_OUTCOME: Final[dict[str, str]] = {o: c for c, o in CASE_RESULTS.items()}

# Foshan's case (POST CASES_PATH) and an answer to a case (POST answer_path(caseNo)): the
# required text fields (deathDate too with result 3)
CASE_FIELDS: Final = ("caseNo", "insuredId", "insuredCity", "registerTime", "dueDate")
ANSWER_FIELDS: Final = ("result", "certNo", "assistCity", "assistMethod", "handlerOrgCode",
                        "certTime")

RESULT_FIELDS: Final = ("certNo", "insuredId", "insuredCity", "assistCity", "assistMethod",
                        "handlerOrgCode", "certTime")


def format_time(instant: datetime) -> str:
    """The province's time format: Beijing wall time with its offset, a space before the
    time, e.g. ``2017-05-02 09:30:00+08:00`` (microseconds only when there are some)."""
    if instant.utcoffset() is None:
        raise ValueError(f"naive datetime {instant.isoformat()}: a UTC offset is required")
    return instant.astimezone(SHANGHAI).isoformat(sep=" ")


def parse_time(text: object) -> datetime:
    """A time in the province's format (``T`` accepted for the space); ``ValueError``
    saying what was expected for anything else, including a time without its offset."""
    if not isinstance(text, str):
        raise ValueError(f"expected a time like 2017-05-02 09:30:00+08:00, got "
                         f"{bounds.show(text)}")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"expected a time like 2017-05-02 09:30:00+08:00, got "
                         f"{bounds.show(text)}") from None
    if parsed.utcoffset() is None:
        raise ValueError(f"time {bounds.show(text)} has no UTC offset; the province writes "
                         f"+08:00")
    return parsed


def city_label(code: str) -> str:
    """``440600 (FOSHAN)`` for messages."""
    name = CITY_NAMES.get(code)
    return f"{code} ({name})" if name else code
