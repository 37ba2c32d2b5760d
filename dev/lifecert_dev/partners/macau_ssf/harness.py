"""The test kit's harnesses over SSF's simulator (a real process, HTTPS with client
certificates): ``MacauSsfHarness`` for the source, ``MacauSsfResultsHarness`` for the sink.

Both start ``python -m lifecert_dev.partners.macau_ssf.simulator serve`` on a free port
with its state and a throwaway PKI under the work folder: SSF's CA certifies the server
(the connector pins it, ``ca_file``) and the bureau's CA certifies the connector's client
certificate (the simulator requires it). ``break_mode`` ``"stop"`` stops the process
(connections refused; started again on the same port with its state to mend), ``"503"``
makes the partner API answer 503.

For the demo: ``SsfSimulator(work_dir).start()`` then ``.populate(retirees, beneficiaries,
seed)``; ``.settings()`` are the connectors' settings.
"""

from __future__ import annotations

import hashlib
import os
import random
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from connectors.macau_ssf import ssf
from connectors.macau_ssf.connector import SsfClient
from connectors.sdk.errors import PartnerUnavailable
from lifecert.domain.fold import uuid5
from lifecert.events.interchange import parse_event
from lifecert.events.time import SHANGHAI
from lifecert_dev.partners.macau_ssf.simulator import population
from lifecert_dev.testkit.harness import Event, SinkHarness, SourceHarness
from lifecert_dev.testkit.tls import TestCA


def card_of(retiree_id: str) -> str:
    """A valid Macau resident card number, stable per person (made up)."""
    digest = int(hashlib.sha256(retiree_id.encode()).hexdigest(), 16)
    for n in range(100):
        try:
            return ssf.bir(f"{'157'[(digest + n) % 3]}{(digest // 7 + n) % 10**6:06d}")
        except ValueError:
            continue
    raise AssertionError("unreachable: a BIR is issued within a few tries")


class SsfSimulator:
    """The simulator process, its PKI, and an admin client."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        tls = data_dir / "tls"
        self.ca = TestCA.create(tls / "fss-ca", "FSS interop test CA")
        self.server = self.ca.issue_server(tls / "server", ["127.0.0.1", "localhost"])
        self.bureau_ca = TestCA.create(tls / "bureau-ca", "Foshan bureau test CA")
        self.client_cert = self.bureau_ca.issue_client(tls / "client", "lifecert macau-ssf")
        self.port = 0
        self._proc: subprocess.Popen[str] | None = None
        self._admin: SsfClient | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def settings(self) -> dict[str, Any]:
        return {"url": self.url, "ca_file": str(self.ca.cert_file),
                "client_cert": str(self.client_cert.cert_file),
                "client_key": str(self.client_cert.key_file), "timeout": 5.0}

    def client(self, timeout: float = 30.0) -> SsfClient:
        return SsfClient(self.url, timeout, ca_file=str(self.ca.cert_file),
                         client_cert=str(self.client_cert.cert_file),
                         client_key=str(self.client_cert.key_file))

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 15.0) -> str:
        if self.running:
            return self.url
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [sys.executable, "-m", "lifecert_dev.partners.macau_ssf.simulator", "serve",
                "--port", str(self.port), "--data-dir", str(self.data_dir),
                "--tls-cert", str(self.server.cert_file), "--tls-key", str(self.server.key_file),
                "--client-ca", str(self.bureau_ca.cert_file)]
        with (self.data_dir / "simulator.log").open("ab") as log_file:
            self._proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log_file,
                                          env=dict(os.environ), text=True)
        assert self._proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self._proc.stdout, selectors.EVENT_READ)
            ready = sel.select(timeout)
        line = self._proc.stdout.readline() if ready else ""
        if not line.startswith("listening on https://"):
            self.stop()
            tail = (self.data_dir / "simulator.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the SSF simulator did not start within {timeout} s; its log "
                               f"ends:\n{tail}")
        self.port = int(line.strip().rsplit(":", 1)[1])
        self._admin = self.client()
        return self.url

    def stop(self) -> None:
        if self._admin is not None:
            self._admin.close()
            self._admin = None
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        if self._admin is None:
            raise RuntimeError(f"the SSF simulator is not running ({method} {path})")
        try:
            response = (self._admin.post(path, body) if method == "POST"
                        else self._admin.request(method, path))
        except PartnerUnavailable as exc:
            raise RuntimeError(f"SSF simulator admin call failed: {exc}") from None
        if response.status != 200:
            raise RuntimeError(f"SSF simulator: {method} {path}: HTTP {response.status}: "
                               f"{response.text[:200]}")
        return response.data

    def append(self, records: list[Any]) -> None:
        for start in range(0, len(records), 2000):
            self.admin("POST", "/admin/comunicacoes", {"registos": records[start:start + 2000]})

    def populate(self, retirees: int, beneficiaries: int, seed: int) -> int:
        """A generated population (see ``simulator.population``); how many communications."""
        records = population(retirees, beneficiaries, seed)
        self.append(records)
        return len(records)

    def requests(self) -> list[dict[str, Any]]:
        """Foshan's requests SSF holds (once each; ``posts`` counts the deliveries)."""
        requests: list[dict[str, Any]] = self.admin("GET", "/admin/pedidos")["pedidos"]
        return requests

    def answer_requests(self, at: str | None = None, resultado: str = "VIVO") -> int:
        """SSF answers every request of Foshan's not answered yet: ``VIVO`` (it certifies
        the retiree, form 4), ``NAO_ENCONTRADO`` or ``FALECIDO``, at ``at`` (ISO 8601 with
        offset; default: each on its data_limite, 17:00). How many."""
        body: dict[str, str] = {"resultado": resultado}
        if at is not None:
            body["data_hora"] = at
        answered: int = self.admin("POST", "/admin/responder", body)["respondidos"]
        return answered

    def results(self) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = self.admin("GET", "/admin/resultados")["resultados"]
        return results


