"""The test kit's harnesses over the provincial system's simulator (a real process).

``GuangdongHarness`` is the partner of the source (the certifications feed),
``GuangdongResultsHarness`` the partner of the sink (the assistance results). Both start
``python -m lifecert_dev.partners.guangdong.simulator serve`` on a free port with its state under
the work folder, serving HTTPS with a certificate from a throwaway CA made there
(``province/tls/``); the connector's settings pin that CA (``ca_file``).

``break_mode`` chooses how :meth:`break_partner` breaks it: ``"503"``
(the partner API answers 503), ``"close"`` (it drops every connection unanswered) or
``"stop"`` (the process is stopped, and started again on the same port to mend; the
admin calls of ``feed`` and ``applied`` then fail until it is mended).
"""

from __future__ import annotations

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

from connectors.guangdong import province as gd
from connectors.guangdong.client import ProvinceClient
from connectors.guangdong.mapping import event_to_record
from connectors.sdk.errors import PartnerUnavailable
from lifecert.domain.fold import uuid5
from lifecert.events.interchange import parse_event
from lifecert.events.time import SHANGHAI
from lifecert_dev.testkit.harness import Event, SinkHarness, SourceHarness
from lifecert_dev.testkit.tls import ServerCertificate, TestCA

BREAK_MODES = ("503", "close", "stop")
TOKEN_ENV = "GUANGDONG_SIM_TOKEN"
_FEED_CHUNK = 5000


class SimulatorProcess:
    """``python -m lifecert_dev.partners.guangdong.simulator serve`` as a child process, serving
    HTTPS with a certificate for 127.0.0.1 and localhost from :attr:`ca` (made under
    ``data_dir/tls`` when not given), kept across restarts."""

    def __init__(self, data_dir: Path, token: str | None = None, ca: TestCA | None = None,
                 server: ServerCertificate | None = None) -> None:
        self.data_dir = data_dir
        self.token = token
        self.ca = ca or TestCA.create(data_dir / "tls" / "ca")
        self.server = server or self.ca.issue_server(data_dir / "tls" / "server",
                                                     ["127.0.0.1", "localhost"])
        self.port = 0  # 0 until the first start picks a free port; kept for restarts
        self._proc: subprocess.Popen[str] | None = None
        self._admin: ProvinceClient | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_file(self) -> Path:
        """The CA certificate a client pins to trust this simulator."""
        return self.ca.cert_file

    def client(self, token: str | None = None, timeout: float = 5.0) -> ProvinceClient:
        """A client of this simulator that pins its CA."""
        return ProvinceClient(self.url, token, timeout, ca_file=self.ca_file)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 15.0) -> str:
        if self.running:
            return self.url
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        args = [sys.executable, "-m", "lifecert_dev.partners.guangdong.simulator", "serve",
                "--port", str(self.port), "--data-dir", str(self.data_dir),
                "--tls-cert", str(self.server.cert_file),
                "--tls-key", str(self.server.key_file)]
        if self.token is not None:
            env[TOKEN_ENV] = self.token
            args += ["--token-env", TOKEN_ENV]
        log_file = (self.data_dir / "simulator.log").open("ab")
        try:
            self._proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log_file,
                                          env=env, text=True)
        finally:
            log_file.close()
        line = self._first_line(timeout)
        self.port = int(line.rsplit(":", 1)[1])
        self._admin = self.client(self.token, timeout=30.0)
        return self.url

    def _first_line(self, timeout: float) -> str:
        assert self._proc is not None and self._proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self._proc.stdout, selectors.EVENT_READ)
            ready = sel.select(timeout)
        line = self._proc.stdout.readline() if ready else ""
        if not line.startswith("listening on https://"):
            self.stop()
            tail = (self.data_dir / "simulator.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the Guangdong simulator did not start within {timeout} s "
                               f"(state {self.data_dir}); its log ends:\n{tail}")
        return line.strip()

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
        """An admin call; ``RuntimeError`` saying what failed when it does not succeed."""
        if self._admin is None:
            raise RuntimeError(f"the Guangdong simulator is not running ({method} {path})")
        try:
            if method == "POST":
                response = self._admin.post(path, body)
            else:
                response = self._admin.request(method, path)
        except PartnerUnavailable as exc:
            raise RuntimeError(f"Guangdong simulator admin call failed: {exc}") from None
        if response.status != 200:
            raise RuntimeError(f"Guangdong simulator: {method} {path} answered HTTP "
                               f"{response.status}: {response.message()}")
        return response.data


