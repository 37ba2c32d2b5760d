"""Macau's Social Security Fund (SSF), both directions (docs/partners/macau-ssf.md).

``MacauSsfSource`` (kind ``macau-ssf``) reads SSF's communications to Foshan and publishes:
form-4 certifications of Foshan retirees living in Macau (CertificationRecorded, channel
MACAU_SSF), the mailed form's delivery (CertificationDocumentsReceived), their deaths
(DeathRecorded) -- all on the input log -- and, on the assistance topic, SSF's requests to
certify its beneficiaries living in Foshan (AssistanceRequested, INBOUND, due after
``due_working_days`` working days of the policy's calendar) and SSF's receipts of Foshan's
answers (AssistanceAcknowledged RESULT). An SSF beneficiary is never enrolled: its id is
``MO-SSF-<number>``, it is never on the input log, so the payment fold never sees it and
no Foshan payment instruction can name it. Its checkpoint is SSF's opaque cursor::

    [connectors.ssf-in]
    kind = "macau-ssf"
    url = "https://fss-interop.example.mo:9443"
    ca_file = "/etc/lifecert/ssf-ca.pem"            # SSF's CA, pinned
    client_cert = "/etc/lifecert/ssf-client.pem"    # the bureau's certificate SSF issued
    client_key = "/etc/lifecert/ssf-client.key"
    policy = "foshan-2017"        # optional: whose working-day calendar dates the cases
    due_working_days = 20         # optional: the agreed time to answer SSF
    page_size = 500               # optional, at most 1000
    timeout = 10.0                # optional, seconds

``MacauSsfResultsSink`` (kind ``macau-ssf-results``) posts to SSF, from
``lifecert.assistance-results``, each of Foshan's answers to an SSF case (AssistanceResult,
``partner = "MACAU-SSF"``, INBOUND) and each of Foshan's requests about a Foshan retiree
living in Macau (AssistanceRequested, OUTBOUND), with the event id as
``Chave-Idempotencia`` (SSF applies one posted twice once), and journals SSF's receipt in
``ack_log`` (JSON lines: event_id, type, case_id, n_recibo, duplicate, SSF's time, topic,
partition, offset; no personal data). SSF also lists its receipts (RECIBO_RESULTADO,
RECIBO_PEDIDO) and its answers to Foshan's requests (RESPOSTA_PEDIDO) in its
communications, which the source publishes (AssistanceAcknowledged, AssistanceResult
OUTBOUND: never posted back). Same url/ca_file/client_cert/client_key/timeout settings,
plus ``ack_log``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connectors.guangdong.client import ProvinceClient, Response
from connectors.macau_ssf import ssf
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
from lifecert.events.catalogue import INPUT_TYPES


class SsfProtocolError(RuntimeError):
    """SSF answered something the connector cannot go on from: a person must look."""


class SsfClient(ProvinceClient):
    """The JSON-over-HTTPS client, presenting the bureau's client certificate."""

    def __init__(self, url: str, timeout: float, *, ca_file: str, client_cert: str,
                 client_key: str, allow_plain_http: bool = False) -> None:
        super().__init__(url, None, timeout, ca_file=ca_file, allow_plain_http=allow_plain_http)
        if self._tls is not None:
            try:
                self._tls.load_cert_chain(client_cert, client_key)
            except FileNotFoundError as exc:
                raise ValueError(f"client_cert/client_key: {exc.filename} does not exist"
                                 ) from None
            except (OSError, ValueError) as exc:
                raise ValueError(f"client_cert/client_key: not a PEM certificate and its "
                                 f"key: {exc}") from None


@dataclass(frozen=True)
class _Args:
    url: str
    timeout: float
    ca_file: str
    client_cert: str
    client_key: str
    allow_plain_http: bool

    def client(self) -> SsfClient:
        return SsfClient(self.url, self.timeout, ca_file=self.ca_file,
                         client_cert=self.client_cert, client_key=self.client_key,
                         allow_plain_http=self.allow_plain_http)


def _transient(status: int) -> bool:
    return status in (401, 403, 408, 425, 429) or status >= 500


