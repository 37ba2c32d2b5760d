"""``lifecert report``: the campaign report as HTML and PDF.

    lifecert report --out report/                         # from the PostgreSQL read models
    lifecert report --out report/ --as-of 2017-07-10      # the 10 July summary
    lifecert report --out report/ --replay replay-out/    # offline, from `lifecert replay`

Writes ``report.html`` (self-contained: inline CSS and SVG, nothing fetched) and
``report.pdf`` (needs lifecert's ``report`` extra, ReportLab; ``--no-pdf`` skips it).
Exit codes: 0 written; 1 the source cannot be read; 2 bad arguments.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, date, datetime
from pathlib import Path

from lifecert.commands.args import EXIT_FAILED, EXIT_USAGE, iso_date
from lifecert.domain.policy import Policy, PolicyError, load_policy
from lifecert.events.time import local_date
from lifecert.report.document import build
from lifecert.report.figures import (
    DeathGroup,
    Figures,
    InstructionGroup,
    RetireeGroup,
    compute,
)
from lifecert.report.html import render
from lifecert.report.sources import (
    SourceError,
    replay_deaths,
    replay_instructions,
    replay_retirees,
)

PDF_EXTRA_HINT = ("the PDF needs the Python package 'reportlab', which comes with lifecert's "
                  "'report' extra: pip install 'lifecert[report]' (or pass --no-pdf)")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report", help="the campaign report as HTML and PDF",
        description=(
            "Write report.html and report.pdf into --out: certification by district and "
            "channel, face versus manual, on time versus late, suspensions, releases and "
            "back-pay, deaths, overpayments and fraud alerts, with charts and findings. "
            "From the PostgreSQL read models, or from a `lifecert replay --out` folder."),
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--as-of", type=iso_date, metavar="DATE",
                        help="count up to the end of this day, Asia/Shanghai (YYYY-MM-DD)")
    parser.add_argument("--replay", type=Path, metavar="DIR",
                        help="read this `lifecert replay --out` folder instead of PostgreSQL")
    parser.add_argument("--policy", help="policy name or .toml path (default: the read "
                        "models' only policy; foshan-2017 with --replay)")
    parser.add_argument("--dsn", help="PostgreSQL DSN (default: $LIFECERT_POSTGRES_DSN, "
                        "else the local stack)")
    parser.add_argument("--no-pdf", action="store_true", help="write the HTML only")
    parser.add_argument("--font", type=Path, metavar="FILE",
                        help="embed this TrueType font (.ttf/.ttc with Chinese glyphs) in the "
                        "PDF instead of naming the reader's STSong-Light")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        if args.replay is not None:
            policy = load_policy(args.policy or "foshan-2017")
            if not args.replay.is_dir():
                return _fail(f"no such folder: {args.replay}", EXIT_USAGE)
            retirees, instructions, deaths = (replay_retirees(args.replay),
                                              replay_instructions(args.replay),
                                              replay_deaths(args.replay))
            source = f"lifecert replay ({args.replay.name})"
        else:
            loaded = _from_database(args)
            if isinstance(loaded, int):
                return loaded
            policy, retirees, instructions, deaths = loaded
            source = "PostgreSQL read models"
    except PolicyError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except SourceError as exc:
        return _fail(str(exc), EXIT_FAILED)
    figures = compute(policy.name, policy.window_opens, policy.deadline, retirees,
                      instructions, args.as_of, deaths)
    return _write(figures, args.out, source, False if args.no_pdf else args.font or True)


def _from_database(args: argparse.Namespace
                   ) -> int | tuple[Policy, list[RetireeGroup], list[InstructionGroup],
                                    list[DeathGroup]]:
    try:
        import psycopg2
        import psycopg2.errors

        from lifecert.endpoints import postgres_dsn
        from projections.connection import connect
        from projections.queries import policies, report_rows
    except ModuleNotFoundError as exc:
        return _fail(f"reading PostgreSQL needs {exc.name!r}, which comes with lifecert's "
                     "'live' extra: pip install 'lifecert[live]' (or pass --replay DIR)",
                     EXIT_FAILED)
    from lifecert.report.sources import database_rows

    try:
        conn = connect(postgres_dsn(args.dsn, "reader"))
    except psycopg2.Error as exc:
        return _fail(f"cannot connect to PostgreSQL: {str(exc).strip()}", EXIT_FAILED)
    try:
        name = args.policy
        if name is None:
            found = policies(conn)
            if len(found) != 1:
                return _fail("the read models hold " + (
                    f"several policies ({', '.join(found)}): choose one with --policy"
                    if found else "no retiree yet: nothing to report"), EXIT_FAILED)
            name = found[0]
        policy = load_policy(name)
        rows = report_rows(conn, policy.name)
    except psycopg2.errors.UndefinedTable:
        return _fail("this database has no read models: run `lifecert projections migrate` "
                     "and the projections (`lifecert projections run`) first, or pass --dsn",
                     EXIT_FAILED)
    except psycopg2.Error as exc:
        return _fail(f"reading the read models: {str(exc).strip()}", EXIT_FAILED)
    finally:
        conn.close()
    return (policy, *database_rows(rows.retirees, rows.instructions, rows.deaths))


def _write(figures: Figures, out: Path, source: str, pdf: Path | bool) -> int:
    """``pdf``: False for none, True with the built-in font, or a font file to embed."""
    doc = build(figures, _today(), source)
    out.mkdir(parents=True, exist_ok=True)
    html_path = out / "report.html"
    html_path.write_text(render(doc), encoding="utf-8")
    written = [html_path]
    if pdf is not False:
        try:
            from lifecert.report.pdf import FontError, write
        except ModuleNotFoundError as exc:
            if exc.name is None or not exc.name.startswith("reportlab"):
                raise
            return _fail(f"{html_path} written; {PDF_EXTRA_HINT}", EXIT_FAILED)
        try:
            write(doc, out / "report.pdf", None if pdf is True else pdf)
        except FontError as exc:
            return _fail(f"{html_path} written; {exc}", EXIT_USAGE)
        written.append(out / "report.pdf")
    print(f"lifecert report: {figures.certified:,} of {figures.in_scope:,} certified; "
          f"written {', '.join(str(p) for p in written)}", file=sys.stderr)
    return 0


def _today() -> date:
    return local_date(datetime.now(UTC))


def _fail(message: str, code: int) -> int:
    print(f"lifecert report: {message}", file=sys.stderr)
    return code
