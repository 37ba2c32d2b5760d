"""``lifecert reconcile``: payment instructions sent versus applied by the payment system.

Reads the payment system's ledger, then the payment-instructions topic to its end, and
reports per instruction type how many were sent and applied, with the back pay and
overpayment totals in yuan, then every difference: an instruction missing in the ledger
(refused, with the dead letter's reason; not consumed yet; or lost), one in the ledger that
was not sent, one whose content differs, a record on the topic that is not a payment
instruction, an account that does not agree with its instructions.

With --replay-instructions FILE the sent side is what `lifecert replay` decided for the
same campaign (its instructions.jsonl) instead of the topic: the ledger must end exactly
as replay decides.

Exit 0 when equal, 1 when different, 2 when it could not compare (usage, broker or ledger
not reachable, file not readable).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from lifecert.commands.args import EXIT_FAILED, EXIT_USAGE
from lifecert.endpoints import kafka_bootstrap
from lifecert.pipeline.topics import layout

LEDGER_DSN_ENV = "LIFECERT_PAYMENT_LEDGER_DSN"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "reconcile",
        help="payment instructions sent vs applied by the payment system's ledger",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--ledger-dsn",
        help=f"the payment system's ledger database (default: ${LEDGER_DSN_ENV})",
    )
    parser.add_argument(
        "--bootstrap",
        help="Kafka bootstrap servers (default: $LIFECERT_KAFKA_BOOTSTRAP, else 127.0.0.1:19092)",
    )
    parser.add_argument(
        "--topic-prefix", help="prefix of every topic name (default: $LIFECERT_TOPIC_PREFIX)"
    )
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    parser.add_argument(
        "--limit", type=int, default=50, metavar="N",
        help="differences listed in the text report (default 50; --json lists all)",
    )
    parser.add_argument(
        "--timeout", type=float, default=120.0, metavar="SECONDS",
        help="give up reading a topic to its end after this (default 120)",
    )
    parser.add_argument(
        "--no-dead-letters", action="store_true",
        help="do not read the dead-letter topic to explain refused instructions",
    )
    parser.add_argument(
        "--replay-instructions", type=Path, metavar="FILE",
        help="compare the ledger with this instructions.jsonl of `lifecert replay` "
        "instead of the topic",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import psycopg2

    from connectors.payment_ledger.reconcile import reconcile, reconcile_replay, render
    from lifecert.pipeline import broker_errors

    dsn = args.ledger_dsn or os.environ.get(LEDGER_DSN_ENV, "").strip()
    if not dsn:
        print(f"lifecert reconcile: give the ledger with --ledger-dsn or ${LEDGER_DSN_ENV}",
              file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.replay_instructions is not None:
            report = reconcile_replay(args.replay_instructions, dsn)
        else:
            report = reconcile(
                kafka_bootstrap(args.bootstrap), layout(args.topic_prefix), dsn,
                timeout=args.timeout, dead_letters=not args.no_dead_letters,
            )
    except OSError as exc:
        if args.replay_instructions is None:
            raise
        print(f"lifecert reconcile: cannot read {args.replay_instructions}: {exc.strerror}",
              file=sys.stderr)
        return EXIT_USAGE
    except (broker_errors.KafkaUnavailable, broker_errors.TopicProblem) as exc:
        print(f"lifecert reconcile: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except psycopg2.Error as exc:
        from connectors.payment_ledger.intake import public_dsn

        text = " ".join(str(exc).split())
        hint = ("; is it a payment ledger? (its intake: connectors/payment_ledger/intake.py; "
                "lifecert-dev's simulator makes one: python -m "
                "lifecert_dev.partners.payment_ledger.simulator init --dsn DSN)"
                if isinstance(exc, psycopg2.ProgrammingError) else "")
        print(f"lifecert reconcile: cannot read the ledger {public_dsn(dsn)}: {text}{hint}",
              file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(json.dumps(report.to_json(), ensure_ascii=False, indent=2))
    else:
        print(render(report, args.limit))
    return 0 if report.equal else EXIT_FAILED
