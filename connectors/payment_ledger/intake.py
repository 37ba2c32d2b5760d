"""The payment system's intake: the contract the payment system implements and the sink
(:mod:`connectors.payment_ledger.connector`) and ``lifecert reconcile`` rely on. A
simulation of it, for the tests and the demo, is lifecert-dev's
``lifecert_dev.partners.payment_ledger.simulator``.

The payment system speaks its own terms: an *instruction* is SUSPEND, RESUME, STOP,
RECOVER, or one of the corrections (rules 12-14): REINSTATE (re-open a stopped pension with
back pay), CANCEL_RECOVERY (give back periods being recovered), SETTLE_ESTATE (pay the
estate periods a suspension kept unpaid up to the death); an *account* (one per retiree)
is PAYING, SUSPENDED or STOPPED; pay *periods* are calendar months, stored as the date of
their first day. Its intake interface is one function,
``apply_instructions(consumer, batch, positions)``: it applies a batch in one
transaction (the caller's), each instruction once by its ``event_id``, checks each against
the account, refuses what it must (table ``refusal``), and stores how far the consumer has
read each source partition (table ``intake_position``) with the effects.

What the ledger refuses (``code`` of a refusal), and why a payment system would:

- ``CONFLICTING_DUPLICATE``: an instruction with this ``event_id`` was applied with other
  content. Applying either again could pay twice; a person must look.
- ``ACCOUNT_STOPPED``: SUSPEND, RESUME or STOP for a stopped account (the retiree died):
  a stopped pension is re-opened only by REINSTATE (a death report retracted) and never
  stopped twice. (RECOVER, CANCEL_RECOVERY, SETTLE_ESTATE and REINSTATE are what a stopped
  account takes.)
- ``ALREADY_SUSPENDED``: SUSPEND while a suspension is open.
- ``NOT_SUSPENDED``: RESUME without an open suspension: its back pay would pay periods that
  were paid already.
- ``BACKPAY_PERIODS_MISMATCH``: RESUME whose back-pay periods are not exactly the suspended
  periods (from the suspension's first period up to the one before the resume) plus, after
  a REINSTATE, periods the stop had left unpaid that it did not pay (``owed_from`` on);
  REINSTATE whose back pay is for a period the stop did not leave unpaid, one at or after
  its own first period, or one the estate was paid.
- ``NOT_STOPPED``: RECOVER, CANCEL_RECOVERY, SETTLE_ESTATE or REINSTATE for an account that
  is not stopped.
- ``NOT_RECOVERING``: CANCEL_RECOVERY of a period that is not being recovered.
- ``NOT_OWED_TO_ESTATE``: SETTLE_ESTATE of a period from the stop on, one before the
  suspension open at the stop (it was paid), or one settled already.
- ``NOT_OVERPAID``: RECOVER of a period before the stop, of a period the open suspension
  kept unpaid, or of a period already being recovered.

lifecert's rules never emit such a sequence; a refusal means something upstream is wrong.
"""

from __future__ import annotations

from typing import Any

import psycopg2
import psycopg2.extensions

APPLICATION_NAME = "payment-ledger"
KINDS = ("SUSPEND", "RESUME", "STOP", "RECOVER", "REINSTATE", "CANCEL_RECOVERY",
         "SETTLE_ESTATE")
# Kinds without an effective period; of them, those whose periods are overpaid periods.
UNDATED_KINDS = ("RECOVER", "CANCEL_RECOVERY", "SETTLE_ESTATE")
OVERPAID_KINDS = ("RECOVER", "CANCEL_RECOVERY")
STATES = ("PAYING", "SUSPENDED", "STOPPED")

# The intake function's signature, to check that a database is a payment ledger.
INTAKE_FUNCTION = "apply_instructions(text,jsonb,jsonb)"


def connect(dsn: str, **kwargs: Any) -> psycopg2.extensions.connection:
    options: dict[str, Any] = {"application_name": APPLICATION_NAME, "connect_timeout": 10}
    options.update(kwargs)
    return psycopg2.connect(dsn, **options)


def public_dsn(dsn: str) -> str:
    """``dsn`` without its password, for messages."""
    try:
        parts = psycopg2.extensions.parse_dsn(dsn)
    except psycopg2.ProgrammingError:
        return "(unparsable DSN)"
    parts.pop("password", None)
    return psycopg2.extensions.make_dsn(**parts)
