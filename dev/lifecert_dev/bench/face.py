"""``lifecert bench face``: latency of one face verification request, on one core.

A request is :meth:`FaceEngine.verify` on five JPEG frames (640x480 by default) of a live
sequence (a synthetic 20-degree head turn made from a real photo of the enrolled person, see
:mod:`lifecert_dev.face.synth`), against a reference enrolled from another photo of him. The
process is pinned to one CPU and its BLAS/OpenMP pools to one thread before dlib and numpy
load, so the figures are per core. Target: p95 <= 0.5 s, judged on the CPU time of the
request (as ``lifecert bench replay`` does): on a shared machine the wall-clock figures also
count the neighbours' load, and both are printed, with the load average.

``--threshold-study`` instead prints the false-accept / false-reject table used to choose
the default threshold, ``--liveness-study`` the liveness margins, and ``--challenge-study``
how many still-photo attacks pass a challenge and how many genuine-like answers are refused
(docs/face.md).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Sequence

TARGET_P95_S = 0.5
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _pin_one_core(cpu: int | None) -> str:
    for var in _THREAD_VARS:
        os.environ[var] = "1"
    try:
        cpus = sorted(os.sched_getaffinity(0))
        chosen = cpus[-1] if cpu is None else cpu
        os.sched_setaffinity(0, {chosen})
        return f"cpu {chosen} (sched_setaffinity)"
    except (AttributeError, OSError):  # not Linux
        return "not pinned (no sched_setaffinity); threads limited to 1"


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    rank = q / 100 * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lifecert bench face", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("--requests", type=int, default=40, help="timed requests (default 40)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--frames", type=int, default=5, help="frames per request (default 5)")
    parser.add_argument("--width", type=int, default=640, help="frame width (default 640)")
    parser.add_argument("--height", type=int, default=480, help="frame height (default 480)")
    parser.add_argument("--cpu", type=int, help="the CPU to pin to (default: the last one)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--threshold-study", action="store_true")
    parser.add_argument("--liveness-study", action="store_true")
    parser.add_argument("--challenge-study", action="store_true",
                        help="how many still-photo attacks pass a challenge, and how many "
                        "genuine-like answers are refused (docs/face.md)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    pinned = _pin_one_core(args.cpu)

    from lifecert.face.engine import FaceEngine
    from lifecert_dev.face import calibrate, photos, synth

    if args.threshold_study:
        study = calibrate.run_study([round(0.30 + 0.05 * i, 2) for i in range(9)])
        print(calibrate.report(study))
        return 0
    if args.challenge_study:
        challenges = calibrate.challenge_study()
        print(json.dumps(challenges, default=str, indent=2) if args.json
              else calibrate.challenge_report(challenges))
        return 0
    if args.liveness_study:
        print(json.dumps(calibrate.liveness_margins(), default=str, indent=2))
        return 0

    folder = photos.ensure_photos()
    engine = FaceEngine()
    reference = engine.enroll((folder / "obama.jpg").read_bytes())
    frame = synth.fit((folder / "obama3.jpg").read_bytes(), args.width, args.height)
    degrees = [20 * (1 - abs(2 * i / max(1, args.frames - 1) - 1)) for i in range(args.frames)]
    frames = synth.head_turn(frame, degrees)
    first = engine.verify(reference, frames)
    if first.decision.value != "MATCH":
        print(
            f"bench sequence did not match: {first.decision.value} {first.reason}", file=sys.stderr
        )
        return 1
    for _ in range(args.warmup):
        engine.verify(reference, frames)
    wall: list[float] = []
    cpu: list[float] = []
    for _ in range(args.requests):
        w0, c0 = time.perf_counter(), time.process_time()
        engine.verify(reference, frames)
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    figures = {
        "requests": args.requests,
        "frames_per_request": args.frames,
        "frame_size": f"{args.width}x{args.height}",
        "frame_bytes_mean": round(statistics.mean(len(f) for f in frames)),
        "detection_width": engine.detection_width,
        "core": pinned,
        "p50_s": round(_percentile(wall, 50), 4),
        "p95_s": round(_percentile(wall, 95), 4),
        "max_s": round(max(wall), 4),
        "cpu_p50_s": round(_percentile(cpu, 50), 4),
        "cpu_p95_s": round(_percentile(cpu, 95), 4),
        "target_p95_s": TARGET_P95_S,
        "decision": first.decision.value,
        "distance": round(first.distance or 0.0, 4),
    }
    figures["load_average_1min"] = round(os.getloadavg()[0], 2)
    figures["meets_target"] = figures["cpu_p95_s"] <= TARGET_P95_S
    if args.json:
        print(json.dumps(figures))
    else:
        print(
            f"face verification, {args.frames} frames of {args.width}x{args.height} per request, "
            f"detection at {engine.detection_width} px wide, one core ({pinned}):"
        )
        print(
            f"  p50 {figures['p50_s']:.3f} s  p95 {figures['p95_s']:.3f} s  max "
            f"{figures['max_s']:.3f} s  (CPU p50 {figures['cpu_p50_s']:.3f} s, p95 "
            f"{figures['cpu_p95_s']:.3f} s) over {args.requests} requests; load average "
            f"{figures['load_average_1min']}; target CPU p95 <= {TARGET_P95_S} s: "
            f"{'met' if figures['meets_target'] else 'NOT met'}"
        )
    return 0 if figures["meets_target"] else 2


if __name__ == "__main__":
    sys.exit(main())
