"""``lifecert review consular``: bureau staff review the consular system's cases (issue 13).
(``lifecert review deaths``, the death registers' partial matches: review_deaths.py.)

::

    lifecert review consular list [--state open|overdue|reviewed|all] [--as-of DATE] [--json]
    lifecert review consular approve CASE --reviewer STAFF-ID [--reason TEXT] [--at TIME]
    lifecert review consular reject CASE --reviewer STAFF-ID --reason TEXT [--at TIME]

``list`` reads the consular cases read model (``lifecert projections run`` keeps it) and
shows each case's due day (the 10th working day of the policy's calendar after it arrived)
and whether it is overdue on ``--as-of`` (default: today in Asia/Shanghai). ``approve`` and
``reject`` publish the review (ConsularCaseReviewed: who, when, why; the audit record) and,
for an approval, the CONSULATE certification it becomes (lifecert.domain.consular); a
review is made once. ``--at`` dates the review (default: now), for a historical campaign.

Exit codes: 0 done; 1 the broker or the database failed; 2 bad arguments; 3 the review
was refused (already reviewed, a rejection without reason, a case missing a check...).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

import psycopg2
from kafka.errors import KafkaError

from lifecert.commands import review_deaths
from lifecert.commands.args import EXIT_FAILED, EXIT_USAGE, aware_time, iso_date
from lifecert.commands.topics import add_broker_arguments
from lifecert.domain import consular
from lifecert.domain.policy import Policy, PolicyError, load_policy
from lifecert.domain.working_days import WorkingCalendarError
from lifecert.endpoints import kafka_bootstrap
from lifecert.events import codec
from lifecert.events.time import local_date
from lifecert.pipeline import broker_clients, broker_errors
from lifecert.pipeline.topics import layout

EXIT_REFUSED = 3


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "review", help="bureau staff decide what waits for a person (consular cases, deaths)",
        description="Review the cases partners send for the bureau's decision.")
    kinds = parser.add_subparsers(dest="kind", required=True, metavar="KIND")
    review_deaths.register_queue(kinds)
    cons = kinds.add_parser("consular", help="the consular system's certification cases")
    actions = cons.add_subparsers(dest="action", required=True, metavar="ACTION")
    lst = actions.add_parser("list", help="cases with their due day, overdue flagged")
    lst.add_argument("--state", choices=("open", "overdue", "reviewed", "all"),
                     default="open")
    lst.add_argument("--as-of", type=iso_date, metavar="YYYY-MM-DD",
                     help="the day overdue is judged on (default: today, Asia/Shanghai)")
    lst.add_argument("--limit", type=int, default=1000)
    lst.add_argument("--json", action="store_true", help="one JSON object per case")
    for name in ("approve", "reject"):
        p = actions.add_parser(name, help=f"{name} a case")
        p.add_argument("case_id", metavar="CASE")
        p.add_argument("--reviewer", required=True, help="your staff id (no name)")
        p.add_argument("--reason", required=name == "reject",
                       help="why (required for a rejection)")
        p.add_argument("--at", type=aware_time, help="time of the review, ISO 8601 with offset "
                                                 "(default: now)")
        add_broker_arguments(p)
    for p in (lst, *[actions.choices[n] for n in ("approve", "reject")]):
        p.add_argument("--policy", help="policy name or .toml path (default: the one the "
                                         "hub runs, of the statuses in the read models)")
        p.add_argument("--dsn", help="PostgreSQL DSN of the read models (default: "
                                     "$LIFECERT_POSTGRES_DSN, else the local stack's)")
    cons.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lifecert.endpoints import postgres_dsn
    from projections.connection import connect
    from projections.queries import current_policy

    try:
        policy = load_policy(args.policy) if args.policy else None
    except PolicyError as exc:
        print(f"lifecert review: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        conn = connect(postgres_dsn(args.dsn, "api"))
    except psycopg2.Error as exc:
        print(f"lifecert review: cannot reach the read models: {exc}".strip(),
              file=sys.stderr)
        return EXIT_FAILED
    try:
        if policy is None:  # the policy the hub runs, never a year written here
            current = current_policy(conn)
            if current is None:
                print("lifecert review: the read models hold no campaign yet: name its "
                      "policy (--policy)", file=sys.stderr)
                return EXIT_USAGE
            try:
                policy = load_policy(current)
            except PolicyError as exc:
                print(f"lifecert review: the read models' policy: {exc}; name one "
                      f"(--policy)", file=sys.stderr)
                return EXIT_USAGE
        if args.action == "list":
            return _list(conn, policy, args)
        return _review(conn, policy, args)
    except psycopg2.Error as exc:
        print(f"lifecert review: the read models: {exc}".strip(), file=sys.stderr)
        return EXIT_FAILED
    finally:
        conn.close()


def _list(conn: Any, policy: Policy, args: argparse.Namespace) -> int:
    from projections.consular import list_cases

    today = args.as_of or local_date(datetime.now(UTC))
    views = list_cases(conn, policy, today, args.state, args.limit)
    if args.json:
        for view in views:
            print(json.dumps(view.as_json(), ensure_ascii=False))
        return 0
    print(f"{len(views)} {args.state} consular case(s), as of {today.isoformat()}")
    for v in views:
        c = v.case
        missing = ", ".join(c.missing_checks()) or "-"
        due = v.due_on.isoformat() if v.due_on else "(outside the policy's calendar)"
        state = c.decision or ("OVERDUE" if v.overdue else "open")
        print(f"  {c.case_id:<20} {c.retiree_id:<14} {c.mission_kind:<17} {c.mission_id:<22} "
              f"received {local_date(c.received_at).isoformat()} due {due} {state:<8} "
              f"missing: {missing}")
    return 0


def _review(conn: Any, policy: Policy, args: argparse.Namespace) -> int:
    from projections.consular import load_case

    case = load_case(conn, args.case_id)
    if case is None:
        print(f"lifecert review: no consular case {args.case_id!r} in the read model (is "
              f"`lifecert projections run` up to date?)", file=sys.stderr)
        return EXIT_REFUSED
    decision = consular.APPROVED if args.action == "approve" else consular.REJECTED
    at = args.at or datetime.now(UTC)
    try:
        events = consular.review(case, decision, args.reason, args.reviewer, at, policy)
    except (consular.ReviewRefused, WorkingCalendarError) as exc:
        print(f"lifecert review: refused: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    topics = layout(args.prefix)
    try:
        producer = broker_clients.producer(kafka_bootstrap(args.bootstrap))
        try:
            for event in events:
                producer.send(topics.for_type(event["type"]).name,
                              key=event["retiree_id"].encode(), value=codec.encode(event))
            producer.flush(timeout=30)
        finally:
            producer.close(timeout=10)
    except (broker_errors.KafkaUnavailable, KafkaError) as exc:
        print(f"lifecert review: publishing the review failed ({exc}); nothing is lost by "
              f"running the same command again: the review's events have fixed ids",
              file=sys.stderr)
        return EXIT_FAILED
    review = events[0]
    late = " (after its due day)" if review["overdue"] else ""
    print(f"case {case.case_id} {decision.lower()} by {args.reviewer} at "
          f"{at.isoformat()}{late}; due {review['due_on'].isoformat()}; "
          f"published {', '.join(e['type'] for e in events)}")
    return 0
