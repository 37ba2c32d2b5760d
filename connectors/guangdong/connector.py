"""The Guangdong provincial cross-region collaboration system, both directions.

``GuangdongSource`` (kind ``guangdong-xregion``) reads the province's certifications feed
for Foshan's retirees living elsewhere in Guangdong and publishes CertificationRecorded
(channels PROVINCIAL_XREGION, ASSISTED_OFFICE, ASSISTING_AGENCY). Its checkpoint is the
feed's opaque cursor of the last record published::

    [connectors.gd-feed]
    kind = "guangdong-xregion"
    url = "https://gdxt.example:8471"
    ca_file = "/etc/lifecert/guangdong-ca.pem" # the CA pinned for the province's server
    token = { env = "GD_XREGION_TOKEN" }   # optional bearer token
    city = "440600"                        # optional; Foshan's division code
    page_size = 500                        # optional, at most 1000
    timeout = 10.0                         # optional, seconds

``GuangdongResultsSink`` (kind ``guangdong-results``) posts each AssistanceResult of a
Guangdong case (partner null or ``GD-XREGION``; the topic also carries other partners'
cases and every case's requests and acknowledgements, which it reads past) of
``lifecert.assistance-results`` with its ``event_id`` as ``Idempotency-Key``, so a batch
retried after a failure is deduplicated by the province. The province's acknowledgement
ids go to an append-only JSON-lines journal (``ack_log``), one line per answer:
``event_id``, ``certification_id``, ``ack_id``, ``duplicate``, ``received_at`` (the
province's time) and the record's topic/partition/offset; no personal data. It is the
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
from connectors.guangdong.mapping import record_to_event, result_body
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
                   "retirees living elsewhere in the province (HTTP feed with a cursor)")
    source_agency = "GD-XREGION"

    def _configure(self, settings: dict[str, Any]) -> None:
        self._client_args, self.city = _province_settings(self, settings, "city")
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
        return [record_to_event(record.data, self.city)]

    def _lag(self, position: Position | None) -> int | None:
        return self._remaining


class GuangdongResultsSink(SinkConnector):
    kind = "guangdong-results"
    description = ("Guangdong cross-region collaboration system: posts Foshan's assistance "
                   "results for other cities' retirees (idempotency key = event id)")
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
                if not _for_province(record.event):
                    continue  # another partner's case, or a request or acknowledgement
                try:
                    body = result_body(record.event, self.assisting_city)
                except RecordRejected as exc:
                    rejected.append((record, exc.reason))
                    continue
                ack = self._post(record, body)
                if isinstance(ack, str):
                    rejected.append((record, ack))
                else:
                    acks.append(ack)
        finally:
            self._journal(acks)  # what the province acknowledged, even if a post then failed
        if acks or rejected:
            duplicates = sum(1 for a in acks if a["duplicate"])
            self.log.info("province acknowledged %d results (%d already held), refused %d",
                          len(acks), duplicates, len(rejected))
        return rejected

    def _post(self, record: SinkRecord, body: dict[str, str]) -> dict[str, Any] | str:
        """The acknowledgement, or the reason the province refused the result for good."""
        assert self._client is not None
        where = f"POST {self._client.base}{gd.RESULTS_PATH}"
        event_id = record.event["event_id"]
        response = self._client.post(gd.RESULTS_PATH, body, {"Idempotency-Key": event_id})
        if _transient(response.status):
            raise _unavailable(where, response)
        if 400 <= response.status < 500:
            code = response.data.get("code") if isinstance(response.data, dict) else None
            return (f"the province refused the result (HTTP {response.status}"
                    f"{' ' + code if code else ''}): {response.message()}")
        data = response.data
        if response.status not in (200, 201) or not isinstance(data, dict) \
                or not isinstance(data.get("ackId"), str):
            raise ProvinceProtocolError(f"{where} for event {event_id} answered HTTP "
                                        f"{response.status} without an ackId: "
                                        f"{response.text[:200]}")
        return {"event_id": event_id, "certification_id": record.event["certification_id"],
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
    """Whether the province takes this record: an AssistanceResult of a Guangdong case (the
    topic also carries the other partners' cases and every case's requests and
    acknowledgements)."""
    return event.get("type") == "AssistanceResult" and event.get("partner") in (
        None, GuangdongSource.source_agency)


def read_ack_log(path: Path) -> list[dict[str, Any]]:
    """The journal's entries, oldest first (for audits and tests)."""
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]
