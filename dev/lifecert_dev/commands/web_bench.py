"""``lifecert web bench [--rate 200 --seconds 10]``: status JSON latency of ``lifecert web
serve`` at a fixed request rate (lifecert_dev/bench/web.py). A plug-in of ``lifecert web``
(entry-point group ``lifecert.commands.web``)."""

from __future__ import annotations

import argparse

from lifecert_dev.bench.web import add_bench_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    bench = subparsers.add_parser("bench", help="status JSON latency at a fixed request rate")
    add_bench_arguments(bench)
    bench.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    from lifecert_dev.bench.web import run

    return run(args)