class _Partner:
    """Start/stop/break/mend, shared by the two harnesses."""

    def __init__(self, break_mode: str = "503", token: str | None = None) -> None:
        if break_mode not in BREAK_MODES:
            raise ValueError(f"break_mode must be one of {BREAK_MODES}, got {break_mode!r}")
        self.break_mode = break_mode
        self.token = token
        self.sim: SimulatorProcess | None = None

    def _start(self, work_dir: Path) -> dict[str, Any]:
        self.sim = SimulatorProcess(work_dir / "province", self.token)
        self.sim.start()
        settings: dict[str, Any] = {"url": self.sim.url, "ca_file": str(self.sim.ca_file),
                                    "timeout": 5.0}
        if self.token is not None:
            settings["token"] = self.token
        return settings

    def _running(self) -> SimulatorProcess:
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
            sim.admin("POST", "/admin/faults", {"mode": self.break_mode, "count": None})

    def mend_partner(self) -> None:
        sim = self._running()
        if self.break_mode == "stop":
            sim.start()
        else:
            sim.admin("DELETE", "/admin/faults")


class _Cases:
    """The assistance cases the simulator holds (both harnesses' partner)."""

    sim: SimulatorProcess | None

    def _running(self) -> SimulatorProcess:
        if self.sim is None:
            raise RuntimeError("the harness is not started: call start(work_dir) first")
        return self.sim

    def register_cases(self, cases: Sequence[dict[str, str]]) -> None:
        """Other cities register ``cases`` (``caseNo``, ``insuredId``, ``insuredCity``,
        ``registerTime``) with Foshan: ASSIST_CASE records on Foshan's feed."""
        for start in range(0, len(cases), _FEED_CHUNK):
            self._running().admin("POST", "/admin/cases",
                                  {"cases": list(cases[start:start + _FEED_CHUNK])})

    def answer_cases(self, at: str, result: str = "1") -> int:
        """The local offices answer the open cases a city registered (result 1: they
        certify the retiree at ``at``; 2 not found; 3 deceased); how many."""
        return int(self._running().admin("POST", "/admin/answer-cases",
                                         {"at": at, "result": result})["answered"])

    def cases(self) -> list[dict[str, Any]]:
        return list(self._running().admin("GET", "/admin/cases")["cases"])


class GuangdongHarness(_Partner, _Cases, SourceHarness):
    connector_kind = "guangdong-xregion"
    carries = frozenset(("CertificationRecorded", channel) for channel in gd.CERT_TYPES.values())

    _MALFORMED: tuple[tuple[str, dict[str, Any]], ...] = (
        ("certTime", {"certTime": None}),
        ("certType", {"certType": "09"}),
        ("reportTime", {"reportTime": "2017-05-03 10:00:00"}),
        ("insuredId", {"insuredId": ""}),
    )

    def __init__(self, break_mode: str = "503", token: str | None = None) -> None:
        super().__init__(break_mode, token)
        self._malformed = 0

    def start(self, work_dir: Path) -> dict[str, Any]:
        return {**self._start(work_dir), "city": gd.FOSHAN, "page_size": 500}

    def feed(self, events: Sequence[Event]) -> None:
        sim = self._running()
        records = []
        for i, event in enumerate(events):
            try:
                records.append(event_to_record(event, gd.FOSHAN))
            except (KeyError, ValueError) as exc:
                raise ValueError(f"feed(): event {i} ({event.get('certification_id')!r}) "
                                 f"cannot be reported by the province: {exc}") from None
        for start in range(0, len(records), _FEED_CHUNK):
            sim.admin("POST", "/admin/feed",
                      {"city": gd.FOSHAN, "items": records[start:start + _FEED_CHUNK]})

    def feed_malformed(self) -> str:
        field, change = self._MALFORMED[self._malformed % len(self._MALFORMED)]
        self._malformed += 1
        record = {
            "certNo": f"GDXR-17-BAD{self._malformed:05d}", "insuredId": "FS000000001",
            "insuredCity": gd.FOSHAN, "certType": "01", "handlerOrgCode": "GD-GUANGZHOU-SIB",
            "certTime": "2017-05-02 09:30:00+08:00", "reportTime": "2017-05-02 10:00:00+08:00",
        }
        record.update(change)
        self._running().admin("POST", "/admin/feed", {"city": gd.FOSHAN, "items": [record]})
        return field

    def feed_hostile(self) -> list[str]:
        deep: Any = []
        for _ in range(500):  # deep, yet within what the simulator's own JSON can carry
            deep = [deep]
        changes: list[tuple[str, dict[str, Any]]] = [
            ("certNo", {"certNo": "GDXR-17\x00H1"}),
            ("insuredId", {"insuredId": "FS 000000001\n"}),
            ("handlerOrgCode", {"handlerOrgCode": "GD-\u202eGUANGZHOU-SIB"}),
            ("certTime", {"certTime": "0001-01-01 00:00:00+08:00"}),
            ("reportTime", {"reportTime": "9999-12-31 23:59:59-10:00"}),
            ("certNo", {"certNo": deep}),
            ("insuredId", {"insuredId": "F" * 100_000}),
            ("certType", {"certType": 1}),
            ("insuredCity", {"insuredCity": 2**70}),
        ]
        items = []
        for n, (_, change) in enumerate(changes):
            items.append({
                "certNo": f"GDXR-17-HOSTILE{n:03d}", "insuredId": "FS000000001",
                "insuredCity": gd.FOSHAN, "certType": "01",
                "handlerOrgCode": "GD-GUANGZHOU-SIB", "certTime": "2017-05-02 09:30:00+08:00",
                "reportTime": "2017-05-02 10:00:00+08:00", **change,
            })
        self._running().admin("POST", "/admin/feed", {"city": gd.FOSHAN, "items": items})
        return [field for field, _ in changes]


