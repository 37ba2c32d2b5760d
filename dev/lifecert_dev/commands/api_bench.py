"""``lifecert api bench [--rate 500 --seconds 10]``: status query latency of the API server
at a fixed request rate (lifecert_dev/bench/api.py). A plug-in of ``lifecert api``
(entry-point group ``lifecert.commands.api``)."""

from __future__ import annotations

import argparse

from lifecert_dev.bench.api import add_bench_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    bench = subparsers.add_parser("bench", help="status query latency at a fixed request rate")
    add_bench_arguments(bench)
    bench.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    from lifecert_dev.bench.api import run

    return run(args)
