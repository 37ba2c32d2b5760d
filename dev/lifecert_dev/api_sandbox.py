"""A throwaway API deployment on the local stack, for the tests and the benchmark: its own
PKI, its own database, its own topic prefix, and the real server as a child process
(``python -m lifecert.api.server``) over mutual TLS on loopback.

    with Sandbox.create(stack_dsn, bootstrap, tmp_path) as box:
        box.publish([enrolled_event, ...])          # onto the sandbox's events topic
        server = box.start_server()                  # returns once SERVING
        with server.channel("MO-SSF", "MACAU_SSF") as channel: ...
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc
import psycopg2
from psycopg2.extras import execute_values

from lifecert.api import secondfactor
from lifecert.api.client import aio_secure_channel, secure_channel
from lifecert.api.server_config import create_second_factor_key, second_factor_key
from lifecert.databases import create_database, drop_database
from lifecert.dbroles import dsn_as, lock_down
from lifecert.events import codec
from lifecert.events.personal import seal_personal
from lifecert.keystore.memory import MemoryKeyStore
from lifecert.pipeline import broker_clients
from lifecert.pipeline.credentials import ADMIN
from lifecert.pipeline.topics import TopicLayout, layout
from lifecert.pki import PkiPaths, init, issue

PROJECT_ROOT = Path(__file__).resolve().parents[2]
_SANDBOX_KEYS = MemoryKeyStore()


class SandboxError(RuntimeError):
    pass


@dataclass
class ServerProcess:
    box: Sandbox
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def credentials_of(self, agency: str, role: str) -> tuple[Path, Path]:
        return self.box.certificate(agency, role)

    def channel(self, agency: str | None, role: str | None = None) -> grpc.Channel:
        """A channel authenticated as ``agency`` (issued on first use with ``role``);
        ``agency=None``: TLS without a client certificate."""
        if agency is None:
            return secure_channel(self.target, ca=self.box.pki.ca_cert)
        cert, key = self.box.certificate(agency, role)
        return secure_channel(self.target, ca=self.box.pki.ca_cert, cert=cert, key=key)

    def aio_channel(self, agency: str, role: str | None = None) -> grpc.aio.Channel:
        cert, key = self.box.certificate(agency, role)
        return aio_secure_channel(self.target, ca=self.box.pki.ca_cert, cert=cert, key=key)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout: float = 20.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return self.process.returncode


@dataclass
class Sandbox:
    root: Path
    admin_dsn: str
    db_name: str
    dsn: str
    bootstrap: str
    topics: TopicLayout
    pki: PkiPaths
    servers: list[ServerProcess] = field(default_factory=list)
    _certs: dict[str, tuple[Path, Path]] = field(default_factory=dict)

    @classmethod
    def create(cls, admin_dsn: str, bootstrap: str, root: Path) -> Sandbox:
        token = uuid.uuid4().hex[:10]
        db_name = f"lifecert_api_{token}"
        dsn = create_database(admin_dsn, db_name)
        lock_down(admin_dsn, db_name)
        topics = layout(f"api{token}.")
        with broker_clients.admin_client(bootstrap, component=ADMIN) as client:
            broker_clients.ensure_topics(client, topics)
        pki = PkiPaths(root / "pki")
        init(pki, hosts=["localhost", "127.0.0.1"])
        create_second_factor_key(pki.root.parent / "api")  # the explicit step (keyfiles.py)
        box = cls(root, admin_dsn, db_name, dsn, bootstrap, topics, pki)
        from lifecert.api.db import connect
        from lifecert.api.migrate import migrate

        # the schema's owner; the server runs as "api"
        conn = connect(dsn_as(dsn, "owner"), "lifecert-api-migrate")
        try:
            migrate(conn)
        finally:
            conn.close()
        return box

    @property
    def api_dsn(self) -> str:
        """The sandbox's database as the API's own role (what its servers connect as)."""
        return dsn_as(self.dsn, "api")

    # ---------------------------------------------------------------- set-up helpers

    def certificate(self, agency: str, role: str | None = None) -> tuple[Path, Path]:
        if agency not in self._certs:
            if role is None:
                raise SandboxError(f"no certificate for {agency} yet: give its role")
            issued = issue(self.pki, agency, role=role)
            self._certs[agency] = (issued.cert, issued.key)
        return self._certs[agency]

    @property
    def second_factor_key(self) -> bytes:
        return second_factor_key(self.pki.root.parent / "api")

    def register_second_factors(self, pairs: Iterable[tuple[str, str]]) -> None:
        with self.connect() as conn:
            secondfactor.store(conn, secondfactor.register_rows(self.second_factor_key, pairs))

    @contextlib.contextmanager
    def _conn(self) -> Any:
        conn = psycopg2.connect(self.dsn)
        try:
            yield conn
        finally:
            conn.close()

    def connect(self) -> Any:
        return self._conn()

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.connect() as conn, conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return list(cur.fetchall())

    def publish(self, records: Iterable[tuple[str, Mapping[str, Any]]]) -> None:
        """Publish (topic role, event) pairs, keyed by retiree id, acknowledged. Personal
        fields are sealed as every producer seals them, under throwaway keys held in this
        process: nothing in a sandbox reads them back."""
        producer = broker_clients.producer(self.bootstrap, component=ADMIN)
        try:
            futures = [
                producer.send(self.topics[role].name, key=event["retiree_id"].encode(),
                              value=codec.encode(seal_personal(event, _SANDBOX_KEYS)))
                for role, event in records
            ]
            producer.flush()
            for future in futures:
                future.get(timeout=30)
        finally:
            producer.close()

    def seed_statuses(
        self, rows: Iterable[Mapping[str, Any]], holds: Iterable[tuple[str, str]] = ()
    ) -> None:
        """Rows of ``retiree_status`` as the projections would write them (keys:
        retiree_id, status, residence, and optionally policy, district, completed_by,
        completed_at), and open holds (retiree_id, effective month). A row replaces the
        retiree's status already there: the session's sandbox is shared by the test files
        one process runs, and another file may have projected the same retirees first."""
        now = time.time()
        values = [
            (r["retiree_id"], r.get("policy", "foshan-2017"), r["status"], r.get("district"),
             r["residence"], r.get("completed_by"), r.get("completed_at"),
             f"seed-{i}", psycopg2.TimestampFromTicks(now), "seed", 0, i)
            for i, r in enumerate(rows)
        ]
        with self.connect() as conn, conn, conn.cursor() as cur:
            execute_values(
                cur,
                "INSERT INTO retiree_status (retiree_id, policy, status, district, residence, "
                "completed_by, completed_at, event_id, recorded_at, source_topic, "
                "source_partition, source_offset) VALUES %s "
                "ON CONFLICT (retiree_id, policy) DO UPDATE SET status = EXCLUDED.status, "
                "district = EXCLUDED.district, residence = EXCLUDED.residence, "
                "completed_by = EXCLUDED.completed_by, completed_at = EXCLUDED.completed_at, "
                "event_id = EXCLUDED.event_id, recorded_at = EXCLUDED.recorded_at, "
                "source_topic = EXCLUDED.source_topic, "
                "source_partition = EXCLUDED.source_partition, "
                "source_offset = EXCLUDED.source_offset",
                values, page_size=5000,
            )
            hold_rows = [(rid, month, f"hold-{rid}", psycopg2.TimestampFromTicks(now))
                         for rid, month in holds]
            if hold_rows:
                execute_values(
                    cur,
                    "INSERT INTO open_holds (retiree_id, effective_month, hold_event_id, "
                    "placed_at) VALUES %s", hold_rows,
                )

    # ---------------------------------------------------------------- the server

    def start_server(
        self, *args: str, timeout: float = 60.0, env: Mapping[str, str] | None = None,
        verbose: bool = True,
    ) -> ServerProcess:
        n = len(self.servers)
        ready = self.root / f"server-{n}.ready"
        log_path = self.root / f"server-{n}.log"
        ready.unlink(missing_ok=True)
        command = [
            sys.executable, "-m", "lifecert.api.server",
            "--listen", "127.0.0.1:0",
            "--pki-dir", str(self.pki.root),
            "--dsn", self.api_dsn,
            "--bootstrap", self.bootstrap,
            "--topic-prefix", self.topics.prefix,
            "--ready-file", str(ready),
            *(["--verbose"] if verbose else []),
            *args,
        ]
        environment = {**os.environ, **(env or {})}
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                command, cwd=PROJECT_ROOT, env=environment, stdout=log_file,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while not ready.exists():
            if process.poll() is not None:
                raise SandboxError(
                    f"the API server exited with {process.returncode}:\n"
                    + log_path.read_text(errors="replace")
                )
            if time.monotonic() > deadline:
                process.kill()
                raise SandboxError(
                    "the API server did not become ready in time:\n"
                    + log_path.read_text(errors="replace")
                )
            time.sleep(0.05)
        port = int(json.loads(ready.read_text())["port"])
        server = ServerProcess(self, process, port, log_path)
        self.servers.append(server)
        return server

    # ---------------------------------------------------------------- clean-up

    def close(self) -> None:
        for server in self.servers:
            server.stop()
        with contextlib.suppress(Exception), \
                broker_clients.admin_client(self.bootstrap, component=ADMIN) as client:
            client.delete_topics([s.name for s in self.topics.topics.values()])
        drop_database(self.admin_dsn, self.db_name)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
