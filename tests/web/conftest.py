"""Fixtures of the web tests: a sandbox database of the stack fixture's PostgreSQL (its
own database, migrated, with retiree statuses, second factors and staff accounts) and the
real ``lifecert web serve`` process on a free port, as a bureau runs it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from lifecert.dbroles import dsn_as
from lifecert_dev.api_sandbox import Sandbox
from lifecert_dev.stack import StackStatus
from lifecert_dev.web_harness import PROJECT_ROOT, WebServer, start_web

# Screenshots and browser logs of the tests (git ignores tests/output/).
OUTPUT = PROJECT_ROOT / "tests" / "output" / "web"

# retiree id -> ID number (the second factor is its last 4 characters)
ID_NUMBERS = {
    "FS-1": "44060419500315002X", "FS-2": "440604195003150011", "SU-1": "440604195003150027",
    "PD-1": "440604195003150035",
    **{f"LOCK-{i}": f"4406041950031501{i:02d}" for i in range(1, 9)},
}
RIGHT = {rid: number[-4:] for rid, number in ID_NUMBERS.items()}
CITY = ("city.admin", "correct horse battery")
DISTRICT = ("nanhai.staff", "staple battery horse")
LOCKED = ("lock.test", "a long enough password")  # locked out by a test


def _seed(box: Sandbox) -> None:
    done = datetime(2017, 6, 12, 9, 30, tzinfo=UTC)
    rows = [
        {"retiree_id": "FS-1", "status": "CERTIFIED", "residence": "FOSHAN",
         "district": "Chancheng", "completed_by": "FACE_APP", "completed_at": done},
        {"retiree_id": "FS-2", "status": "NOT_CERTIFIED", "residence": "FOSHAN",
         "district": "Nanhai"},
        {"retiree_id": "SU-1", "status": "SUSPENDED", "residence": "FOSHAN",
         "district": "Chancheng"},
        {"retiree_id": "PD-1", "status": "PENDING_DOCUMENTS", "residence": "ABROAD",
         "completed_by": "CONSULATE", "completed_at": done},
        *({"retiree_id": f"LOCK-{i}", "status": "NOT_CERTIFIED", "residence": "FOSHAN",
           "district": "Shunde"} for i in range(1, 9)),
        *({"retiree_id": f"GEN-{i}", "status": "CERTIFIED" if i % 3 else "NOT_CERTIFIED",
           "residence": "FOSHAN", "district": ("Chancheng", "Nanhai", "Shunde")[i % 3],
           "completed_by": ("FACE_APP", "COUNTER", "HOME_VISIT")[i % 3] if i % 3 else None,
           "completed_at": datetime(2017, 5, 1 + i % 28, 3, tzinfo=UTC) if i % 3 else None}
          for i in range(60)),
    ]
    box.seed_statuses(rows, holds=[("SU-1", "2017-07")])
    # the connectors panel: one connector fresh, one stale, and dead letters of two stages
    # (test_projections.py brings them through the broker; here the rows the panel reads)
    now = datetime.now(UTC)
    with box.connect() as conn, conn, conn.cursor() as cur:
        cur.execute("INSERT INTO connector_health (connector, kind, lag, measured_at) VALUES "
                    "('master', 'pension-master', 1234, %s), "
                    "('ledger', 'payment-ledger', 0, %s)", (now, now - timedelta(hours=1)))
        cur.execute("INSERT INTO dead_letter_index (letter_id, stage, source_topic, "
                    "recorded_at) VALUES ('d1', 'connector:master', 't', %s), "
                    "('d2', 'connector:master', 't', %s), ('d3', 'worker', 't', %s)",
                    (now, now, now))
    box.register_second_factors(ID_NUMBERS.items())
    from lifecert.web import staff

    with box.connect() as conn:
        staff.add_user(conn, CITY[0], CITY[1], staff.CITY, None)
        staff.add_user(conn, DISTRICT[0], DISTRICT[1], staff.DISTRICT, "Nanhai")
        staff.add_user(conn, LOCKED[0], LOCKED[1], staff.CITY, None)


@dataclass
class WebProcess:
    server: WebServer
    box: Sandbox

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="session")
def web_box(stack: StackStatus, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with Sandbox.create(stack.postgres_dsn, stack.kafka_bootstrap,
                        tmp_path_factory.mktemp("web")) as box:
        _seed(box)
        yield box


@pytest.fixture(scope="session")
def web(web_box: Sandbox) -> Iterator[WebProcess]:
    server = start_web(dsn_as(web_box.dsn, "web"), web_box.pki.root,
                       web_box.root / "web.log", "--poll-seconds", "2")
    try:
        yield WebProcess(server, web_box)
    finally:
        server.stop()
