"""``lifecert bench replay``: replay speed as a ratio of the machine's raw JSON parse rate.

The benchmark generates a campaign (cached by size and seed), measures the rate of only
parsing its lines with ``json.loads``, then replays it in a child process and measures
its rate and peak memory (the child's maximum RSS). Both rates are events (lines) per
second on this machine, in one run, so the ratio travels between machines.

Rates are given per wall-clock second and per CPU second. On a quiet machine the two
agree; on a shared one (CI, a laptop compiling something) wall-clock rates drift with the
neighbours' load, so the targets are judged on CPU time, which counts only the work the
process itself did.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

TARGET_RATIO = 1 / 3
TARGET_PEAK_MIB = 2048


@dataclass(frozen=True)
class Timing:
    wall_s: float
    cpu_s: float
    peak_rss_bytes: int = 0


def raw_parse(path: Path) -> tuple[int, Timing]:
    """Lines, and the time of only reading and ``json.loads``-ing every line."""
    loads = json.loads
    wall, cpu = time.perf_counter(), time.process_time()
    count = 0
    with path.open("rb") as fh:
        for line in fh:
            loads(line)
            count += 1
    return count, Timing(time.perf_counter() - wall, time.process_time() - cpu)


def timed_child(argv: list[str]) -> Timing:
    """Run ``argv``; its wall time, CPU time (user + system) and peak RSS."""
    started = time.perf_counter()
    child = subprocess.Popen(argv)
    _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"lifecert bench: {' '.join(argv)} exited with {code}")
    # ru_maxrss is in KiB on Linux.
    return Timing(elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024)


def campaign_file(work: Path, retirees: int, seed: int) -> Path:
    """The generated campaign of that size and seed in ``work`` (made once, then kept)."""
    work.mkdir(parents=True, exist_ok=True)
    events = work / f"campaign-{retirees}-{seed}.jsonl"
    if not events.exists():
        print(f"generating {retirees:,} retirees into {events} ...", file=sys.stderr)
        partial = events.with_suffix(".partial")
        generated = timed_child(
            [sys.executable, "-m", "lifecert.cli", "generate", "--retirees", str(retirees),
             "--seed", str(seed), "--out", str(partial)]
        )
        partial.rename(events)
        print(f"generated in {generated.wall_s:.1f} s", file=sys.stderr)
    return events


def run_replay_bench(args: argparse.Namespace) -> int:
    work = args.work_dir
    events = campaign_file(work, args.retirees, args.seed)
    lifecert = [sys.executable, "-m", "lifecert.cli"]
    print("measuring the raw parse rate (best of two) ...", file=sys.stderr)
    lines, raw_first = raw_parse(events)
    print("replaying ...", file=sys.stderr)
    replay = timed_child(
        [*lifecert, "replay", str(events), "--policy", "foshan-2017", "--until", "2017-12-31",
         "--out", str(work / "replay-out"), "--quiet"]
    )
    _, raw_second = raw_parse(events)
    raw_wall = lines / min(raw_first.wall_s, raw_second.wall_s)
    raw_cpu = lines / min(raw_first.cpu_s, raw_second.cpu_s)
    rate_wall, rate_cpu = lines / replay.wall_s, lines / replay.cpu_s
    ratio_wall, ratio_cpu = rate_wall / raw_wall, rate_cpu / raw_cpu
    peak_mib = replay.peak_rss_bytes / 2**20
    meets = ratio_cpu >= TARGET_RATIO and peak_mib < TARGET_PEAK_MIB
    figures = {
        "retirees": args.retirees,
        "events": lines,
        "file_mib": round(events.stat().st_size / 2**20, 1),
        "raw_parse_events_per_s": {"wall": round(raw_wall), "cpu": round(raw_cpu)},
        "replay_events_per_s": {"wall": round(rate_wall), "cpu": round(rate_cpu)},
        "replay_seconds": {"wall": round(replay.wall_s, 2), "cpu": round(replay.cpu_s, 2)},
        "ratio": {"wall": round(ratio_wall, 3), "cpu": round(ratio_cpu, 3)},
        "ratio_target": round(TARGET_RATIO, 3),
        "peak_rss_mib": round(peak_mib, 1),
        "peak_rss_target_mib": TARGET_PEAK_MIB,
        "meets_targets": meets,
    }
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print(
            f"\nreplay benchmark: {args.retirees:,} retirees, {lines:,} events "
            f"({figures['file_mib']} MiB)\n"
            f"  {'':<18}{'per wall second':>18}{'per CPU second':>18}\n"
            f"  {'raw JSON parse':<18}{raw_wall:>18,.0f}{raw_cpu:>18,.0f}  events/s\n"
            f"  {'lifecert replay':<18}{rate_wall:>18,.0f}{rate_cpu:>18,.0f}  events/s\n"
            f"  {'ratio':<18}{ratio_wall:>18.3f}{ratio_cpu:>18.3f}  "
            f"(target >= {TARGET_RATIO:.3f}, judged per CPU second)\n"
            f"  replay took {replay.wall_s:.1f} s wall, {replay.cpu_s:.1f} s CPU\n"
            f"  peak memory {peak_mib:,.0f} MiB (target < {TARGET_PEAK_MIB} MiB)\n"
            f"  {'meets both targets' if meets else 'MISSES a target'}"
        )
    return 0
