"""The authorization matrix of the partner API: what each role may do, and about whom.

This is the one place that decides. A client certificate names an agency and a role
(``lifecert pki issue AGENCY --role ROLE``); the server looks the role up here. Every
refusal is a :class:`Refusal` whose text is sent to the caller with PERMISSION_DENIED,
except a retiree outside the caller's scope: the servicers answer that exactly as they
answer a retiree who is not enrolled, and the texts here name the caller's scope only.

Scope is about the retiree an item concerns, from the API's retiree directory (the
RetireeEnrolled records): where the retiree resides, and which unit manages a
government retiree. The same scope applies to what a role reports, what it receives by
Subscribe and whose status it may query.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lifecert.events.catalogue import OUTPUT_TYPES, VERDICT_TYPES
from lifecert.pki.roles import ROLES

# Method names used in the matrix (and in the audit table).
SUBMIT = "PartnerExchange/SubmitBatch"
SUBSCRIBE = "PartnerExchange/Subscribe"
ACKNOWLEDGE = "PartnerExchange/Acknowledge"
STATUS = "StatusQuery/GetStatus"
FACE_ENROLL = "FaceVerification/Enroll"
FACE_VERIFY = "FaceVerification/Verify"
FACE_CHALLENGE = "FaceVerification/BeginChallenge"
CONSULAR_LIST = "ConsularReview/ListCases"
CONSULAR_REVIEW = "ConsularReview/Review"

# Event kinds a partner may submit.
CERTIFICATION = "CertificationRecorded"
DOCUMENTS = "CertificationDocumentsReceived"
DEATH = "DeathRecorded"
REVOCATION = "CertificationRevoked"
RETRACTION = "DeathReportRetracted"
# Foshan's answer to a partner's INBOUND case (Macau SSF's form 3, a Guangdong city's
# case): on the assistance-results topic, never on the events topic (the people asked
# about are not Foshan pensioners: no payment instruction)
FORM3_RESULT = "AssistanceResult"

PAYMENT_TYPES = frozenset(
    {"PaymentHoldPlaced", "PaymentHoldReleased", "PaymentTerminated", "PaymentReinstated",
     "OverpaymentCancelled", "PaymentEstateSettled"}
)
# EventRejected: each agency receives the verdicts on what it reported (reported_by), of
# any retiree; every role that submits receives them (partner.py, Subscribe).
VERDICTS_FEED = frozenset(VERDICT_TYPES)
PARTNER_FEED = PAYMENT_TYPES | {"RetireeStatus"} | VERDICTS_FEED


class Refusal(Exception):
    """The caller may not do this; ``str()`` is the reason sent with PERMISSION_DENIED."""


@dataclass(frozen=True)
class Retiree:
    """What the directory knows of a retiree (the fields the matrix needs)."""

    retiree_id: str
    residence: str
    managing_unit: str | None
    scheme: str
    category: str


@dataclass(frozen=True)
class Scope:
    """Whose events a role may handle: ``residences`` (None: any residence) and, with
    ``own_unit``, only the retirees whose managing unit is the calling agency."""

    residences: frozenset[str] | None = None
    own_unit: bool = False

    def allows(self, agency: str, retiree: Retiree) -> bool:
        """May ``agency`` act for ``retiree``?"""
        if self.residences is not None and retiree.residence not in self.residences:
            return False
        return not (self.own_unit and retiree.managing_unit != agency)

    def describe(self, agency: str) -> str:
        """Whom the scope covers, in words (about the caller, never about a retiree)."""
        if self.everyone:
            return "any retiree"
        words = []
        if self.residences is not None:
            words.append("retirees residing in " + " or ".join(sorted(self.residences)))
        if self.own_unit:
            words.append(f"the retirees its own unit ({agency}) manages")
        return " and ".join(words)

    def check(self, role: str, agency: str, retiree: Retiree) -> None:
        """Raises :class:`Refusal` when ``agency`` may not act for ``retiree``. The text
        names the caller's scope only: where the retiree lives, which unit manages them
        and whether they are enrolled are not the business of an agency outside that
        scope, so an out-of-scope retiree reads like an unknown one."""
        if not self.allows(agency, retiree):
            raise Refusal(out_of_scope(role, agency, self))

    @property
    def everyone(self) -> bool:
        return self.residences is None and not self.own_unit


def out_of_scope(role: str, agency: str, scope: Scope) -> str:
    """The one text for a retiree the caller may not act for, or that is not enrolled."""
    return (f"no retiree with this id is enrolled that role {role} may act for "
            f"({scope.describe(agency)})")


@dataclass(frozen=True)
class RoleRules:
    description: str
    channels: frozenset[str] = frozenset()  # channels it may report by SubmitBatch
    documents: bool = False  # may report CertificationDocumentsReceived
    deaths: bool = False  # may report DeathRecorded
    # Rules 12-13: a role that reports certifications may revoke its own (the
    # certification's agency is the caller); one with revokes_any may revoke any agency's;
    # only one with retracts may retract a death report.
    revokes_any: bool = False
    retracts: bool = False
    # May name who reported a death (DeathReport.source: the family at a counter, a
    # mission's letter) rather than be its source itself: bureau staff only.
    names_death_source: bool = False
    # May answer partners' INBOUND cases (Macau SSF's form 3, a Guangdong city's case;
    # Form3Result): the bureau's windows
    form3_results: bool = False
    scope: Scope = field(default_factory=Scope)
    feed: frozenset[str] = frozenset()  # event types it receives by Subscribe
    # EventRejected of every agency (else only those on what the caller reported)
    all_verdicts: bool = False
    status_query: bool = False
    face_enroll: bool = False
    face_channel: str | None = None  # channel a face MATCH records, when it may verify
    consular_review: bool = False  # may list and review the consular system's cases
    # Acts for members of the public behind it (the portal, the app): it may name the
    # client address of a status query, which then keys the second-factor lockout too.
    public_front: bool = False
    # Token bucket of the agency: sustained units per second and burst (a unit is one
    # call, or one item of a batch).
    rate: float = 50.0
    burst: float = 500.0

    @property
    def submits(self) -> bool:
        return (bool(self.channels) or self.documents or self.deaths or self.revokes_any
                or self.retracts or self.form3_results)

    @property
    def revokes(self) -> bool:
        return bool(self.channels) or self.revokes_any


_DOMESTIC_ELSEWHERE = frozenset({"GUANGDONG", "OTHER_PROVINCE"})

MATRIX: dict[str, RoleRules] = {
    "MACAU_SSF": RoleRules(
        "Macau Social Security Fund",
        channels=frozenset({"MACAU_SSF"}), deaths=True,
        scope=Scope(frozenset({"MACAU"})), feed=PARTNER_FEED, status_query=True,
    ),
    "HK_AGENCY": RoleRules(
        "Hong Kong assisting body",
        channels=frozenset({"HK_AGENCY"}), deaths=True,
        scope=Scope(frozenset({"HONG_KONG"})), feed=PARTNER_FEED, status_query=True,
    ),
    "CONSULATE": RoleRules(
        "embassy, consulate or trade office (form 2)",
        channels=frozenset({"CONSULATE"}), deaths=True,
        scope=Scope(frozenset({"ABROAD"})), feed=PARTNER_FEED, status_query=True,
    ),
    "EMPLOYER": RoleRules(
        "managing unit of government retirees (batch certification)",
        channels=frozenset({"EMPLOYER_BATCH"}), deaths=True,
        scope=Scope(own_unit=True), feed=PARTNER_FEED, status_query=True,
        rate=200.0, burst=5000.0,
    ),
    "PROVINCIAL_XREGION": RoleRules(
        "Guangdong cross-region collaboration system",
        channels=frozenset({"PROVINCIAL_XREGION"}),
        scope=Scope(frozenset({"GUANGDONG"})), feed=PARTNER_FEED, status_query=True,
        rate=500.0, burst=5000.0,
    ),
    "MINISTRY_OFFSITE": RoleRules(
        "the ministry's off-site retiree system",
        channels=frozenset({"MINISTRY_OFFSITE"}),
        scope=Scope(frozenset({"OTHER_PROVINCE"})), feed=PARTNER_FEED, status_query=True,
        rate=500.0, burst=5000.0,
    ),
    "ASSISTED_OFFICE": RoleRules(
        "another region's social-insurance office",
        channels=frozenset({"ASSISTED_OFFICE"}),
        scope=Scope(_DOMESTIC_ELSEWHERE), status_query=True, feed=VERDICTS_FEED,
    ),
    "ASSISTING_AGENCY": RoleRules(
        "police station, street office or community (form 1)",
        channels=frozenset({"ASSISTING_AGENCY"}),
        scope=Scope(_DOMESTIC_ELSEWHERE), status_query=True, feed=VERDICTS_FEED,
    ),
    "HOME_VISIT": RoleRules(
        "the bureau's home-visit team",
        # issue 14: a team that finds a retiree deceased reports it in its results file,
        # to the death review queue: never a DeathRecorded on its own (no deaths here)
        channels=frozenset({"HOME_VISIT"}),
        scope=Scope(frozenset({"FOSHAN"})),
        feed=frozenset({"HomeVisitDue", "RetireeStatus"}) | VERDICTS_FEED, status_query=True,
    ),
    "COUNTER": RoleRules(
        "a window of the bureau (ID card check, camera, returned paper forms)",
        channels=frozenset({"COUNTER"}), documents=True, status_query=True, feed=VERDICTS_FEED,
        face_channel="FACE_COUNTER", form3_results=True,
    ),
    "APP": RoleRules(
        "the bureau's mobile app (remote face verification)",
        face_channel="FACE_APP", status_query=True, rate=200.0, burst=1000.0,
        public_front=True,
    ),
    "PORTAL": RoleRules(
        "the retirees' portal and WeChat account (status queries)",
        status_query=True, rate=2000.0, burst=4000.0, public_front=True,
    ),
    "STAFF": RoleRules(
        "bureau staff (face enrollment, returned forms, deaths, corrections, the whole feed, "
        "consular case reviews)",
        documents=True, deaths=True, revokes_any=True, retracts=True, names_death_source=True,
        feed=frozenset(OUTPUT_TYPES) | {"RetireeStatus"} | VERDICTS_FEED, all_verdicts=True,
        status_query=True, face_enroll=True, consular_review=True,
    ),
}

if tuple(MATRIX) != ROLES:  # the matrix decides for every role a certificate can carry
    raise RuntimeError(f"lifecert/api/authz.py: the matrix's roles {tuple(MATRIX)} differ from "
                       f"those certificates carry (lifecert/pki/roles.py): {ROLES}")


_DEAF = [role for role, r in MATRIX.items() if r.submits and not r.feed >= VERDICTS_FEED]
if _DEAF:  # a role that reports must hear the verdicts on what it reported
    raise RuntimeError(f"lifecert/api/authz.py: roles {_DEAF} submit events but their feed "
                       "lacks EventRejected")


def rules(role: str) -> RoleRules:
    try:
        return MATRIX[role]
    except KeyError:
        raise Refusal(
            f"role {role!r} of the client certificate is not a lifecert role"
        ) from None


def check_method(role: str, method: str) -> RoleRules:
    """May ``role`` call ``method`` at all? Returns its rules."""
    r = rules(role)
    allowed = {
        SUBMIT: r.submits,
        SUBSCRIBE: bool(r.feed),
        ACKNOWLEDGE: bool(r.feed),
        STATUS: r.status_query,
        FACE_ENROLL: r.face_enroll,
        FACE_VERIFY: r.face_channel is not None,
        FACE_CHALLENGE: r.face_channel is not None,
        CONSULAR_LIST: r.consular_review,
        CONSULAR_REVIEW: r.consular_review,
    }.get(method, False)
    if not allowed:
        raise Refusal(f"role {role} may not call {method}")
    return r


def check_kind(role: str, kind: str, channel: str | None) -> None:
    """May ``role`` report an event of ``kind`` (with ``channel`` for a certification) at
    all, whoever it is about? Raises :class:`Refusal` with the reason."""
    r = rules(role)
    if kind == CERTIFICATION:
        if channel not in r.channels:
            own = ", ".join(sorted(r.channels)) or "none"
            raise Refusal(
                f"role {role} may not report certifications by channel {channel} "
                f"(its channels: {own})"
            )
    elif kind == DOCUMENTS:
        if not r.documents:
            raise Refusal(f"role {role} may not report returned paper forms")
    elif kind == DEATH:
        if not r.deaths:
            raise Refusal(f"role {role} may not report deaths")
    elif kind == REVOCATION:
        if not r.revokes:
            raise Refusal(f"role {role} may not revoke certifications")
    elif kind == RETRACTION:
        if not r.retracts:
            raise Refusal(f"role {role} may not retract death reports (bureau staff only)")
    elif kind == FORM3_RESULT:
        if not r.form3_results:
            raise Refusal(f"role {role} may not answer partners' assistance cases (Macau "
                          "SSF's form 3, Guangdong's cases: the bureau's counters only)")
    else:
        raise Refusal(f"role {role} may not report {kind} events")


def check_item(
    role: str, agency: str, kind: str, channel: str | None, retiree: Retiree | None
) -> None:
    """May ``agency`` (of ``role``) report an event of ``kind`` (with ``channel`` for a
    certification) about ``retiree``? Raises :class:`Refusal` with the reason. Without
    ``retiree`` (not in the directory) only the kind and channel are checked."""
    check_kind(role, kind, channel)
    if retiree is not None:
        rules(role).scope.check(role, agency, retiree)


# The sources staff may name on a death report (DeathReport.source): those the bureau
# hears of in person or by letter, not a register or partner with a door of its own.
NAMED_DEATH_SOURCES = frozenset({"FAMILY_REPORT", "CONSULATE_REPORT"})


def check_death_source(role: str) -> None:
    """May ``role`` name the source of a death report (else its source is the caller's
    agency)? Bureau staff only: a partner saying "the family reported it" would put its
    own report under another's name."""
    if not rules(role).names_death_source:
        raise Refusal(f"role {role} may not set a death report's source (bureau staff "
                      "only); leave source empty: the death is recorded as your agency's "
                      "report")


def check_revocation(role: str, agency: str, certification_agency: str) -> None:
    """May ``agency`` (of ``role``) revoke a certification reported by
    ``certification_agency``? Its own, or any with ``revokes_any`` (bureau staff)."""
    if certification_agency != agency and not rules(role).revokes_any:
        raise Refusal(
            f"role {role} may revoke only the certifications its own agency ({agency}) "
            f"reported; this one is another agency's"
        )