class _Partner:
    def __init__(self, break_mode: str = "stop") -> None:
        if break_mode not in ("stop", "503"):
            raise ValueError(f"break_mode must be 'stop' or '503', got {break_mode!r}")
        self.break_mode = break_mode
        self.sim: SsfSimulator | None = None

    def _start(self, work_dir: Path) -> dict[str, Any]:
        self.sim = SsfSimulator(work_dir / "fss")
        self.sim.start()
        return self.sim.settings()

    def _running(self) -> SsfSimulator:
        if self.sim is None:
            raise RuntimeError("the harness is not started: call start(work_dir) first")
        return self.sim

    def stop(self) -> None:
        if self.sim is not None:
            self.sim.stop()

    def break_partner(self) -> None:
        sim = self._running()
        if self.break_mode == "stop":
            sim.stop()
        else:
            sim.admin("POST", "/admin/faults", {})

    def mend_partner(self) -> None:
        sim = self._running()
        if self.break_mode == "stop":
            sim.start()
        else:
            sim.admin("DELETE", "/admin/faults")


def event_to_record(event: Event) -> dict[str, Any]:
    """The SSF communication that reports ``event`` (interchange form)."""
    kind, said = event["type"], str(event["recorded_at"])
    if kind == "CertificationRecorded":
        return {"tipo": ssf.PROOF, "n_registo": event["certification_id"],
                "n_pensionista_foshan": event["retiree_id"], "bir": card_of(event["retiree_id"]),
                "balcao": event["agency_id"], "data_hora_prova": str(event["performed_at"]),
                "data_hora_comunicacao": said}
    if kind == "CertificationDocumentsReceived":
        record = {"tipo": ssf.FORM_DELIVERED, "n_registo": event["certification_id"],
                  "n_pensionista_foshan": event["retiree_id"],
                  "data_hora_entrega": str(event["received_at"]), "data_hora_comunicacao": said}
        if event.get("agency_id"):
            record["balcao"] = event["agency_id"]
        return record
    if kind == "DeathRecorded":
        return {"tipo": ssf.DEATH, "n_pensionista_foshan": event["retiree_id"],
                "bir": card_of(event["retiree_id"]), "data_obito": str(event["date_of_death"]),
                "entidade_informante": event["source"], "data_hora_comunicacao": said}
    raise ValueError(f"SSF does not report {kind}")


