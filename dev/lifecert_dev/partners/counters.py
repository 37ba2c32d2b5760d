"""The bureau's counters as the demo's door for COUNTER certifications: a simulated counter
client making real gRPC calls (PartnerExchange.SubmitBatch) over mutual TLS to the real API
server (``python -m lifecert.api.server``), each counter with its own certificate of role
COUNTER issued by the demo's PKI, the certifying agency being the certificate's.

The server runs on the demo's database (its directory and idempotency tables beside the
read models) and topics, with a campaign clock file (lifecert/pipeline/campaign_clock.py):
before each submission the clock is set to the ``recorded_at`` the campaign file gives the
certification, so the server stamps the event within a second of it (it stamps the time of
the call: the same second, a few milliseconds later; the demo compares times to the
second). A retiree enrolled in an earlier window may not be in the server's directory yet
(it follows the events topic): the client waits for it as a counter clerk would retry,
never longer than ``timeout``.

Face verification (FACE_COUNTER at a window, FACE_APP in the app) goes through the API's
face flow with a photo per attempt; the demo does not run it (see systems.py).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
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

ROLE = "COUNTER"
UNKNOWN_RETIREE = "UNKNOWN_RETIREE"


class CounterRefused(RuntimeError):
    """The API refused a certification the campaign holds as valid."""


class CountersDoor:
    """The counters and the API server they call (a real process)."""

    connector_kind = "api"
    carries = frozenset({("CertificationRecorded", "COUNTER")})

    def __init__(self, admin_dsn: str, database: str, dsn: str, bootstrap: str,
                 topics: TopicLayout, timeout: float = 60.0) -> None:
        self.admin_dsn, self.database, self.dsn = admin_dsn, database, dsn
        self.bootstrap, self.topics, self.timeout = bootstrap, topics, timeout
        self.server: ServerProcess | None = None
        self.channels: dict[str, Any] = {}
        self.calls = 0
        # The file's event ids the API published nothing for: answered DUPLICATE (a resent
        # certification, recorded once) or UNKNOWN_RETIREE (nobody enrolled by that id).
        self.absorbed: list[str] = []
        # Retirees enrolled so far in the campaign (the playback keeps it): an unknown one
        # is refused at once, without waiting for the server's directory.
        self.enrolled: set[str] = set()

    def start(self, work_dir: Path) -> None:
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
        self.server = self.box.start_server("--clock-file", str(self.clock_file),
                                            verbose=False)

    def stop(self) -> None:
        for channel in self.channels.values():
            channel.close()
        self.channels.clear()
        if self.server is not None:
            self.server.stop()
            self.server = None

    def _stub(self, agency: str) -> Any:
        assert self.server is not None, "start() first"
        if agency not in self.channels:
            self.channels[agency] = self.server.channel(agency, ROLE)
        return px_grpc.PartnerExchangeStub(self.channels[agency])

    def feed(self, events: Sequence[Event]) -> None:
        """Each certification submitted by its counter (agency), at the campaign time the
        file records it."""
        for event in events:
            self._submit(event)

    def _submit(self, event: Event) -> None:
        performed = Timestamp()
        performed.FromDatetime(datetime.fromisoformat(str(event["performed_at"])))
        item = px.SubmitItem(certification=px.Certification(
            certification_id=event["certification_id"], retiree_id=event["retiree_id"],
            channel=ROLE, performed_at=performed))
        stub = self._stub(str(event["agency_id"]))
        deadline = time.monotonic() + self.timeout
        while True:
            CampaignClock(datetime.fromisoformat(str(event["recorded_at"])),
                          datetime.now(UTC)).write(self.clock_file)
            result = stub.SubmitBatch(px.SubmitBatchRequest(items=[item]), timeout=30).results[0]
            self.calls += 1
            if result.outcome == px.ItemResult.ACCEPTED:
                return
            if result.outcome == px.ItemResult.DUPLICATE:
                # the campaign's resend of a certification (same counter and number, a
                # new event id in the file): the API records it once
                self.absorbed.append(str(event["event_id"]))
                return
            if result.reason_code == UNKNOWN_RETIREE and event["retiree_id"] not in self.enrolled:
                self.absorbed.append(str(event["event_id"]))  # replay refuses it too
                return
            if result.reason_code != UNKNOWN_RETIREE or time.monotonic() > deadline:
                raise CounterRefused(
                    f"the API refused certification {event['certification_id']} of counter "
                    f"{event['agency_id']}: {result.reason_code}: {result.reason}")
            time.sleep(0.1)  # the server's directory has not read the enrolment yet