def _unavailable(what: str, response: Response) -> PartnerUnavailable:
    return PartnerUnavailable(f"{what}: HTTP {response.status}: {_message(response)}")


def _message(response: Response) -> str:
    data = response.data
    if isinstance(data, dict) and isinstance(data.get("mensagem"), str):
        field = data.get("campo")
        return data["mensagem"] + (f" (campo {field})" if field else "")
    return response.text[:200] or "(empty body)"


def _settings(connector: Connector, settings: dict[str, Any]) -> _Args:
    get = connector._setting
    args = _Args(get(settings, "url", str), get(settings, "timeout", float, 10.0),
                 get(settings, "ca_file", str), get(settings, "client_cert", str),
                 get(settings, "client_key", str), get(settings, "allow_plain_http", bool, False))
    where = f"connector {connector.name!r} ({connector.kind})"
    if args.timeout <= 0:
        raise ConfigError(f"{where}: setting 'timeout' must be positive seconds")
    try:
        args.client()
    except ValueError as exc:
        text = str(exc)
        key = ("client_cert" if text.startswith("client_cert") else
               "ca_file" if text.startswith(("ca_file", "an https")) else "url")
        raise ConfigError(f"{where}: setting {key!r}: {text}") from None
    return args


def _connect(args: _Args) -> SsfClient:
    client = args.client()
    response = client.get(ssf.HEALTH_PATH)
    if response.status != 200:
        client.close()
        raise _unavailable(f"GET {client.base}{ssf.HEALTH_PATH}", response)
    return client


class MacauSsfSource(SourceConnector):
    kind = "macau-ssf"
    description = ("Macau Social Security Fund: form-4 certifications, forms and deaths of "
                   "Foshan retirees in Macau; SSF's beneficiaries in Foshan to certify (form 3) "
                   "and its receipts of Foshan's answers (HTTPS, client certificates)")
    source_agency = ssf.AGENCY
    publishes = (*INPUT_TYPES, "AssistanceRequested", "AssistanceAcknowledged",
                 "AssistanceResult")

    def _configure(self, settings: dict[str, Any]) -> None:
        self._args = _settings(self, settings)
        self.calendar, self.due_working_days = case_calendar(self, settings)
        self.page_size = self._setting(settings, "page_size", int, 500)
        if not 1 <= self.page_size <= ssf.MAX_PAGE:
            raise ConfigError(f"connector {self.name!r} ({self.kind}): setting 'page_size' "
                              f"must be 1 to {ssf.MAX_PAGE}")
        self._client: SsfClient | None = None
        self._remaining: int | None = None

    def _open(self) -> None:
        self._client = _connect(self._args)

    def _close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _poll(self, position: Position | None, max_records: int) -> Sequence[PartnerRecord]:
        if self._client is None:
            self._open()
        assert self._client is not None
        where = f"GET {self._client.base}{ssf.FEED_PATH}"
        response = self._client.get(ssf.FEED_PATH, {
            "cursor": position, "limite": max(1, min(max_records, self.page_size))})
        if _transient(response.status):
            raise _unavailable(where, response)
        if response.status != 200:
            raise SsfProtocolError(f"{where} (cursor {position!r}) answered HTTP "
                                   f"{response.status}: {_message(response)}; the checkpoint "
                                   f"of {self.name!r} may not be SSF's")
        return self._records(where, response.data)

    def _records(self, where: str, page: Any) -> list[PartnerRecord]:
        if not isinstance(page, dict) or not isinstance(page.get("itens"), list):
            raise SsfProtocolError(f"{where}: expected {{\"itens\": [...]}}, got "
                                   f"{bounds.show(page, 120)}")
        records = []
        for i, item in enumerate(page["itens"]):
            if not isinstance(item, dict) or not isinstance(item.get("cursor"), str):
                raise SsfProtocolError(f"{where}: itens[{i}] has no cursor; cannot checkpoint "
                                       f"past it")
            record = item.get("registo")
            try:
                raw = json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode(
                    "utf-8", errors="backslashreplace")
            except (RecursionError, ValueError):
                raw = bounds.show(record, 10_000).encode("utf-8", errors="backslashreplace")
            # SSF's cursors are its communication numbers: stable, the record's identity.
            records.append(PartnerRecord(key=f"fss:{item['cursor']}", position=item["cursor"],
                                         raw=raw, data=record))
        remaining = page.get("restantes")
        self._remaining = remaining if type(remaining) is int else None
        return records

    def _to_events(self, record: PartnerRecord) -> list[Event]:
        return [ssf.record_to_event(record.data, self.calendar, self.due_working_days)]

    def _lag(self, position: Position | None) -> int | None:
        return self._remaining