_GOOD = {"tipo": ssf.PROOF, "n_registo": "FSS-P4-BAD", "n_pensionista_foshan": "FS000000001",
         "bir": "1234567(9)", "balcao": "MO-SSF-SEDE",
         "data_hora_prova": "2017-05-02T09:30:00+08:00",
         "data_hora_comunicacao": "2017-05-02T10:00:00+08:00"}


class MacauSsfHarness(_Partner, SourceHarness):
    connector_kind = "macau-ssf"
    carries = frozenset({("CertificationRecorded", "MACAU_SSF"),
                         ("CertificationDocumentsReceived", None), ("DeathRecorded", None)})

    def start(self, work_dir: Path) -> dict[str, Any]:
        return {**self._start(work_dir), "page_size": 500}

    def feed(self, events: Sequence[Event]) -> None:
        self._running().append([event_to_record(e) for e in events])

    def feed_malformed(self) -> str:
        self._running().append([{**_GOOD, "bir": "1234567(8)"}])  # a wrong check digit
        return "bir"

    def feed_hostile(self) -> list[str]:
        deep: Any = []
        for _ in range(500):
            deep = [deep]
        changes: list[tuple[str, dict[str, Any]]] = [
            ("n_registo", {"n_registo": "FSS\x00H1"}),
            ("n_pensionista_foshan", {"n_pensionista_foshan": "FS 0001\n"}),
            ("balcao", {"balcao": "MO-\u202eSSF"}),
            ("data_hora_prova", {"data_hora_prova": "0001-01-01T00:00:00+08:00"}),
            ("data_hora_comunicacao", {"data_hora_comunicacao": "9999-12-31T23:59:59-10:00"}),
            ("n_registo", {"n_registo": deep}),
            ("n_pensionista_foshan", {"n_pensionista_foshan": "F" * 100_000}),
            ("tipo", {"tipo": "PROVA_DE_MORTE"}),
            ("bir", {"bir": 2**70}),
            ("data_hora_prova", {"data_hora_prova": "2017-05-02 09:30"}),
        ]
        self._running().append([{**_GOOD, "n_registo": f"FSS-H{n}", **change}
                                for n, (_, change) in enumerate(changes)])
        return [field for field, _ in changes]


class MacauSsfResultsHarness(_Partner, SinkHarness):
    connector_kind = "macau-ssf-results"
    topic_role = "assistance_results"

    def start(self, work_dir: Path) -> dict[str, Any]:
        return {**self._start(work_dir), "ack_log": str(work_dir / "ssf-acks.jsonl")}

    def sample_events(self, count: int, seed: int) -> list[Event]:
        return [result_event(seed, i) for i in range(count)]

    def applied(self) -> list[str]:
        return [r["chave"] for r in self._running().results()]


def result_event(seed: int, i: int, outcome: str | None = None) -> Event:
    """Foshan's form-3 answer to SSF case ``FSS-P3-<seed>-<i>`` (as the counters report)."""
    rng = random.Random(f"{seed}|{i}")
    outcome = outcome or rng.choice(("CERTIFIED_ALIVE",) * 8 + ("NOT_FOUND", "DECEASED"))
    performed = datetime(2017, 4, 10, 9, 0, tzinfo=SHANGHAI) + timedelta(
        days=rng.randrange(60), seconds=rng.randrange(8 * 3600))
    return parse_event({
        "type": "AssistanceResult", "event_id": uuid5(f"ssf-results-sample|{seed}|{i}"),
        "recorded_at": (performed + timedelta(minutes=5)).isoformat(),
        "source_agency": "FS-SIB-CC01", "certification_id": f"FS-F3-{seed}-{i:05d}",
        "retiree_id": ssf.beneficiary_id(f"{seed % 100:02d}{i:06d}"), "home_region": "MACAU",
        "method": "HOME_VISIT" if outcome == "NOT_FOUND" else "COUNTER",
        "agency_id": "FS-SIB-CC01", "performed_at": performed.isoformat(),
        "partner": ssf.AGENCY, "case_id": f"FSS-P3-{seed}-{i:05d}", "outcome": outcome,
        "date_of_death": ((performed - timedelta(days=9)).date().isoformat()
                          if outcome == "DECEASED" else None),
    }, allowed=("AssistanceResult",))


def wait(check: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s")
        time.sleep(0.2)
