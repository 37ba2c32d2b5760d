"""A partner's sandbox on the local stack (``lifecert sandbox create|list|reset|delete``).

One sandbox, in its own folder (``data/sandboxes/NAME`` unless ``--root``), is:

- a topic prefix ``sbx-NAME.`` with every lifecert topic, and a PostgreSQL database
  ``lifecert_sbx_NAME`` with the read models' and the API's tables migrated;
- its own PKI (``pki/`` the server's folder, ``pki-ca/`` the CA) and a client certificate
  for the partner's agency and role;
- test retirees enrolled in the role's jurisdiction (with second factors for GetStatus),
  among them one whose certification by that role the rules will not count (a
  government-institution retiree: only the employing unit may certify them);
- a campaign clock (``clock.json``, lifecert/pipeline/campaign_clock.py) showing the date
  the partner chose and running from there, read by the API server (the time it stamps on
  a submission) and by the scheduler (``lifecert clock run``: the moments of the policy,
  a ClockTick into every partition of the events topic);
- the API server, the stream worker, the projections and the scheduler as background
  processes, their pids in ``sandbox.json`` and their logs in ``logs/``.

Nothing of it touches the demo's topics, the tree's ``data/pki`` or another sandbox.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import psycopg2

from lifecert.api import secondfactor
from lifecert.api.authz import MATRIX
from lifecert.api.server_config import (
    SECOND_FACTOR_KEY_ENV,
    SECOND_FACTOR_KEY_FILE,
    create_second_factor_key,
)
from lifecert.events import codec
from lifecert.events.interchange import parse_line
from lifecert.events.personal import seal_personal
from lifecert.keystore.memory import MemoryKeyStore
from lifecert.pipeline import broker_clients
from lifecert.pipeline.campaign_clock import CampaignClock
from lifecert.pipeline.credentials import ADMIN, acting_as
from lifecert.pipeline.topics import EVENTS
from lifecert.pki import PkiPaths, init, issue
from lifecert_dev import live

NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,29}$")
POLICY = "foshan-2017"
DEFAULT_ROOT = Path("data/sandboxes")
PROCESSES = ("api", "worker", "projections", "scheduler")
# Where a role's retirees live, for the role's scope (authz.MATRIX); country and district.
_PLACES = {
    "MACAU": ("MO", None), "HONG_KONG": ("HK", None), "ABROAD": ("US", None),
    "GUANGDONG": ("CN", None), "OTHER_PROVINCE": ("CN", None), "FOSHAN": ("CN", "CHANCHENG"),
}
_CODES = {"MACAU": "MO", "HONG_KONG": "HK", "ABROAD": "AB", "GUANGDONG": "GD",
          "OTHER_PROVINCE": "OP", "FOSHAN": "FS"}


class SandboxError(RuntimeError):
    """What went wrong, and what to do (printed as is by the command)."""


@dataclass
class TestRetiree:
    retiree_id: str
    id_number: str  # made up; its last 4 characters are the second factor of GetStatus
    residence: str
    scheme: str
    managing_unit: str | None
    note: str

    @property
    def second_factor(self) -> str:
        return self.id_number[-4:]


@dataclass
class SandboxInfo:
    """``sandbox.json``: what the sandbox is, where, and its processes."""

    name: str
    role: str
    agency: str
    date: str
    prefix: str
    database: str
    bootstrap: str
    admin_dsn: str
    port: int
    retirees: list[dict[str, Any]] = field(default_factory=list)
    pids: dict[str, int] = field(default_factory=dict)

    @property
    def target(self) -> str:
        return f"localhost:{self.port}"


def check_name(name: str) -> str:
    if not NAME.match(name):
        raise SandboxError(
            f"sandbox name {name!r}: use 1-30 characters of a-z, 0-9 and -, starting with a "
            "letter or digit (it names topics and a database)"
        )
    return name


def check_role(role: str) -> str:
    if role not in MATRIX:
        raise SandboxError(f"unknown role {role!r}; the roles: {', '.join(sorted(MATRIX))}")
    if not MATRIX[role].submits:
        raise SandboxError(f"role {role} submits nothing by SubmitBatch; a sandbox is for a "
                           "partner that reports (e.g. MACAU_SSF, EMPLOYER, HOME_VISIT)")
    return role


def sandbox_retirees(role: str, agency: str, count: int) -> list[TestRetiree]:
    """``count`` retirees the role may act for, then one its channel does not count for
    (for EMPLOYER, whose retirees are all government ones: none)."""
    scope = MATRIX[role].scope
    residence = sorted(scope.residences)[0] if scope.residences else "FOSHAN"
    code = _CODES[residence]
    gov = scope.own_unit
    unit = agency if gov else None
    scheme = "GOV_INSTITUTION" if gov else "URBAN_EMPLOYEE"
    found = [
        TestRetiree(f"SBX-{code}-{n:03d}", f"82000019500101{n:04d}", residence,
                    scheme, unit, "enrolled in your scope")
        for n in range(1, count + 1)
    ]
    if not gov:
        found.append(TestRetiree(
            f"SBX-{code}-GOV", "820000195001019999", residence, "GOV_INSTITUTION",
            "SBX-UNIT", "a government-institution retiree: only the employing unit "
            "(EMPLOYER_BATCH) may certify them, so your certification is accepted and then "
            "rejected by the rules (CHANNEL_NOT_ALLOWED)"))
    return found


def _enrollment(retiree: TestRetiree, n: int) -> dict[str, Any]:
    country, district = _PLACES[retiree.residence]
    line = json.dumps({
        "type": "RetireeEnrolled", "event_id": f"sbx-enrolled-{retiree.retiree_id}",
        "recorded_at": "2017-01-02T09:00:00+08:00", "source_agency": "lifecert-sandbox",
        "retiree_id": retiree.retiree_id, "name": f"Test retiree {n}",
        "birth_date": "1950-03-15", "scheme": retiree.scheme, "category": "REGULAR",
        "residence": retiree.residence, "district": district, "country": country,
        "pension_start": "2010-01-01", "monthly_amount_fen": 300_000, "disabled": False,
        "managing_unit": retiree.managing_unit,
    })
    return parse_line(line)


class PartnerSandbox:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    # ------------------------------------------------------------------ where things are

    @property
    def info_file(self) -> Path:
        return self.root / "sandbox.json"

    @property
    def pki(self) -> PkiPaths:
        return PkiPaths(self.root / "pki", self.root / "pki-ca")

    @property
    def clock_file(self) -> Path:
        return self.root / "clock.json"

    def client_files(self, agency: str) -> tuple[Path, Path]:
        clients = self.root / "pki-ca" / "clients"
        return clients / f"{agency}.crt", clients / f"{agency}.key"

    def load(self) -> SandboxInfo:
        try:
            return SandboxInfo(**json.loads(self.info_file.read_text()))
        except OSError:
            raise SandboxError(f"no sandbox in {self.root} (no sandbox.json); "
                               "`lifecert sandbox list` shows them") from None

    def save(self, info: SandboxInfo) -> None:
        tmp = self.info_file.with_name("sandbox.json.tmp")
        tmp.write_text(json.dumps(asdict(info), indent=2) + "\n")
        tmp.replace(self.info_file)

    def run(self, info: SandboxInfo) -> live.LiveRun:
        return live.LiveRun(info.bootstrap, info.admin_dsn, info.prefix, info.database,
                            self.root)

    # ------------------------------------------------------------------ life cycle

    def create(self, info: SandboxInfo, retirees: list[TestRetiree]) -> SandboxInfo:
        """Topics, database, PKI, enrollments, clock; then start the processes."""
        if self.info_file.exists():
            raise SandboxError(f"sandbox {info.name} exists already ({self.root}); "
                               f"`lifecert sandbox reset {info.name}` starts it afresh")
        self.root.mkdir(parents=True, exist_ok=True)
        info.retirees = [asdict(r) for r in retirees]
        self.save(info)
        with acting_as(ADMIN):
            self._fresh_state(info, retirees)
        pki = self.pki
        init(pki, hosts=["localhost", "127.0.0.1"])
        create_second_factor_key(self.root / "api")
        issue(pki, info.agency, role=info.role)
        self.start(info)
        return info

    def _fresh_state(self, info: SandboxInfo, retirees: list[TestRetiree]) -> None:
        run = self.run(info)
        live.prepare(run)  # topics, worker store, database with the read models
        from lifecert.api.migrate import migrate
        from projections.connection import connect

        conn = connect(run.dsn_for("owner"))
        try:
            migrate(conn)
        finally:
            conn.close()
        self._enroll(info, retirees)
        CampaignClock.starting(date.fromisoformat(info.date)).write(self.clock_file)

    def _enroll(self, info: SandboxInfo, retirees: list[TestRetiree]) -> None:
        keys = MemoryKeyStore()  # names sealed as every producer seals them; none read back
        topic = self.run(info).topics[EVENTS].name
        producer = broker_clients.producer(info.bootstrap, component=ADMIN)
        try:
            futures = [
                producer.send(topic, key=r.retiree_id.encode(),
                              value=codec.encode(seal_personal(_enrollment(r, n), keys)))
                for n, r in enumerate(retirees, 1)
            ]
            producer.flush()
            for future in futures:
                future.get(timeout=30)
        finally:
            producer.close()

    def register_second_factors(self, info: SandboxInfo) -> None:
        key = bytes.fromhex((self.root / "api" / SECOND_FACTOR_KEY_FILE).read_text().strip())
        rows = secondfactor.register_rows(
            key,
            [(r["retiree_id"], r["id_number"]) for r in info.retirees])
        conn = psycopg2.connect(self.run(info).dsn)
        try:
            secondfactor.store(conn, rows)
        finally:
            conn.close()

    def start(self, info: SandboxInfo, timeout: float = 120.0) -> None:
        run = self.run(info)
        logs = self.root / "logs"
        logs.mkdir(exist_ok=True)
        ready = self.root / "api.ready"
        ready.unlink(missing_ok=True)
        cli = [sys.executable, "-m", "lifecert.cli"]
        argv = {
            "worker": run.worker_argv(),
            "projections": run.projections_argv(),
            "scheduler": [*cli, "clock", "run", "--policy", POLICY, "--interval", "2",
                          "--clock-file", str(self.clock_file),
                          "--bootstrap", info.bootstrap, "--prefix", info.prefix],
            "api": [sys.executable, "-m", "lifecert.api.server",
                    "--listen", f"127.0.0.1:{info.port}", "--pki-dir", str(self.pki.root),
                    "--dsn", run.dsn_for("api"), "--bootstrap", info.bootstrap,
                    "--topic-prefix", info.prefix, "--clock-file", str(self.clock_file),
                    "--ready-file", str(ready), "--no-face", "--verbose"],
        }
        # The sandbox's own second-factor key (api/ beside pki/), not one from the shell.
        env = {k: v for k, v in os.environ.items() if k != SECOND_FACTOR_KEY_ENV}
        env["PYTHONUNBUFFERED"] = "1"
        for name, command in argv.items():
            with (logs / f"{name}.log").open("ab") as out:
                child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=env,
                                         start_new_session=True)
            info.pids[name] = child.pid
        self.save(info)
        self._wait_ready(info, ready, timeout)
        self.register_second_factors(info)

    def _wait_ready(self, info: SandboxInfo, ready: Path, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not ready.exists():
            dead = [n for n, pid in info.pids.items() if not _alive(pid)]
            if dead or time.monotonic() > deadline:
                why = f"{', '.join(dead)} exited" if dead else "the API is not ready in time"
                raise SandboxError(f"sandbox {info.name}: {why}; see {self.root / 'logs'}/")
            time.sleep(0.2)

    def stop(self, info: SandboxInfo) -> None:
        """SIGTERM each process this sandbox started (by its recorded pid), then SIGKILL
        what is left after 20 s."""
        for pid in info.pids.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while any(_alive(p) for p in info.pids.values()) and time.monotonic() < deadline:
            time.sleep(0.2)
        for pid in info.pids.values():
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        info.pids = {}
        self.save(info)

    def reset(self, date_text: str | None = None) -> SandboxInfo:
        """Stop, wipe topics and database, enroll again, set the clock (to the same date
        unless another is given), start again. The certificates are kept."""
        info = self.load()
        self.stop(info)
        if date_text is not None:
            info.date = date_text
        retirees = [TestRetiree(**r) for r in info.retirees]
        with acting_as(ADMIN):
            self._fresh_state(info, retirees)
        self.start(info)
        return info

    def delete(self) -> None:
        info = self.load()
        self.stop(info)
        with acting_as(ADMIN):
            live.discard(self.run(info))
        import shutil

        shutil.rmtree(self.root)

    def states(self, info: SandboxInfo) -> dict[str, str]:
        return {n: ("running" if _alive(info.pids.get(n, 0)) else "stopped")
                for n in PROCESSES}


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A child of ours that exited is a zombie until reaped: reap it if it is ours.
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sandboxes(root: Path) -> Iterator[PartnerSandbox]:
    if root.is_dir():
        for folder in sorted(root.iterdir()):
            if (folder / "sandbox.json").exists():
                yield PartnerSandbox(folder)
