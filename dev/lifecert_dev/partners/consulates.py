"""The consulates' door of the demo (issue 13 item 3): the campaign's CONSULATE
certifications come in as the China Consular app's cases and bureau staff's approvals.

For each CONSULATE certification of the campaign file, the consular system (its simulator,
a real HTTPS server) pushes a case: case number = the certification id (the mailed form 2
is matched by it), the mission = the certification's agency, passport, residence permit and
face checked, the face check at the certification's ``performed_at``, pushed at that time
too. The ``consular-app`` connector publishes it (ConsularCaseReceived), the projections
put it in the review queue, and staff approve it through the API (``ConsularReview/Review``,
role STAFF, reviewed at the file's ``recorded_at``): the approval is the CONSULATE
certification (``lifecert.domain.consular.review``), the same certification, agency and
times as the file's. Under the 2017 policy the certification still waits for its form 2,
which comes through the mailroom as the other paper forms do.

The campaign's missions (``CN-CONSULATE-<country>-<post>``, lifecert_dev.generate) are the
demo bureau's partner directory (the connector's ``missions_file``), consulates-general of
their country. (The simulator's ``certification_cases`` draws a mission of the shipped
directory instead: the approval's agency would then differ from the file's, which the
mailroom's form 2 names.)
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from lifecert.api.protos import consular_review_pb2 as cr
from lifecert.api.protos import consular_review_pb2_grpc as cr_grpc
from lifecert.events.catalogue import Event
from lifecert_dev.generate import _POSTS
from lifecert_dev.partners.consular_app.harness import ConsularAppHarness
from lifecert_dev.partners.counters import STAFF_AGENCY, ApiServer, CounterRefused

MISSION_KIND = "CONSULATE_GENERAL"


def mission_country(mission_id: str) -> str:
    """The country of a campaign mission ``CN-CONSULATE-<country>-<post>``."""
    parts = mission_id.split("-")
    if len(parts) != 4 or parts[:2] != ["CN", "CONSULATE"] or parts[2] not in _POSTS:
        raise ValueError(f"{mission_id!r} is not a mission of the campaign "
                         "(CN-CONSULATE-<country>-<post>, lifecert_dev.generate)")
    return parts[2]


def missions_toml() -> str:
    """The partner directory of the campaign's missions (connectors/consular_app/
    missions.toml's format)."""
    lines = ["# The demo's missions: the generated campaign's consulates-general "
             "(lifecert_dev.generate)", ""]
    for country, posts in _POSTS.items():
        for post, _ in posts:
            lines += [f'[missions."CN-CONSULATE-{country}-{post}"]',
                      f'kind = "{MISSION_KIND}"', f'country = "{country}"',
                      f'city = "{post}"', ""]
    return "\n".join(lines)


def consular_case(event: Event) -> Event:
    """The consular system's case for a CONSULATE certification of the campaign."""
    return {"type": "ConsularCaseReceived", "recorded_at": event["performed_at"],
            "case_id": event["certification_id"], "retiree_id": event["retiree_id"],
            "mission_id": event["agency_id"], "mission_kind": MISSION_KIND,
            "country": mission_country(str(event["agency_id"])),
            "passport_checked": True, "residence_permit_checked": True,
            "face_checked": True, "performed_at": event["performed_at"]}


class CampaignConsulates(ConsularAppHarness):
    """The consular system (simulator and connector) fed with the campaign's CONSULATE
    certifications, each approved by staff through the API (:meth:`attach_api` first)."""

    carries = frozenset({("CertificationRecorded", "CONSULATE")})

    def __init__(self, review_timeout: float = 120.0) -> None:
        super().__init__()
        self.review_timeout = review_timeout
        self.api: ApiServer | None = None
        self.approved = 0
        self.absorbed: list[str] = []  # the file's event ids approved once before

    def start(self, work_dir: Path) -> dict[str, Any]:
        settings = super().start(work_dir)
        directory = work_dir / "missions.toml"
        directory.write_text(missions_toml(), encoding="utf-8")
        return {**settings, "missions_file": str(directory)}

    def attach_api(self, api: ApiServer) -> None:
        self.api = api

    def feed(self, events: Sequence[Event]) -> None:
        """Push each certification's case, then approve it as staff (waiting for the case
        to reach the review queue, as staff would see it there)."""
        if self.api is None:
            raise RuntimeError("CampaignConsulates.attach_api() was not called: staff "
                               "approve the cases through the API")
        super().feed([consular_case(e) for e in events])
        stub = cr_grpc.ConsularReviewStub(self.api.channel(STAFF_AGENCY, "STAFF"))
        for event in events:
            self._approve(stub, event)

    def _approve(self, stub: Any, event: Event) -> None:
        at = Timestamp()
        at.FromDatetime(datetime.fromisoformat(str(event["recorded_at"])))
        request = cr.ReviewConsularCaseRequest(case_id=str(event["certification_id"]),
                                               approve=True, reviewed_at=at)
        deadline = time.monotonic() + self.review_timeout
        while True:
            try:
                stub.Review(request, timeout=30)
                self.approved += 1
                return
            except grpc.RpcError as error:
                code, details = error.code(), error.details() or ""
            if code == grpc.StatusCode.FAILED_PRECONDITION and "was already approved" in details:
                self.absorbed.append(str(event["event_id"]))  # the campaign's resend
                return
            waiting = code == grpc.StatusCode.NOT_FOUND or (
                code == grpc.StatusCode.FAILED_PRECONDITION and "no campaign yet" in details)
            if not waiting or time.monotonic() > deadline:
                raise CounterRefused(
                    f"staff could not approve consular case {event['certification_id']} "
                    f"({event['event_id']}): {code.name}: {details}")
            time.sleep(0.2)  # the case is not in the review queue (read models) yet
