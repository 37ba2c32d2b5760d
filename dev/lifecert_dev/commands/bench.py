"""``lifecert bench replay | pipeline | face | deaths``: the shipped benchmarks
(lifecert_dev/bench/), a command that lifecert-dev adds to ``lifecert``."""

from __future__ import annotations

import argparse
from pathlib import Path

from lifecert_dev.bench import replay as replay_bench

# The Kafka principal of its clients (lifecert.cli): it sets up topics and ACLs.
KAFKA_COMPONENT = "admin"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="shipped benchmarks")
    benches = parser.add_subparsers(dest="bench", required=True, metavar="BENCH")
    replay = benches.add_parser(
        "replay",
        help="replay speed and peak memory against the raw JSON parse rate",
        description=replay_bench.__doc__,
    )
    replay.add_argument("--retirees", type=int, default=1_000_000)
    replay.add_argument("--seed", type=int, default=2017)
    replay.add_argument(
        "--work-dir", type=Path, default=Path("data/bench"),
        help="where the generated campaign and replay output are kept (default data/bench)",
    )
    replay.add_argument("--json", action="store_true", help="print the figures as JSON")
    replay.set_defaults(func=replay_bench.run_replay_bench)
    # Its options belong to lifecert_dev.bench.face: hand everything after `face` over as is.
    face = benches.add_parser(
        "face", add_help=False, prefix_chars="\0",
        help="face verification p50/p95 per five-frame request on one core "
             "(`lifecert bench face --help` for its options)",
    )
    face.add_argument("face_args", nargs="*")
    face.set_defaults(func=run_face_bench)
    from lifecert_dev.bench import pipeline as bench_pipeline

    bench_pipeline.add_parser(benches)
    from lifecert_dev.bench import deaths as bench_deaths

    bench_deaths.add_parser(benches)
    from lifecert_dev.bench import transactions as bench_transactions

    bench_transactions.add_parser(benches)


def run_face_bench(args: argparse.Namespace) -> int:
    from lifecert_dev.bench.face import main

    return main(args.face_args)


