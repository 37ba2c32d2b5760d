"""The Guangdong provincial cross-region collaboration system, both directions.

``GuangdongSource`` (kind ``guangdong-xregion``) reads the province's feed for Foshan and
publishes the certifications of Foshan's retirees living elsewhere in Guangdong
(CertificationRecorded, channels PROVINCIAL_XREGION, ASSISTED_OFFICE, ASSISTING_AGENCY) on
the input log, and the assistance cases' records on the assistance topic: the cases other
cities register with Foshan about their retirees living in Foshan (AssistanceRequested
INBOUND, due ``due_working_days`` working days of the ``policy``'s calendar after they were
registered), the province's receipts of Foshan's own cases (AssistanceAcknowledged REQUEST)
and the residence cities' answers to them (AssistanceResult OUTBOUND). Its checkpoint is
the feed's opaque cursor of the last record published::

    [connectors.gd-feed]
    kind = "guangdong-xregion"
    url = "https://gdxt.example:8471"
    ca_file = "/etc/lifecert/guangdong-ca.pem" # the CA pinned for the province's server
    token = { env = "GD_XREGION_TOKEN" }   # optional bearer token
    city = "440600"                        # optional; Foshan's division code
    page_size = 500                        # optional, at most 1000
    timeout = 10.0                         # optional, seconds
    policy = "foshan-2017"                 # optional: the calendar of the cases' due dates
    due_working_days = 20                  # optional

``GuangdongResultsSink`` (kind ``guangdong-results``) posts to the province, from
``lifecert.assistance-results``, with each record's ``event_id`` as ``Idempotency-Key`` (a
batch retried after a failure is deduplicated by the province): Foshan's
AssistanceResults of Guangdong cases (partner null or ``GD-XREGION``, INBOUND) -- to
``/api/v1/assistance-cases/{caseNo}/answer`` when they answer a case the province sent,
else to ``/api/v1/assistance-results`` as before cases existed -- and Foshan's own cases
about its retirees living elsewhere in Guangdong (AssistanceRequested OUTBOUND) to
``/api/v1/assistance-cases``. The topic's other records (other partners' cases, the
province's own receipts and answers) it reads past. The province's acknowledgement
ids go to an append-only JSON-lines journal (``ack_log``), one line per post:
``event_id``, ``type``, ``certification_id`` (a result's) or ``case_id``, ``ack_id``,
``duplicate``, ``received_at`` (the province's time) and the record's
topic/partition/offset; no personal data. It is the
bureau's receipt for audits and reconciliation, separate from the runner's offsets: a
retried batch adds lines marked ``"duplicate": true`` with the same ``ack_id``::

    [connectors.gd-results]
    kind = "guangdong-results"
    url = "https://gdxt.example:8471"
    ca_file = "/etc/lifecert/guangdong-ca.pem"
    token = { env = "GD_XREGION_TOKEN" }
    ack_log = "/var/lib/lifecert/guangdong-acks.jsonl"
    assisting_city = "440600"              # optional; the city posting (Foshan)

Both speak HTTPS only: the province's certificate must chain to the CA in ``ca_file`` (the
system's trust store is not consulted: a certificate any public CA issued for the name is
refused) and name the URL's host. ``allow_plain_http = true`` accepts an ``http://`` URL;
it exists for tests against a local stand-in and is never right for the province.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connectors.guangdong import province as gd
from connectors.guangdong.client import ProvinceClient, Response
from connectors.guangdong.mapping import (
    answer_body,
    case_body,
    case_record_to_event,
    is_case_answer,
    is_case_request,
    record_to_event,
    record_type,
    result_body,
)
from connectors.sdk.assistance import case_calendar
from connectors.sdk.base import (
    Connector,
    Event,
    PartnerRecord,
    Position,
    SinkConnector,
    SinkRecord,
    SourceConnector,
)
from connectors.sdk.errors import ConfigError, PartnerUnavailable, RecordRejected
from lifecert.events import bounds


class ProvinceProtocolError(RuntimeError):
    """The province answered something this connector cannot go on from (a refused
    checkpoint cursor, a malformed page): a person must look, so the runner stops."""


def _transient(status: int) -> bool:
    # A refused token is retried too (the runner logs why): it is fixed by rotating the
    # secret, on either side, without losing or skipping a record.
    return status in (401, 403, 408, 425, 429) or status >= 500


def _unavailable(what: str, response: Response) -> PartnerUnavailable:
    hint = ("; check the connector's token setting" if response.status in (401, 403)
            else "")
    return PartnerUnavailable(f"{what}: HTTP {response.status}: {response.message()}{hint}")


@dataclass(frozen=True)
class ClientArgs:
    url: str
    token: str | None
    timeout: float
    ca_file: str | None
    allow_plain_http: bool

    def client(self) -> ProvinceClient:
        return ProvinceClient(self.url, self.token, self.timeout, ca_file=self.ca_file,
                              allow_plain_http=self.allow_plain_http)


def _province_settings(
    connector: Connector, settings: dict[str, Any], city_key: str
) -> tuple[ClientArgs, str]:
    """The settings both directions share (how to reach the province) and the city's
    code."""
    where = f"connector {connector.name!r} ({connector.kind})"
    url = connector._setting(settings, "url", str)
    token = connector._setting(settings, "token", str, None)
    timeout = connector._setting(settings, "timeout", float, 10.0)
    ca_file = connector._setting(settings, "ca_file", str, None)
    plain = connector._setting(settings, "allow_plain_http", bool, False)
    city = connector._setting(settings, city_key, str, gd.FOSHAN)
    code = gd.CITY_CODES.get(city, city)
    if code not in gd.CITY_NAMES:
        raise ConfigError(f"{where}: setting {city_key!r} must be a Guangdong city's division "
                          f"code (Foshan: 440600) or name, got {city!r}")
    if timeout <= 0:
        raise ConfigError(f"{where}: setting 'timeout' must be positive seconds, "
                          f"got {timeout!r}")
    args = ClientArgs(url, token, timeout, ca_file, plain)
    try:
        args.client()
    except ValueError as exc:
        setting = "ca_file" if str(exc).startswith(("ca_file", "an https")) else "url"
        raise ConfigError(f"{where}: setting {setting!r}: {exc}") from None
    return args, code


def _connect(args: ClientArgs) -> ProvinceClient:
    client = args.client()
    response = client.get(gd.HEALTH_PATH)
    if response.status != 200:
        client.close()
        raise _unavailable(f"GET {client.base}{gd.HEALTH_PATH}", response)
    return client


class GuangdongSource(SourceConnector):
    kind = "guangdong-xregion"
    description = ("Guangdong cross-region collaboration system: certifications of Foshan "
                   "retirees living elsewhere in the province, and the assistance cases "
                   "both ways (HTTP feed with a cursor)")
    source_agency = "GD-XREGION"
    publishes = ("CertificationRecorded", "AssistanceRequested", "AssistanceAcknowledged",
                 "AssistanceResult")

    def _configure(self, settings: dict[str, Any]) -> None:
        self._client_args, self.city = _province_settings(self, settings, "city")
        self.calendar, self.due_working_days = case_calendar(self, settings)
        self.page_size = self._setting(settings, "page_size", int, 500)
        if not 1 <= self.page_size <= gd.MAX_PAGE:
            raise ConfigError(f"connector {self.name!r} ({self.kind}): setting 'page_size' "
                              f"must be 1 to {gd.MAX_PAGE}, got {self.page_size}")
        self._client: ProvinceClient | None = None
        self._remaining: int | None = None

    def _open(self) -> None:
        self._client = _connect(self._client_args)

    def _close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _poll(self, position: Position | None, max_records: int) -> Sequence[PartnerRecord]:
        if self._client is None:
            self._open()
        assert self._client is not None
        where = f"GET {self._client.base}{gd.FEED_PATH}"
        response = self._client.get(gd.FEED_PATH, {
            "city": self.city, "cursor": position,
            "limit": max(1, min(max_records, self.page_size))})
        if _transient(response.status):
            raise _unavailable(where, response)
        if response.status == 400 and isinstance(response.data, dict) \
                and response.data.get("field") == "cursor":
            raise ProvinceProtocolError(
                f"{where} refused the checkpoint cursor {position!r}: {response.message()}. "
                f"The checkpoint of connector {self.name!r} was not written by this feed; "
                f"reset it only if you know which records were already published")
        if response.status != 200:
            raise ProvinceProtocolError(f"{where} answered HTTP {response.status}: "
                                        f"{response.message()}")
        return self._records(where, response.data)

    def _records(self, where: str, page: Any) -> list[PartnerRecord]:
        if not isinstance(page, dict) or not isinstance(page.get("items"), list):
            raise ProvinceProtocolError(f"{where}: expected a page {{\"items\": [...], ...}}, "
                                        f"got {str(page)[:120]}")
        records = []
        for i, item in enumerate(page["items"]):
            if not isinstance(item, dict) or not isinstance(item.get("cursor"), str):
                raise ProvinceProtocolError(f"{where}: items[{i}] has no cursor; cannot "
                                            f"checkpoint past it: {str(item)[:120]}")
            record = item.get("record")
            item_id = record.get("itemId") if isinstance(record, dict) else None
            key = item_id if isinstance(item_id, str) and item_id else f"cursor:{item['cursor']}"
            try:
                raw = json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode(
                    "utf-8", errors="backslashreplace")
            except (RecursionError, ValueError):  # kept as it can be: the mapping rejects it
                raw = bounds.show(record, 10_000).encode("utf-8", errors="backslashreplace")
            records.append(PartnerRecord(key=key, position=item["cursor"], raw=raw,
                                         data=record))
        remaining = page.get("remaining")
        self._remaining = remaining if type(remaining) is int else None
        return records

    def _to_events(self, record: PartnerRecord) -> list[Event]:
        if record_type(record.data) == gd.CERT:
            return [record_to_event(record.data, self.city)]
        return [case_record_to_event(record.data, self.city, self.calendar,
                                     self.due_working_days)]

    def _lag(self, position: Position | None) -> int | None:
        return self._remaining


class GuangdongResultsSink(SinkConnector):
    kind = "guangdong-results"
    description = ("Guangdong cross-region collaboration system: posts Foshan's answers to "
                   "other cities' cases and results for their retirees, and Foshan's own "
                   "cases (idempotency key = event id)")
    topics = ("assistance_results",)

    def _configure(self, settings: dict[str, Any]) -> None:
        self._client_args, self.assisting_city = _province_settings(
            self, settings, "assisting_city")
        self.ack_log = Path(self._setting(settings, "ack_log", str))
        self._client: ProvinceClient | None = None

    def _open(self) -> None:
        try:
            self.ack_log.parent.mkdir(parents=True, exist_ok=True)
            self.ack_log.touch()
        except OSError as exc:
            raise ConfigError(f"connector {self.name!r} ({self.kind}): setting 'ack_log': "
                              f"cannot write {self.ack_log}: {exc.strerror}") from None
        self._client = _connect(self._client_args)

    def _close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _check(self) -> list[str]:
        """The journal can be written (without creating it) and the province answers."""
        problems = []
        existing = self.ack_log
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not (os.access(existing, os.W_OK) and (existing == self.ack_log or existing.is_dir())):
            problems.append(f"{self.name}: setting 'ack_log': cannot write {self.ack_log} "
                            f"({existing} is not a writable folder or file); choose a path "
                            f"the connector's user may write")
        try:
            _connect(self._client_args).close()
        except PartnerUnavailable as exc:
            problems.append(f"{self.name}: partner system unavailable: {exc}")
        return problems

    def _apply(self, records: Sequence[SinkRecord]) -> Sequence[tuple[SinkRecord, str]]:
        if self._client is None:
            self._open()
        assert self._client is not None
        rejected: list[tuple[SinkRecord, str]] = []
        acks: list[dict[str, Any]] = []
        try:
            for record in records:
                event = record.event
                try:
                    if is_case_request(event):
                        path, body = gd.CASES_PATH, case_body(event, self.assisting_city)
                    elif is_case_answer(event):
                        path = gd.answer_path(event["case_id"])
                        body = answer_body(event, self.assisting_city)
                    elif _for_province(event):
                        path, body = gd.RESULTS_PATH, result_body(event, self.assisting_city)
                    else:
                        continue  # another partner's case, or the province's own records
                except RecordRejected as exc:
                    rejected.append((record, exc.reason))
                    continue
                ack = self._post(record, path, body)
                if isinstance(ack, str):
                    rejected.append((record, ack))
                else:
                    acks.append(ack)
        finally:
            self._journal(acks)  # what the province acknowledged, even if a post then failed
        if acks or rejected:
            duplicates = sum(1 for a in acks if a["duplicate"])
            self.log.info("province acknowledged %d results and cases (%d already held), "
                          "refused %d",
                          len(acks), duplicates, len(rejected))
        return rejected

    def _post(self, record: SinkRecord, path: str,
              body: dict[str, str]) -> dict[str, Any] | str:
        """The acknowledgement, or the reason the province refused the record for good."""
        assert self._client is not None
        where = f"POST {self._client.base}{path}"
        event_id = record.event["event_id"]
        what = "case" if record.event["type"] == "AssistanceRequested" else "result"
        response = self._client.post(path, body, {gd.IDEMPOTENCY_HEADER: event_id})
        if _transient(response.status):
            raise _unavailable(where, response)
        if 400 <= response.status < 500:
            code = response.data.get("code") if isinstance(response.data, dict) else None
            return (f"the province refused the {what} (HTTP {response.status}"
                    f"{' ' + code if code else ''}): {response.message()}")
        data = response.data
        if response.status not in (200, 201) or not isinstance(data, dict) \
                or not isinstance(data.get("ackId"), str):
            raise ProvinceProtocolError(f"{where} for event {event_id} answered HTTP "
                                        f"{response.status} without an ackId: "
                                        f"{response.text[:200]}")
        named = ({"case_id": record.event["case_id"]} if what == "case"
                 else {"certification_id": record.event["certification_id"]})
        return {"event_id": event_id, "type": record.event["type"], **named,
                "ack_id": data["ackId"], "duplicate": data.get("duplicate") is True,
                "received_at": data.get("receivedAt"), "topic": record.topic,
                "partition": record.partition, "offset": record.offset}

    def _journal(self, acks: list[dict[str, Any]]) -> None:
        if not acks:
            return
        lines = "".join(json.dumps(a, ensure_ascii=False, separators=(",", ":")) + "\n"
                        for a in acks)
        with self.ack_log.open("a", encoding="utf-8") as out:
            out.write(lines)
            out.flush()
            os.fsync(out.fileno())


def _for_province(event: dict[str, Any]) -> bool:
    """Whether the province takes this record at its results endpoint: Foshan's
    AssistanceResult of a Guangdong case without a case the province sent (the topic also
    carries the other partners' cases, every case's requests and acknowledgements, and the
    province's own answers to Foshan's cases, OUTBOUND)."""
    return (event.get("type") == "AssistanceResult"
            and event.get("partner") in (None, GuangdongSource.source_agency)
            and event.get("direction") in (None, "INBOUND"))


def read_ack_log(path: Path) -> list[dict[str, Any]]:
    """The journal's entries, oldest first (for audits and tests)."""
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]