class GuangdongResultsHarness(_Partner, _Cases, SinkHarness):
    connector_kind = "guangdong-results"
    topic_role = "assistance_results"

    def start(self, work_dir: Path) -> dict[str, Any]:
        return {**self._start(work_dir), "assisting_city": gd.FOSHAN,
                "ack_log": str(work_dir / "guangdong-acks.jsonl")}

    def sample_events(self, count: int, seed: int) -> list[Event]:
        rng = random.Random(seed)
        homes = sorted(name for name in gd.CITY_CODES if name != "FOSHAN")
        districts = ("CHANCHENG", "NANHAI", "SHUNDE", "GAOMING", "SANSHUI")
        window = datetime(2017, 4, 1, 9, 0, tzinfo=SHANGHAI)
        events = []
        for i in range(count):
            home = rng.choice(homes)
            method = rng.choice(tuple(gd.ASSIST_METHODS))
            district = rng.choice(districts)
            agency = {"COUNTER": f"FS-{district}-OFFICE{rng.randint(1, 9):02d}",
                      "FACE_COUNTER": f"FS-{district}-WIN{rng.randint(1, 12):02d}",
                      "HOME_VISIT": f"FS-{district}-HOMEVISIT"}[method]
            performed = window + timedelta(days=rng.randrange(80),
                                           seconds=rng.randrange(8 * 3600))
            events.append(parse_event({
                "type": "AssistanceResult",
                "event_id": uuid5(f"guangdong-results-sample|{seed}|{i}"),
                "recorded_at": (performed + timedelta(seconds=rng.randrange(60, 7200))
                                ).isoformat(),
                "source_agency": "FS-SIB-XREGION",
                "certification_id": f"FSAR-17-{seed % 10_000:04d}{i:07d}",
                "retiree_id": f"{gd.CITY_CODES[home]}{rng.randrange(10**9):09d}",
                "home_region": home,
                "method": method,
                "agency_id": agency,
                "performed_at": performed.isoformat(),
            }, allowed=("AssistanceResult",)))
        return events

    def applied(self) -> list[str]:
        """The idempotency keys of what the province holds from Foshan: caseless results,
        answers to the province's cases, Foshan's own cases."""
        results = self._running().admin("GET", "/admin/results")["results"]
        keys = [r["idempotencyKey"] for r in results]
        for case in self.cases():
            keys += [k for k in (case["idempotencyKey"], case["answerKey"]) if k is not None]
        return keys

    def wait_applied(self, count: int, timeout: float = 30.0) -> list[str]:
        """:meth:`applied` once it holds at least ``count`` ids (or at the timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            ids = self.applied()
            if len(ids) >= count or time.monotonic() > deadline:
                return ids
            time.sleep(0.1)
