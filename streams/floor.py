"""faust's floor: an app with the worker's consumer settings whose agent does nothing but
let faust acknowledge each record (``python -m streams.floor``).

``lifecert bench pipeline`` runs it on the events topic it measured, to show how much of
the raw consume rate faust's own record delivery leaves (consumer thread, conductor,
stream, agent: several event-loop steps per record) before lifecert decides anything.
It reads the topic from its first offset with a group of its own, counts ``--records``
records, writes its figures as JSON to ``--out`` and stops.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streams.floor", description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--records", type=int, required=True,
                        help="stop after this many records (the topic's end)")
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="the figures, as JSON")
    args = parser.parse_args(argv)

    import faust

    from lifecert.pipeline.credentials import set_process_component

    # A benchmark's floor: a throw-away faust app of its own group, run by the admin.
    set_process_component("admin")

    from streams.app import faust_app
    from streams.worker import execute, use_uvloop

    logging.basicConfig(level="WARNING", stream=sys.stderr)
    loop = use_uvloop()
    app = faust_app(f"lifecert-floor-{uuid.uuid4().hex[:8]}", args.bootstrap, args.data_dir,
                    store="memory://")
    topic = app.topic(args.topic, key_serializer="raw", value_serializer="raw")
    seen: dict[str, Any] = {"records": 0}

    @app.agent(topic, name="count", concurrency=1)
    async def count(stream: faust.StreamT) -> None:
        async for _ in stream:
            if not seen["records"]:
                seen["wall"], seen["cpu"] = time.perf_counter(), time.process_time()
            seen["records"] += 1
            if seen["records"] == args.records:
                wall = time.perf_counter() - seen["wall"]
                cpu = time.process_time() - seen["cpu"]
                # From the first record to the last: the group's start-up is not counted.
                args.out.write_text(json.dumps({
                    "records": args.records, "seconds": round(wall, 3),
                    "cpu_seconds": round(cpu, 3), "per_s": round(args.records / wall),
                    "per_cpu_s": round(args.records / max(cpu, 1e-6)), "event_loop": loop,
                }), encoding="utf-8")
                os.kill(os.getpid(), signal.SIGTERM)

    return execute(app, "warning")


if __name__ == "__main__":
    sys.exit(main())
