"""The payment system's side for the test kit: a fresh ledger database in the running
PostgreSQL server, set up by the simulator's command line, broken and mended by refusing
connections to that database only (the shared server keeps running)."""

from __future__ import annotations

import random
import subprocess
import sys
import uuid
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import psycopg2.extensions

from lifecert.dbroles import LEDGER_SINK, dsn_as, role_exists
from lifecert.domain.fold import uuid5
from lifecert.events.time import SHANGHAI, format_month, month_of_date
from lifecert_dev.partners.payment_ledger import simulator
from lifecert_dev.testkit.harness import Event, SinkHarness

DEADLINE_AT = datetime(2017, 6, 21, 0, 0, tzinfo=SHANGHAI)
HOLD_MONTH = "2017-07"


class PaymentLedgerHarness(SinkHarness):
    connector_kind = "payment-ledger"
    topic_role = "payment_instructions"

    def __init__(self, server_dsn: str | None = None) -> None:
        """``server_dsn``: any database of the PostgreSQL server to create ledgers in
        (default: $LIFECERT_POSTGRES_DSN, else the local stack's)."""
        if server_dsn is None:
            from lifecert.endpoints import postgres_dsn

            server_dsn = postgres_dsn()
        self.server_dsn = server_dsn
        self.dsn: str | None = None

    def start(self, work_dir: Path) -> dict[str, Any]:
        name = f"payledger_{uuid.uuid4().hex[:12]}"
        # the sink writes as its own role, which the ledger lets run its intake only (on a
        # server without lifecert's roles: as the admin's)
        own_role = role_exists(self.server_dsn, LEDGER_SINK)
        role = ["--connector-role", LEDGER_SINK] if own_role else []
        self.dsn = psycopg2.extensions.make_dsn(self.server_dsn, dbname=name)
        work_dir.mkdir(parents=True, exist_ok=True)
        log = work_dir / "payment-ledger-simulator.log"
        with log.open("ab") as out:
            done = subprocess.run(
                [sys.executable, "-m", "lifecert_dev.partners.payment_ledger.simulator", "init",
                 "--create", "--dsn", self.dsn, *role],
                stdout=out, stderr=subprocess.STDOUT, timeout=60, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"setting up the payment ledger {name} failed (exit "
                               f"{done.returncode}):\n{log.read_text(errors='replace')}")
        return {"dsn": dsn_as(self.dsn, "payment-ledger") if own_role else self.dsn}

    def stop(self) -> None:
        if self.dsn is not None:
            simulator.drop_database(self.dsn)
            self.dsn = None

    def break_partner(self) -> None:
        simulator.set_connections(self._dsn(), False)

    def mend_partner(self) -> None:
        simulator.set_connections(self._dsn(), True)

    def sample_events(self, count: int, seed: int) -> list[Event]:
        return sample_instructions(count, seed)

    def applied(self) -> list[str]:
        conn = simulator.connect(self._dsn())
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT event_id FROM instruction ORDER BY seq")
                return [event_id for (event_id,) in cur.fetchall()]
        finally:
            conn.close()

    def _dsn(self) -> str:
        if self.dsn is None:
            raise RuntimeError("the payment ledger harness is not started (call start())")
        return self.dsn


# ------------------------------------------------------------------ sample events


def sample_instructions(count: int, seed: int) -> list[Event]:
    """``count`` payment instructions as lifecert's rules would send them (in-memory form:
    aware ``recorded_at``), for retirees ``PAY<seed>-<n>`` with one to four instructions
    each (hold; hold + release; death; hold + death; hold + release + death; deaths with
    their overpayment), in ``recorded_at`` order. Every retiree's instructions are a valid
    sequence for the ledger, so all of them must be applied."""
    rng = random.Random(seed)
    events: list[Event] = []
    n = 0
    while len(events) < count:
        events.extend(_retiree_instructions(f"PAY{seed}-{n:05d}", rng, seed))
        n += 1
    events.sort(key=lambda e: e["recorded_at"])  # stable: a retiree's order is kept
    return events[:count]


def _retiree_instructions(retiree: str, rng: random.Random, seed: int) -> list[Event]:
    monthly = rng.randint(150_000, 600_000)
    pattern = rng.choice(("hold", "hold", "release", "release", "death", "hold-death",
                          "release-death"))
    out: list[Event] = []

    def emit(type_name: str, at: datetime, **fields: Any) -> None:
        out.append({"type": type_name, "event_id": uuid5(f"payment-ledger-sample|{seed}|"
                                                         f"{retiree}|{type_name}"),
                    "recorded_at": at, "source_agency": "lifecert", "retiree_id": retiree,
                    **fields})

    held_from: int | None = None
    free_from = datetime(2017, 1, 2, tzinfo=SHANGHAI)  # when a death may be dated from
    if pattern != "death":
        held_from = month_of_date(date(2017, 7, 1))
        emit("PaymentHoldPlaced", DEADLINE_AT, effective_month=HOLD_MONTH,
             reason="NOT_CERTIFIED")
        free_from = DEADLINE_AT
    if pattern.startswith("release"):
        assert held_from is not None
        completed = _local(date(2017, 6, 21) + timedelta(days=rng.randint(0, 120)), rng)
        completed_in = month_of_date(completed.date())
        months = [format_month(m) for m in range(held_from, completed_in + 1)]
        emit("PaymentHoldReleased", completed,
             effective_month=format_month(max(completed_in + 1, held_from)),
             backpay_months=months, backpay_amount_fen=monthly * len(months))
        held_from, free_from = None, completed
    if pattern.endswith("death"):
        died = free_from.date() + timedelta(days=rng.randint(0, 60))
        if pattern == "hold-death":
            died = date(2017, 4, 1) + timedelta(days=rng.randint(0, 90))
        recorded = _local(max(died, free_from.date()) + timedelta(days=rng.randint(1, 90)), rng)
        death_month = month_of_date(died)
        emit("PaymentTerminated", recorded, effective_month=format_month(death_month + 1),
             reason="DECEASED")
        paid = [m for m in range(death_month + 1, month_of_date(recorded.date()) + 1)
                if held_from is None or m < held_from]
        if paid:
            emit("OverpaymentDetected", recorded, months=[format_month(m) for m in paid],
                 amount_fen=monthly * len(paid))
    return out


def _local(day: date, rng: random.Random) -> datetime:
    """A working-hours time of ``day`` in Asia/Shanghai."""
    return datetime.combine(day, time(rng.randint(8, 17), rng.randint(0, 59)), tzinfo=SHANGHAI)
