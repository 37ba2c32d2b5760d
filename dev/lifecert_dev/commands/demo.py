"""``lifecert demo``: the README's main job.

Live (the default): brings the local stack up, generates a campaign and plays it through
the simulated partner systems, each read by its connector: the pension master's database,
the Guangdong provincial feed, the ministry's and Hong Kong's batch files, Macau's SSF,
the mailroom's register of paper forms, the employers' files and the death registers'
extracts, the home-visit teams' results files, the China Consular app's cases (approved
by staff through the API), and the gRPC API's clients (counters, other provinces' offices
and assisting agencies, staff's revocations, retractions and the families' death reports)
(lifecert_dev.partners.systems). Events no door carries yet (the face app's and the
counters' face verifications) are published directly, and counted: the demo prints a
table of doors and the events each brought, then ``published directly: N``.
SSF's beneficiaries living in Foshan and the other Guangdong cities' retirees living in
Foshan are asked about through SSF's door and the provincial feed, certified at the
counters, answered through the API (Form3Result) and posted back by the partners' results
connectors. On the policy's ask_on day Foshan asks the partners about its own retirees
living on their side who have not certified (``lifecert assistance request``); the
province's offices and SSF answer with the retirees' certifications (or not found).
The stream worker and the PostgreSQL projections decide and project until every event is
done; the payment-system connector applies the instructions to the
payment ledger, and the Guangdong results connector posts Foshan's assistance results to
the province. It prints the campaign summary and the assistance cases from PostgreSQL,
reconciles the ledger with
the instructions sent, and checks the live result against an offline replay of the same
file.

``--direct`` publishes the generated file to Kafka itself, with its clock ticks, instead of
going through the partners; ``--offline`` only generates and replays.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from lifecert.domain.policy import load_policy
from lifecert.progress import Progress
from lifecert.replay import replay_file
from lifecert.summary import CampaignCounters, InstructionTotals, render
from lifecert_dev.generate import write_campaign_file

if TYPE_CHECKING:
    import subprocess
    from collections.abc import Iterable

    from lifecert.domain.assistance import Case
    from lifecert_dev.live import LiveRun

POLICY = "foshan-2017"
UNTIL = date(2017, 12, 31)


DEFAULT_RETIREES = 1_000
# The Kafka principal of its clients (lifecert.cli): it sets up topics and ACLs.
KAFKA_COMPONENT = "admin"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="run a generated campaign through the live pipeline and summarise it",
        description=__doc__,
    )
    # Every face certification is a real check of the API's face engine (~0.4 s of a core,
    # one at a time: docs/face.md, "The demo's face doors"): 1,000 retirees keep the demo
    # near 6 minutes on a quiet two-core machine.
    parser.add_argument("--retirees", type=int, default=DEFAULT_RETIREES,
                        help=f"size of the generated campaign (default {DEFAULT_RETIREES:,})")
    parser.add_argument("--seed", type=int, default=2017)
    parser.add_argument("--work-dir", type=Path, default=Path("data/demo"))
    parser.add_argument("--offline", action="store_true",
                        help="no Kafka or PostgreSQL: generate and replay only")
    parser.add_argument("--direct", dest="partners", action="store_false",
                        help="publish the generated file to Kafka directly instead of "
                             "playing it through the partner systems and their connectors")
    parser.add_argument("--timeout", type=float, default=1800,
                        help="seconds to wait for the pipeline to catch up (default 1800)")
    parser.set_defaults(func=run)


def step(text: str) -> None:
    print(f"\n== {text}", file=sys.stderr)


def generate(args: argparse.Namespace, events: Path) -> None:
    step(f"generating a campaign of {args.retirees:,} retirees -> {events}")
    with Progress(args.retirees, "generate", unit="retirees") as progress:
        write_campaign_file(events, args.retirees, args.seed, progress=progress.advance)


def replay(events: Path, out: Path) -> CampaignCounters:
    progress = Progress(events.stat().st_size, "replay", unit="bytes")
    totals = InstructionTotals()
    campaign, _ = replay_file(
        events, load_policy(POLICY), out, until=UNTIL, dead_letters=out / "dead-letters.jsonl",
        on_line=progress.advance, on_instruction=totals,
    )
    progress.close()
    return CampaignCounters.from_states(POLICY, campaign.retirees.values(), totals)


def run(args: argparse.Namespace) -> int:
    work: Path = args.work_dir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    events = work / "events.jsonl"
    if args.offline:
        generate(args, events)
        step(f"replaying it under policy {POLICY} until {UNTIL}")
        counters = replay(events, work / "replay")
        print(f"\nlifecert demo (offline): campaign 2017 of {args.retirees:,} retirees\n")
        print(render(counters))
        return 0
    return run_live(args, work, events)


def run_live(args: argparse.Namespace, work: Path, events: Path) -> int:
    from lifecert_dev import live
    from lifecert_dev.stack import StackConfig, up

    step("starting the local stack (Kafka broker, PostgreSQL)")
    stack = up(StackConfig.from_env())
    print(f"kafka {stack.kafka_bootstrap}   postgres {stack.postgres_dsn}", file=sys.stderr)
    run = live.LiveRun(stack.kafka_bootstrap, stack.postgres_dsn, "demo.", "lifecert_demo",
                       work)
    step("fresh topics (prefix demo.) and database lifecert_demo")
    live.prepare(run)
    generate(args, events)

    step("starting the stream worker and the projections")
    logs = work / "logs"
    ledger: str | None = None
    ledger_equal = False
    absorbed: list[str] = []  # certifications the API did not publish (counters.py)
    with (
        live.running(run.worker_argv(), logs / "worker.log") as worker,
        live.running(run.projections_argv(), logs / "projections.log") as projections,
    ):
        started = time.monotonic()
        children = [worker, projections]
        if not args.partners:
            step("publishing it to Kafka, with the clock ticks of the policy")
            progress = Progress(events.stat().st_size, "publish", unit="bytes")
            stats = live.publish(run, events, load_policy(POLICY), UNTIL,
                                 on_bytes=progress.advance)
            progress.close()
            print(stats, file=sys.stderr)
            idle = _wait_idle(run, args.timeout, children, started)
        else:
            idle, ledger, ledger_equal = _through_partners(args, run, work, events, children,
                                                           absorbed, started)
    if not idle:
        print(f"lifecert demo: the pipeline did not catch up; see {logs}/", file=sys.stderr)
        return 1
    print(f"  caught up in {time.monotonic() - started:.0f} s", file=sys.stderr)

    from projections.connection import connect
    from projections.queries import assistance_cases, campaign_counters, export

    conn = connect(run.dsn)
    try:
        counters = campaign_counters(conn, POLICY)
        cases = assistance_cases(conn)
        export(conn, work / "live", POLICY)
    finally:
        conn.close()

    step("checking the live result against an offline replay of the same file")
    replay(events, work / "replay")
    same = _same_lines(work / "live", work / "replay", through_doors=args.partners,
                       absorbed=absorbed)
    route = "Kafka" if not args.partners else "the partner systems' connectors, Kafka"
    print(f"\nlifecert demo: campaign 2017 of {args.retirees:,} retirees through {route}, "
          f"the stream worker and PostgreSQL\n")
    print(render(counters))
    print(f"\n{render_cases(cases)}")
    if ledger is not None:
        print(f"\n{ledger}")
    print(f"\nLive instructions and statuses {'==' if same else '!='} offline replay "
          f"({work}/live vs {work}/replay)")
    print(f"\n{web_pages(stack.postgres_dsn_for('owner', run.database), run.database)}")
    return 0 if same and (not args.partners or ledger_equal) else 1


def web_pages(owner_dsn: str, database: str, pki_dir: Path | None = None) -> str:
    """The demo's last lines: the URLs of the status page and the dashboard, the staff
    login and retirees to try (lifecert_dev.web_demo); or why the pages cannot be had,
    which does not fail the demo (its campaign is done and checked)."""
    import psycopg2

    try:
        from lifecert_dev.web_demo import prepare

        return prepare(database, owner_dsn=owner_dsn, pki_dir=pki_dir).describe()
    except ModuleNotFoundError as exc:
        return (f"Web pages: not available, the Python package {exc.name!r} is missing "
                "(lifecert's 'web' extra: make setup installs it)")
    except (psycopg2.Error, OSError) as exc:
        return f"Web pages: not prepared: {str(exc).strip()}"


def render_cases(cases: Iterable[Case]) -> str:
    """The assistance cases by partner and direction (in: the partner asks Foshan; out:
    Foshan asks the partner), as of the end of the campaign."""
    from lifecert.domain.assistance import summary

    rows = summary(cases, UNTIL)
    lines = [f"Assistance cases on {UNTIL}:",
             f"  {'partner':<14} {'':<3} {'cases':>7} {'answered':>9} {'open':>6} {'overdue':>8}"]
    for row in rows:
        way = "in" if row.direction == "INBOUND" else "out"
        lines.append(f"  {row.partner:<14} {way:<3} {row.requested:>7,} {row.answered:>9,} "
                     f"{row.open:>6,} {row.overdue:>8,}")
    if not rows:
        lines.append("  none")
    return "\n".join(lines)


def _wait_idle(run: LiveRun, timeout: float, children: list[subprocess.Popen[bytes]],
               started: float) -> bool:
    from lifecert_dev import live

    last = [0.0]

    def show(worker_behind: int, projections_behind: int) -> None:
        if time.monotonic() - last[0] >= 5:
            last[0] = time.monotonic()
            state = ("starting" if worker_behind < 0 else
                     f"worker {worker_behind:,} events behind, "
                     f"projections {projections_behind:,} records behind")
            print(f"  {time.monotonic() - started:5.0f} s  {state}", file=sys.stderr)

    return live.wait_until_idle(run, timeout, children, show)


def _through_partners(
    args: argparse.Namespace, run: LiveRun, work: Path, events: Path,
    children: list[subprocess.Popen[bytes]], absorbed: list[str], started: float,
) -> tuple[bool, str | None, bool]:
    """Play the campaign through the partners; (caught up, ledger report, ledger equal);
    ``absorbed`` gets the event ids of the file the API published nothing for."""
    from connectors.payment_ledger import reconcile
    from lifecert.keystore.postgres import KEYS_DSN_ENV, migrate_as
    from lifecert.pipeline import broker_clients
    from lifecert.pipeline.topics import PAYMENT_INSTRUCTIONS
    from lifecert_dev.partners.systems import (
        Partners,
        PartnersFailed,
        play,
        read_log,
        render_doors,
        wait_for_sink,
    )

    step("starting the partner systems' simulators and their connectors")
    # The connectors seal names with the run's key store, as `publish` does (--direct).
    migrate_as(run.dsn)
    os.environ.setdefault(KEYS_DSN_ENV, run.dsn_for("keystore"))
    with Partners(run.bootstrap, run.topics, work,
                  database=(run.admin_dsn, run.database, run.dsn)) as partners:
        print("  connectors: " + ", ".join(partners.processes), file=sys.stderr)
        step("playing the campaign through the partner systems")

        def shown(n: int, total: int, stats: object) -> None:
            if n == total or n % 5 == 0:
                print(f"  window {n}/{total}: {getattr(stats, 'events', 0):,} events "
                      f"published ({time.monotonic() - started:.0f} s)", file=sys.stderr)

        def settle() -> None:
            step("asking the partners on the policy's ask_on day (lifecert assistance "
                 "request), once the pipeline caught up")
            if not _wait_idle(run, args.timeout, children, started):
                raise PartnersFailed("the pipeline did not catch up before asking")

        try:
            stats = play(partners, read_log(events), load_policy(POLICY), until=UNTIL,
                         seed=args.seed, on_window=shown, settle=settle)
            print(f"  {stats.describe()}", file=sys.stderr)
            print(f"  {partners.face_summary()}", file=sys.stderr)
            absorbed.extend(stats.absorbed)
            (work / "absorbed.txt").write_text("".join(f"{i}\n" for i in absorbed))
            step("waiting for the worker, the projections and the payment system")
            if not _wait_idle(run, args.timeout, children, started):
                return False, None, False
            consumer = broker_clients.consumer(run.bootstrap)
            try:
                sent = sum(broker_clients.end_offsets(consumer,
                                          run.topics[PAYMENT_INSTRUCTIONS].name).values())
            finally:
                consumer.close()
            wait_for_sink(partners, "payment-ledger", sent, args.timeout)
            wait_for_sink(partners, "guangdong-results", stats.gd_answers,
                          args.timeout)
            wait_for_sink(partners, "macau-ssf-results", stats.ssf_answers, args.timeout)
            # the projections fold the cases' last events (the results just sent)
            if not _wait_idle(run, args.timeout, children, started):
                return False, None, False
        except PartnersFailed as exc:
            print(f"lifecert demo: {exc}", file=sys.stderr)
            return False, None, False
        report = reconcile.reconcile(run.bootstrap, run.topics, partners.ledger_dsn)
        text = (render_doors(stats)
                + "\n\nPayment system ledger, reconciled with the instructions sent:\n"
                + reconcile.render(report, limit=10))
        return True, text, report.equal


def _same_lines(a: Path, b: Path, *, through_doors: bool, absorbed: list[str]) -> bool:
    """Same instructions, verdicts and statuses, order aside (partitions decide
    concurrently); through the doors, verdicts without what a door assigns
    (:func:`lifecert_dev.live.comparable_verdict`)."""
    from lifecert_dev.live import comparable_lines

    return (comparable_lines(a, through_doors=through_doors)
            == comparable_lines(b, through_doors=through_doors, absorbed=absorbed))
