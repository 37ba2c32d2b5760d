"""``lifecert assistance request``: Foshan asks partners to certify its retirees living on
their side (issue 13; lifecert.domain.assistance_requests decides whom).

::

    lifecert assistance request [--at TIME] [--policy NAME] [--dry-run] [--dsn DSN]

Reads the statuses and the assistance cases from the read models (``lifecert projections
run`` keeps them), decides the requests due on ``--at``'s day (Asia/Shanghai; default:
now) from the policy's ``[assistance]`` table, and publishes each as an
AssistanceRequested (OUTBOUND) on the assistance topic, where the partner's connector
(``macau-ssf-results`` for MACAU-SSF) posts it. A retiree whose case the read model shows
is not asked again; a request published twice (a second run before the read model caught
up) has the same event id, so the case and the partner take it once. Run it once a
working day (cron) from the policy's ``ask_on`` day.

Exit codes: 0 done (also when nobody is due); 1 the broker or the database failed; 2 bad
arguments or no campaign in the read models.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any

import psycopg2
from kafka.errors import KafkaError

from lifecert.commands.args import EXIT_FAILED, EXIT_USAGE, aware_time
from lifecert.commands.topics import add_broker_arguments
from lifecert.domain.assistance_requests import request_event, requests_due
from lifecert.domain.policy import Policy, PolicyError, load_policy
from lifecert.domain.working_days import WorkingCalendarError
from lifecert.endpoints import kafka_bootstrap
from lifecert.events import codec
from lifecert.events.time import local_date
from lifecert.pipeline import broker_clients, broker_errors
from lifecert.pipeline.topics import ASSISTANCE_RESULTS, layout


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "assistance", help="Foshan's assistance requests to partners (who certifies whom)",
        description="Foshan's side of the assistance cases with partners.")
    actions = parser.add_subparsers(dest="assistance_action", required=True,
                                    metavar="ACTION")
    req = actions.add_parser(
        "request", help="ask partners about retirees on their side who have not certified",
        description=__doc__.split("\n\n", 2)[2] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    req.add_argument("--at", type=aware_time, help="time of the requests, ISO 8601 with offset "
                                               "(default: now)")
    req.add_argument("--policy", help="policy name or .toml path (default: the one the hub "
                                      "runs, of the statuses in the read models)")
    req.add_argument("--dsn", help="PostgreSQL DSN of the read models (default: "
                                   "$LIFECERT_POSTGRES_DSN, else the local stack's)")
    req.add_argument("--dry-run", action="store_true",
                     help="show the requests due, publish nothing")
    add_broker_arguments(req)
    parser.set_defaults(func=run)


def _fail(message: str, code: int) -> int:
    print(f"lifecert assistance: {message}", file=sys.stderr)
    return code


def run(args: argparse.Namespace) -> int:
    from lifecert.endpoints import postgres_dsn
    from projections.connection import connect
    from projections.queries import assistance_cases, current_policy, standings

    try:
        conn = connect(postgres_dsn(args.dsn, "reader"))
    except psycopg2.Error as exc:
        return _fail(f"cannot reach the read models: {exc}".strip(), EXIT_FAILED)
    try:
        name = args.policy or current_policy(conn)
        if name is None:
            return _fail("the read models hold no campaign yet: name its policy (--policy)",
                         EXIT_USAGE)
        try:
            policy = load_policy(name)
        except PolicyError as exc:
            return _fail(str(exc), EXIT_USAGE)
        retirees = standings(conn, policy.name)
        opened = {case.key for case in assistance_cases(conn)}
    except psycopg2.Error as exc:
        return _fail(f"the read models: {exc}".strip(), EXIT_FAILED)
    finally:
        conn.close()
    at = args.at or datetime.now(UTC)
    return _publish(args, policy, at, requests_due(retirees, policy, local_date(at), opened))


def _publish(args: argparse.Namespace, policy: Policy, at: datetime, due: list[Any]) -> int:
    try:
        events = [request_event(request, policy, at) for request in due]
    except WorkingCalendarError as exc:
        return _fail(f"policy {policy.name}: {exc}", EXIT_USAGE)
    if args.dry_run or not events:
        for event in events:
            print(f"would ask {event['partner']} about {event['retiree_id']} "
                  f"(case {event['case_id']}, due {event['due_on'].isoformat()})")
        why = (" (dry run: none published)" if events else
               f" (policy {policy.name} has no [assistance] table: nobody is asked)"
               if policy.assistance_ask_on is None else
               f" (asking starts on {policy.assistance_ask_on.isoformat()})"
               if local_date(at) < policy.assistance_ask_on else "")
        print(f"{len(events)} request(s) due on {local_date(at).isoformat()}{why}")
        return 0
    topic = layout(args.prefix)[ASSISTANCE_RESULTS].name
    try:
        producer = broker_clients.producer(kafka_bootstrap(args.bootstrap))
        try:
            for event in events:
                producer.send(topic, key=event["retiree_id"].encode(),
                              value=codec.encode(event))
            producer.flush(timeout=30)
        finally:
            producer.close(timeout=10)
    except (broker_errors.KafkaUnavailable, KafkaError) as exc:
        return _fail(f"publishing the requests failed ({exc}); running the same command "
                     f"again is safe: each request has a fixed id", EXIT_FAILED)
    by_partner: dict[str, int] = {}
    for event in events:
        by_partner[event["partner"]] = by_partner.get(event["partner"], 0) + 1
    print(f"published {len(events)} request(s) on {topic}: "
          + ", ".join(f"{p} {n}" for p, n in sorted(by_partner.items())))
    return 0
