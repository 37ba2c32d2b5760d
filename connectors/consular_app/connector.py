"""Source connector for the consular system (the China Consular app's cases, issue 13).

Since 2021 the consular system pushes each verified certification case of a retiree living
abroad (the mission checked passport and residence permit, the app checked the face) to
the retiree's bureau. This connector pulls the bureau's case feed over HTTPS
(:mod:`connectors.consular_app.protocol`), verifies each case's Ed25519 signature against
the pinned public key of the consular system, and publishes a ConsularCaseReceived on
``lifecert.consular-cases``. Nothing is certified yet: bureau staff approve or reject the
case within 10 working days (``lifecert review consular``), and only an approval becomes a
CONSULATE CertificationRecorded::

    [connectors.consular]
    kind = "consular-app"
    url = "https://consular.example:8443"
    ca_file = "/etc/lifecert/consular-ca.pem"         # the CA pinned for its server
    verify_key_file = "/etc/lifecert/consular-ed25519.pub.pem"  # its signing key
    token = { env = "CONSULAR_TOKEN" }                # optional bearer token
    division = "440600"                               # optional; Foshan's bureau
    page_size = 200                                   # optional, at most 1000
    missions_file = "/etc/lifecert/missions.toml"     # optional; default: the shipped
                                                      # partner directory (missions.toml)

The checkpoint is the feed's ``seq`` of the last case published; the record key is
``seq-<seq>``. A case whose signature does not verify, or whose payload is malformed, is a
dead letter naming the field, and the feed flows on; so is a case from a mission that is
not in the partner directory of missions (connectors/consular_app/missions.toml:
embassies, consulates, trade offices, caretaker embassies), or that the directory lists
with another kind or country. The same case pushed twice (same case
number, a new ``seq``) is published twice and has one effect: the read model keeps the
first, and a review is of the case number.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from connectors.consular_app import missions as directory
from connectors.consular_app import protocol as cp
from connectors.guangdong.client import ProvinceClient, Response
from connectors.sdk.base import Event, PartnerRecord, Position, SourceConnector
from connectors.sdk.errors import ConfigError, PartnerUnavailable, RecordRejected
from lifecert.events import bounds

MAX_PAGE = 1000


class ConsularProtocolError(RuntimeError):
    """The feed answered something the connector cannot go on from (a page without cases,
    a case without a position): a person must look, so the runner stops."""


def _transient(status: int) -> bool:
    return status in (401, 403, 408, 425, 429) or status >= 500


def _unavailable(what: str, response: Response) -> PartnerUnavailable:
    hint = "; check the token setting" if response.status in (401, 403) else ""
    return PartnerUnavailable(f"{what}: HTTP {response.status}: {response.message()}{hint}")


class ConsularAppSource(SourceConnector):
    kind = "consular-app"
    description = ("China Consular app: signed certification cases of retirees abroad "
                   "(HTTPS feed), for the bureau's review")
    source_agency = "CONSULAR-APP"
    publishes = ("ConsularCaseReceived",)

    def _configure(self, settings: dict[str, Any]) -> None:
        where = f"connector {self.name!r} ({self.kind})"
        url = self._setting(settings, "url", str)
        token = self._setting(settings, "token", str, None)
        timeout = self._setting(settings, "timeout", float, 10.0)
        ca_file = self._setting(settings, "ca_file", str, None)
        plain = self._setting(settings, "allow_plain_http", bool, False)
        key_file = self._setting(settings, "verify_key_file", str)
        self.division = self._setting(settings, "division", str, cp.FOSHAN)
        self.page_size = self._setting(settings, "page_size", int, 200)
        if not self.division.isdigit() or len(self.division) != 6:
            raise ConfigError(f"{where}: setting 'division' must be a six-digit division "
                              f"code (Foshan: 440600), got {self.division!r}")
        if not 1 <= self.page_size <= MAX_PAGE:
            raise ConfigError(f"{where}: setting 'page_size' must be 1 to {MAX_PAGE}, got "
                              f"{self.page_size}")
        if timeout <= 0:
            raise ConfigError(f"{where}: setting 'timeout' must be positive, got {timeout}")
        try:
            self.verify_key = cp.load_verify_key(key_file)
        except ValueError as exc:
            raise ConfigError(f"{where}: setting 'verify_key_file': {exc}") from None
        try:
            self.missions = directory.load(self._setting(settings, "missions_file", str, None))
        except directory.DirectoryError as exc:
            raise ConfigError(f"{where}: setting 'missions_file': {exc}") from None

        def client() -> ProvinceClient:
            return ProvinceClient(url, token, timeout, ca_file=ca_file,
                                  allow_plain_http=plain)

        try:
            client().close()
        except ValueError as exc:
            setting = "ca_file" if str(exc).startswith(("ca_file", "an https")) else "url"
            raise ConfigError(f"{where}: setting {setting!r}: {exc}") from None
        self._new_client = client
        self._client: ProvinceClient | None = None
        self._last_seq: int | None = None

    def _open(self) -> None:
        client = self._new_client()
        response = client.get(cp.HEALTH_PATH)
        if response.status != 200:
            client.close()
            raise _unavailable(f"GET {client.base}{cp.HEALTH_PATH}", response)
        self._client = client

    def _close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _check(self) -> list[str]:
        try:
            self._open()
        except PartnerUnavailable as exc:
            return [f"{self.name}: the consular system is unavailable: {exc}"]
        finally:
            self._close()
        return []

    def _poll(self, position: Position | None, max_records: int) -> Sequence[PartnerRecord]:
        if self._client is None:
            self._open()
        assert self._client is not None
        path = cp.feed_path(self.division)
        where = f"GET {self._client.base}{path}"
        after = position if type(position) is int else 0
        response = self._client.get(path, {"after": after,
                                           "limit": max(1, min(max_records, self.page_size))})
        if _transient(response.status):
            raise _unavailable(where, response)
        if response.status != 200:
            raise ConsularProtocolError(f"{where} answered HTTP {response.status}: "
                                        f"{response.message()}")
        page = response.data
        if not isinstance(page, dict) or not isinstance(page.get("cases"), list):
            raise ConsularProtocolError(f"{where}: expected {{\"cases\": [...]}}, got "
                                        f"{bounds.show(page, 120)}")
        last = page.get("last_seq")
        self._last_seq = last if type(last) is int else None
        records = []
        for i, item in enumerate(page["cases"]):
            seq = item.get("seq") if isinstance(item, dict) else None
            if type(seq) is not int or seq <= after:
                raise ConsularProtocolError(f"{where}: cases[{i}] has no seq after {after}; "
                                            f"cannot checkpoint past it: "
                                            f"{bounds.show(item, 120)}")
            after = seq
            payload = item.get("payload")
            raw = payload.encode("ascii", "backslashreplace") if isinstance(payload, str) \
                else bounds.show(item, 10_000).encode("utf-8", "backslashreplace")
            records.append(PartnerRecord(key=f"seq-{seq}", position=seq, raw=raw, data=item))
        return records

    def _to_events(self, record: PartnerRecord) -> list[Event]:
        item = record.data
        try:
            payload = cp.b64(item.get("payload"), "payload")
            signature = cp.b64(item.get("signature"), "signature")
            cp.verify(self.verify_key, payload, signature)
            event = cp.case_to_event(payload)
            refused = directory.problem(self.missions, event["mission_id"],
                                        event["mission_kind"], event["country"])
            if refused is not None:
                raise cp.CaseRejected(refused)
            return [event]
        except cp.CaseRejected as exc:
            raise RecordRejected(f"case at seq {item.get('seq')}: {exc.reason}") from None

    def _lag(self, position: Position | None) -> int | None:
        if self._last_seq is None:
            return None
        return max(0, self._last_seq - (position if type(position) is int else 0))
