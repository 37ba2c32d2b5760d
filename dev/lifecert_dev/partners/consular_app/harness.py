"""The test kit's harness over the consular system's simulator.

Under the work folder: ``consular/`` (the simulator's state: signing key, the public key
the connector pins, ``cases.jsonl``), ``consular/tls/`` (a throwaway CA and the server's
certificate), ``spool/`` (the JSON lines pushed). :meth:`start` runs ``simulator serve``
as a child process; :meth:`feed` runs ``simulator push``; :meth:`break_partner` stops the
server process and :meth:`mend_partner` starts it again on the same port.
"""

from __future__ import annotations

import base64
import json
import os
import selectors
import signal
import subprocess
import sys
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

from lifecert_dev.partners.consular_app import simulator
from lifecert_dev.testkit.harness import Event, SourceHarness
from lifecert_dev.testkit.tls import TestCA

SIMULATOR = "lifecert_dev.partners.consular_app.simulator"
TOKEN_ENV = "CONSULAR_SIM_TOKEN"


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


class ConsularAppHarness(SourceHarness):
    connector_kind = "consular-app"
    carries = frozenset({("ConsularCaseReceived", None)})
    topic_role = "consular_cases"

    def __init__(self, token: str = "consular-sim-token") -> None:
        self.token = token
        self.root: Path | None = None
        self.port = 0
        self._proc: subprocess.Popen[str] | None = None
        self._seq = 0

    @property
    def state(self) -> Path:
        if self.root is None:
            raise RuntimeError("ConsularAppHarness.start() was not called")
        return self.root / "consular"

    # -- the server process -------------------------------------------------------------------
    def start(self, work_dir: Path) -> dict[str, Any]:
        self.root = work_dir
        public = simulator.init(self.state)
        ca = TestCA.create(self.state / "tls" / "ca")
        self._server = ca.issue_server(self.state / "tls" / "server", ["127.0.0.1"])
        self._serve()
        return {"url": f"https://127.0.0.1:{self.port}", "ca_file": str(ca.cert_file),
                "verify_key_file": str(public), "token": self.token}

    def _serve(self, timeout: float = 15.0) -> None:
        args = [sys.executable, "-m", SIMULATOR, "serve", "--state", str(self.state),
                "--port", str(self.port), "--tls-cert", str(self._server.cert_file),
                "--tls-key", str(self._server.key_file), "--token-env", TOKEN_ENV]
        log = (self.state / "simulator.log").open("ab")
        try:
            self._proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, text=True,
                                          env={**os.environ, TOKEN_ENV: self.token})
        finally:
            log.close()
        assert self._proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self._proc.stdout, selectors.EVENT_READ)
            ready = sel.select(timeout)
        line = self._proc.stdout.readline() if ready else ""
        if not line.startswith("listening on https://"):
            self.stop()
            raise RuntimeError(f"the consular simulator did not start: {line!r}; see "
                               f"{self.state / 'simulator.log'}")
        self.port = int(line.strip().rsplit(":", 1)[1])

    def stop(self) -> None:
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

    def break_partner(self) -> None:
        self.stop()

    def mend_partner(self) -> None:
        self._serve()

    # -- cases ------------------------------------------------------------------------------------
    def push(self, events: Sequence[Event], *options: str) -> None:
        """Push ``events`` (ConsularCaseReceived) through ``simulator push`` (``options``
        passed on, e.g. ``--bad-signature 2``)."""
        assert self.root is not None
        self._seq += 1
        spool = self.root / "spool" / f"{self._seq:06d}.jsonl"
        spool.parent.mkdir(parents=True, exist_ok=True)
        spool.write_text("".join(json.dumps(e, ensure_ascii=False, default=_jsonable) + "\n"
                                 for e in events), encoding="utf-8")
        done = subprocess.run([sys.executable, "-m", SIMULATOR, "push", "--state",
                               str(self.state), *options, str(spool)],
                              capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"consular simulator push failed: {done.stderr.strip()}")

    def feed(self, events: Sequence[Event]) -> None:
        for start in range(0, len(events), 5000):
            self.push(events[start:start + 5000])

    def feed_malformed(self) -> str:
        event = {"type": "ConsularCaseReceived", "recorded_at": "2017-05-04T09:00:00+08:00",
                 "case_id": "LS-BAD-1", "retiree_id": "FS000000001",
                 "mission_id": "CN-CG-VANCOUVER", "mission_kind": "CONSULATE_GENERAL",
                 "country": "CA", "passport_checked": True, "residence_permit_checked": True,
                 "face_checked": True, "performed_at": "2017-05-03T22:15:00+08:00"}
        self.push([event], "--malform", "1:faceCheck.at")
        return "faceCheck.at"

    def feed_hostile(self) -> list[str]:
        good = {"caseNo": "LS-H{n}", "pensionNo": "FS000000001",
                "mission": {"code": "CN-CG-VANCOUVER", "type": "CONSULATE_GENERAL",
                            "country": "CA"},
                "documentsChecked": ["PASSPORT", "RESIDENCE_PERMIT"],
                "faceCheck": {"passed": True, "at": "2017-05-03T22:15:00+08:00"},
                "pushedAt": "2017-05-04T09:00:00+08:00"}
        payloads: list[tuple[bytes, str]] = []

        def case(n: int, path: str, value: Any, hint: str) -> None:
            c = json.loads(json.dumps(good).replace("{n}", str(n)))
            *outer, last = path.split(".")
            target = c
            for part in outer:
                target = target[part]
            target[last] = value
            payloads.append((simulator.payload_bytes(c), hint))

        case(1, "caseNo", "LS-\x01H1", "caseNo")
        case(2, "pensionNo", "FS 000000001", "pensionNo")
        case(3, "faceCheck.at", "0001-01-01T00:00:00+08:00", "faceCheck.at")
        case(4, "pushedAt", "9999-12-31T23:59:59-10:00", "pushedAt")
        case(5, "mission.code", "X" * 100_000, "payload")  # over the payload's size limit
        case(6, "faceCheck.passed", 2**70, "faceCheck.passed")
        case(7, "mission.code", "CN-" + "Y" * 5000, "mission.code")
        payloads.append((b'{"caseNo": "LS-\xff\xfe"}', "payload"))
        payloads.append((b"[" * 20_000 + b"]" * 20_000, "payload"))
        signed = simulator.sign_payloads(self.state, [p for p, _ in payloads])
        bad = simulator.sign_payloads(self.state, [simulator.payload_bytes(good)],
                                      frozenset({1}))
        simulator.append(self.state, [*signed, *bad])
        hints = [h for _, h in payloads] + ["signature"]
        # a signature that is not base64 at all: written as the consular system's store
        # would hold it, bypassing the signer
        with (self.state / "cases.jsonl").open("a", encoding="utf-8") as f:
            seq = len(simulator.read_store(self.state)) + 1
            f.write(json.dumps({"seq": seq, "key_id": simulator.KEY_ID,
                                "payload": base64.b64encode(b"{}").decode(),
                                "signature": "not base64 !"}) + "\n")
        return [*hints, "signature"]
