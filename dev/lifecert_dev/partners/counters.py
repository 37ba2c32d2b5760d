"""The partner API's clients as the demo's doors: simulated clients making real gRPC calls
(PartnerExchange.SubmitBatch) over mutual TLS to the real API server
(``python -m lifecert.api.server``), each agency with its own certificate of the role the
authorization matrix (lifecert/api/authz.py) gives what it reports, issued by the demo's
PKI (:data:`API_DOORS`):

- the bureau's counters (COUNTER), other regions' social-insurance offices
  (ASSISTED_OFFICE) and the assisting agencies of form 1 (ASSISTING_AGENCY) submit their
  certifications, the certifying agency being the certificate's;
- bureau staff (STAFF, agency ``FS-SIB-CITY``) revoke certifications (any agency's, rule
  12) and retract death reports (rule 13), and record the deaths families report at a
  counter (and missions by letter) with their source (``family-deaths``).

The server runs on the demo's database (its directory and idempotency tables beside the
read models) and topics, with a campaign clock file (lifecert/pipeline/campaign_clock.py):
before each submission the clock is set to the ``recorded_at`` the campaign file gives the
certification, so the server stamps the event within a second of it (it stamps the time of
the call: the same second, a few milliseconds later; the demo compares times to the
second). A retiree enrolled in an earlier window may not be in the server's directory yet
(it follows the events topic): the client waits for it as a counter clerk would retry,
never longer than ``timeout``.

Face verification (FACE_COUNTER at a window, FACE_APP in the app) goes through the API's
FaceVerification service: lifecert_dev.partners.faces.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from lifecert.api.migrate import migrate
from lifecert.api.protos import partner_exchange_pb2 as px
from lifecert.api.protos import partner_exchange_pb2_grpc as px_grpc
from lifecert.api.server_config import create_second_factor_key
from lifecert.dbroles import dsn_as
from lifecert.events.catalogue import Event
from lifecert.pipeline.campaign_clock import CampaignClock
from lifecert.pipeline.topics import TopicLayout
from lifecert.pki import PkiPaths, init
from lifecert_dev.api_sandbox import Sandbox, ServerProcess

UNKNOWN_RETIREE = "UNKNOWN_RETIREE"
UNKNOWN_CASE = "UNKNOWN_CASE"
STAFF_AGENCY = "FS-SIB-CITY"


class CounterRefused(RuntimeError):
    """The API refused an item the campaign holds as valid."""


def _timestamp(value: object) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(datetime.fromisoformat(str(value)))
    return stamp


def certification(event: Event) -> px.SubmitItem:
    return px.SubmitItem(certification=px.Certification(
        certification_id=event["certification_id"], retiree_id=event["retiree_id"],
        channel=event["channel"], performed_at=_timestamp(event["performed_at"])))


def revocation(event: Event) -> px.SubmitItem:
    return px.SubmitItem(revocation=px.CertificationRevocation(
        certification_id=event["certification_id"], retiree_id=event["retiree_id"],
        agency_id=event["agency_id"],
        reason=str(event["reason"])))


def retraction(event: Event) -> px.SubmitItem:
    return px.SubmitItem(retraction=px.DeathReportRetraction(
        retiree_id=event["retiree_id"], source=event["source"], reason=event["reason"]))


def family_death(event: Event) -> px.SubmitItem:
    """A death the family reported at a counter (or a mission by letter), recorded by bureau
    staff with its source (DeathReport.source: STAFF only)."""
    return px.SubmitItem(death=px.DeathReport(
        retiree_id=event["retiree_id"], date_of_death=str(event["date_of_death"]),
        source=event["source"]))


@dataclass(frozen=True)
class Door:
    """One role's clients: what they carry, how an event becomes an item, and the agency
    whose certificate submits it (None: the event's ``agency_id``)."""

    role: str
    carries: frozenset[tuple[str, str | None]]
    item: Callable[[Event], px.SubmitItem]
    agency: str | None = None


# Door name (the demo's table) -> door.
API_DOORS: dict[str, Door] = {
    "counters": Door("COUNTER", frozenset({("CertificationRecorded", "COUNTER")}),
                     certification),
    # Guangdong's offices and agencies report through the provincial feed (its cert types
    # 02 and 03); those of other provinces call the API (systems.Partners.source_of).
    "assisted-offices": Door("ASSISTED_OFFICE", frozenset(), certification),
    "assisting-agencies": Door("ASSISTING_AGENCY", frozenset(), certification),
    "staff": Door("STAFF", frozenset({("CertificationRevoked", None),
                                      ("DeathReportRetracted", None)}),
                  lambda e: revocation(e) if e["type"] == "CertificationRevoked"
                  else retraction(e), STAFF_AGENCY),
    # Deaths told to the bureau in person or by letter: staff record them with the source.
    "family-deaths": Door("STAFF", frozenset({("DeathRecorded", "FAMILY_REPORT"),
                                              ("DeathRecorded", "CONSULATE_REPORT")}),
                          family_death, STAFF_AGENCY),
}


class ApiServer:
    """The API server the doors call (a real process), on the demo's database and topics."""

    def __init__(self, admin_dsn: str, database: str, dsn: str, bootstrap: str,
                 topics: TopicLayout) -> None:
        self.admin_dsn, self.database, self.dsn = admin_dsn, database, dsn
        self.bootstrap, self.topics = bootstrap, topics
        self.server: ServerProcess | None = None
        self.channels: dict[tuple[str, str], Any] = {}

    def start(self, work_dir: Path, args: Sequence[str] = (),
              env: dict[str, str] | None = None) -> None:
        """``args``, ``env``: more of the server's flags and environment (the face doors':
        lifecert_dev.partners.faces.server_options)."""
        work_dir.mkdir(parents=True, exist_ok=True)
        from projections.connection import connect

        conn = connect(dsn_as(self.dsn, "owner"))
        try:
            migrate(conn)  # the API's tables beside the read models
        finally:
            conn.close()
        pki = PkiPaths(work_dir / "pki")
        init(pki, hosts=["localhost", "127.0.0.1"])
        create_second_factor_key(pki.root.parent / "api")
        # A sandbox over the demo's own database and topics (it creates nothing: create()
        # is not called, and close() is never called here: it would drop them).
        self.box = Sandbox(work_dir, self.admin_dsn, self.database, self.dsn, self.bootstrap,
                           self.topics, pki)
        self.clock_file = work_dir / "clock.json"
        CampaignClock.starting(datetime(2017, 1, 1, tzinfo=UTC)).write(self.clock_file)
        # 60 s (the sandbox's default) was seen too short on a shared two-core machine at
        # load 30: the server's log still empty (the face engine's models load slowly)
        self.server = self.box.start_server("--clock-file", str(self.clock_file), *args,
                                            env=env, verbose=False, timeout=300.0)

    def stop(self) -> None:
        for channel in self.channels.values():
            channel.close()
        self.channels.clear()
        if self.server is not None:
            self.server.stop()
            self.server = None

    def stub(self, agency: str, role: str) -> Any:
        return px_grpc.PartnerExchangeStub(self.channel(agency, role))

    def channel(self, agency: str, role: str) -> Any:
        """The channel of ``agency``'s certificate of ``role`` (one per agency and role)."""
        assert self.server is not None, "start() first"
        if (agency, role) not in self.channels:
            self.channels[agency, role] = self.server.channel(agency, role)
        return self.channels[agency, role]

    def at(self, recorded_at: object) -> None:
        """Set the campaign clock: the server stamps what it records now at this time."""
        CampaignClock(datetime.fromisoformat(str(recorded_at)),
                      datetime.now(UTC)).write(self.clock_file)


class ApiDoor:
    """One role's simulated clients, submitting each event at the campaign time the file
    records it."""

    connector_kind = "api"

    def __init__(self, server: ApiServer, door: Door, timeout: float = 60.0) -> None:
        self.server, self.door, self.timeout = server, door, timeout
        self.carries = door.carries
        self.calls = 0
        # The file's event ids the API published nothing for: answered DUPLICATE (a resent
        # item, recorded once) or UNKNOWN_RETIREE (nobody enrolled by that id).
        self.absorbed: list[str] = []
        # Retirees enrolled so far in the campaign (the playback keeps it): an unknown one
        # is refused at once, without waiting for the server's directory.
        self.enrolled: set[str] = set()

    def feed(self, events: Sequence[Event]) -> None:
        for event in events:
            self._submit(event)

    def _submit(self, event: Event) -> None:
        item = self.door.item(event)
        agency = self.door.agency or str(event["agency_id"])
        stub = self.server.stub(agency, self.door.role)
        deadline = time.monotonic() + self.timeout
        while True:
            self.server.at(event["recorded_at"])
            result = stub.SubmitBatch(px.SubmitBatchRequest(items=[item]), timeout=30).results[0]
            self.calls += 1
            if result.outcome == px.ItemResult.ACCEPTED:
                return
            if result.outcome == px.ItemResult.DUPLICATE:
                # the campaign's resend (same agency and key, a new event id in the
                # file): the API records it once
                self.absorbed.append(str(event["event_id"]))
                return
            if result.reason_code == UNKNOWN_RETIREE and event["retiree_id"] not in self.enrolled:
                self.absorbed.append(str(event["event_id"]))  # replay refuses it too
                return
            if result.reason_code != UNKNOWN_RETIREE or time.monotonic() > deadline:
                raise CounterRefused(
                    f"the API refused {event['type']} {event['event_id']} of {agency} (role "
                    f"{self.door.role}): {result.reason_code}: {result.reason}")
            time.sleep(0.1)  # the server's directory has not read the enrolment yet


# ------------------------------------------------- answers to partners' INBOUND cases


def form3_result(event: Event) -> px.SubmitItem:
    """A counter's answer to a partner's INBOUND case (an AssistanceResult of partner
    MACAU-SSF, SSF's form 3, or GD-XREGION, a Guangdong city's case) as the API's
    Form3Result item."""
    died = event.get("date_of_death")
    return px.SubmitItem(form3_result=px.Form3Result(
        case_id=event["case_id"], beneficiary_id=event["retiree_id"],
        certification_id=event["certification_id"],
        outcome=str(event.get("outcome") or "CERTIFIED_ALIVE"), method=str(event["method"]),
        performed_at=_timestamp(event["performed_at"]),
        date_of_death="" if died is None else str(died), partner=str(event["partner"])))


def answer_cases(server: ApiServer, answers: Sequence[Event], timeout: float = 120.0) -> int:
    """Foshan's counters answer partners' cases (SSF's form 3, Guangdong's cities' cases)
    through the API, each at the campaign time the answer records, from the certificate of
    the office that certified (role COUNTER). A case the server does not know yet (the
    partner's list still on its way to the read models) is tried again, as a clerk would,
    never longer than ``timeout``. Returns the answers the API recorded (ACCEPTED or
    DUPLICATE); anything else raises CounterRefused."""
    recorded = 0
    for event in answers:
        stub = server.stub(str(event["agency_id"]), "COUNTER")
        item = form3_result(event)
        deadline = time.monotonic() + timeout
        while True:
            server.at(event["recorded_at"])
            result = stub.SubmitBatch(px.SubmitBatchRequest(items=[item]), timeout=30).results[0]
            if result.outcome in (px.ItemResult.ACCEPTED, px.ItemResult.DUPLICATE):
                recorded += 1
                break
            if result.reason_code != UNKNOWN_CASE or time.monotonic() > deadline:
                raise CounterRefused(
                    f"the API refused the answer to {event['partner']}'s case "
                    f"{event['case_id']} of {event['agency_id']}: {result.reason_code}: "
                    f"{result.reason}")
            time.sleep(0.2)  # the read models have not taken the partner's list yet
    return recorded