class MacauSsfResultsSink(SinkConnector):
    kind = "macau-ssf-results"
    description = ("Macau Social Security Fund: posts Foshan's form-3 answers for SSF's "
                   "beneficiaries living in Foshan (idempotency key = event id)")
    topics = ("assistance_results",)

    def _configure(self, settings: dict[str, Any]) -> None:
        self._args = _settings(self, settings)
        self.ack_log = Path(self._setting(settings, "ack_log", str))
        self._client: SsfClient | None = None

    def _open(self) -> None:
        try:
            self.ack_log.parent.mkdir(parents=True, exist_ok=True)
            self.ack_log.touch()
        except OSError as exc:
            raise ConfigError(f"connector {self.name!r} ({self.kind}): setting 'ack_log': "
                              f"cannot write {self.ack_log}: {exc.strerror}") from None
        self._client = _connect(self._args)

    def _close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _apply(self, records: Sequence[SinkRecord]) -> Sequence[tuple[SinkRecord, str]]:
        if self._client is None:
            self._open()
        rejected: list[tuple[SinkRecord, str]] = []
        acks: list[dict[str, Any]] = []
        try:
            for record in records:
                if ssf.is_ssf_result(record.event):
                    path, body = ssf.RESULTS_PATH, ssf.result_body
                elif ssf.is_ssf_request(record.event):
                    path, body = ssf.REQUESTS_PATH, ssf.request_body
                else:
                    continue  # another partner's case, SSF's own events, acknowledgements
                try:
                    ack = self._post(record, path, body(record.event))
                except RecordRejected as exc:
                    rejected.append((record, exc.reason))
                    continue
                acks.append(ack)
        finally:
            self._journal(acks)
        if acks or rejected:
            self.log.info("SSF received %d results and requests (%d already held), refused %d",
                          len(acks),
                          sum(1 for a in acks if a["duplicate"]), len(rejected))
        return rejected

    def _post(self, record: SinkRecord, path: str, body: dict[str, Any]) -> dict[str, Any]:
        assert self._client is not None
        where = f"POST {self._client.base}{path}"
        event_id = record.event["event_id"]
        response = self._client.post(path, body, {ssf.IDEMPOTENCY_HEADER: event_id})
        if _transient(response.status):
            raise _unavailable(where, response)
        if 400 <= response.status < 500:
            raise RecordRejected(f"SSF refused the result (HTTP {response.status}): "
                                 f"{_message(response)}")
        data = response.data
        if response.status not in (200, 201) or not isinstance(data, dict) \
                or not isinstance(data.get("n_recibo"), str):
            raise SsfProtocolError(f"{where} for event {event_id} answered HTTP "
                                   f"{response.status} without n_recibo: {response.text[:200]}")
        return {"event_id": event_id, "type": record.event["type"],
                "case_id": body.get("n_processo") or body["n_pedido_foshan"],
                "n_recibo": data["n_recibo"], "duplicate": data.get("duplicado") is True,
                "received_at": data.get("data_hora_rececao"), "topic": record.topic,
                "partition": record.partition, "offset": record.offset}

    def _journal(self, acks: list[dict[str, Any]]) -> None:
        if not acks:
            return
        with self.ack_log.open("a", encoding="utf-8") as out:
            out.write("".join(json.dumps(a, separators=(",", ":")) + "\n" for a in acks))
            out.flush()
            os.fsync(out.fileno())
