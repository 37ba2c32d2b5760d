"""``lifecert bench replay``: replay speed as a ratio of the machine's raw JSON parse rate.

The benchmark generates a campaign (cached by size and seed), measures the rate of only
parsing its lines with ``json.loads``, then replays it in a child process and measures
its rate and peak memory (the child's maximum RSS). Both rates are events (lines) per
second on this machine, in one run, so the ratio travels between machines.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

TARGET_RATIO = 1 / 3
TARGET_PEAK_MIB = 2048


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="shipped benchmarks")
    benches = parser.add_subparsers(dest="bench", required=True, metavar="BENCH")
    replay = benches.add_parser(
        "replay",
        help="replay speed and peak memory against the raw JSON parse rate",
        description=__doc__,
    )
    replay.add_argument("--retirees", type=int, default=1_000_000)
    replay.add_argument("--seed", type=int, default=2017)
    replay.add_argument(
        "--work-dir", type=Path, default=Path("data/bench"),
        help="where the generated campaign and replay output are kept (default data/bench)",
    )
    replay.add_argument("--json", action="store_true", help="print the figures as JSON")
    replay.set_defaults(func=run_replay_bench)


def raw_parse_rate(path: Path) -> tuple[int, float]:
    """Lines and lines/s of only reading and ``json.loads``-ing every line."""
    loads = json.loads
    started = time.perf_counter()
    count = 0
    with path.open("rb") as fh:
        for line in fh:
            loads(line)
            count += 1
    return count, count / (time.perf_counter() - started)


def timed_child(argv: list[str]) -> tuple[float, int]:
    """Run ``argv``; return its wall time in seconds and its peak RSS in bytes."""
    started = time.perf_counter()
    child = subprocess.Popen(argv)
    _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"lifecert bench: {' '.join(argv)} exited with {child.returncode}")
    return elapsed, usage.ru_maxrss * 1024  # ru_maxrss is in KiB on Linux


def run_replay_bench(args: argparse.Namespace) -> int:
    work = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    events = work / f"campaign-{args.retirees}-{args.seed}.jsonl"
    lifecert = [sys.executable, "-m", "lifecert.cli"]
    if not events.exists():
        print(f"generating {args.retirees:,} retirees into {events} ...", file=sys.stderr)
        partial = events.with_suffix(".partial")
        gen_time, _ = timed_child(
            [*lifecert, "generate", "--retirees", str(args.retirees),
             "--seed", str(args.seed), "--out", str(partial)]
        )
        partial.rename(events)
        print(f"generated in {gen_time:.1f} s", file=sys.stderr)
    print("measuring the raw parse rate ...", file=sys.stderr)
    lines, raw_before = raw_parse_rate(events)
    print("replaying ...", file=sys.stderr)
    replay_time, peak = timed_child(
        [*lifecert, "replay", str(events), "--policy", "foshan-2017", "--until", "2017-12-31",
         "--out", str(work / "replay-out"), "--quiet"]
    )
    _, raw_after = raw_parse_rate(events)
    raw = max(raw_before, raw_after)
    rate = lines / replay_time
    ratio = rate / raw
    peak_mib = peak / 2**20
    figures = {
        "retirees": args.retirees,
        "events": lines,
        "file_mib": round(events.stat().st_size / 2**20, 1),
        "raw_parse_events_per_s": round(raw),
        "replay_events_per_s": round(rate),
        "replay_seconds": round(replay_time, 2),
        "ratio": round(ratio, 3),
        "ratio_target": round(TARGET_RATIO, 3),
        "peak_rss_mib": round(peak_mib, 1),
        "peak_rss_target_mib": TARGET_PEAK_MIB,
        "meets_targets": ratio >= TARGET_RATIO and peak_mib < TARGET_PEAK_MIB,
    }
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print(
            f"\nreplay benchmark: {args.retirees:,} retirees, {lines:,} events "
            f"({figures['file_mib']} MiB)\n"
            f"  raw JSON parse    {raw:>12,.0f} events/s\n"
            f"  lifecert replay   {rate:>12,.0f} events/s  ({replay_time:.1f} s)\n"
            f"  ratio             {ratio:>12.3f}  (target >= {TARGET_RATIO:.3f})\n"
            f"  peak memory       {peak_mib:>12,.0f} MiB (target < {TARGET_PEAK_MIB} MiB)\n"
            f"  {'meets both targets' if figures['meets_targets'] else 'MISSES a target'}"
        )
    return 0
