"""The floors of record delivery: an app with the worker's consumer settings that does
nothing but acknowledge each record (``python -m streams.floor``).

- ``--plane faust``: faust's own delivery to an agent (consumer thread, conductor,
  stream, agent: several event-loop steps per record);
- ``--plane batch``: the worker's data plane (:mod:`streams.dataplane`), a handler that
  acknowledges each fetch's records; it also checks that every partition's offsets come
  in sequence from the first, and counts the batches.

``lifecert bench pipeline`` runs both on the events topic it measured, to show how much of
the raw consume rate each leaves before lifecert decides anything. It reads the topic
from its first offset with a group of its own, counts ``--records`` records, writes its
figures as JSON to ``--out`` and stops (a clean stop: the offsets are committed).
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
    parser.add_argument("--plane", choices=["faust", "batch"], default="faust",
                        help="faust's delivery to an agent (default), or the worker's "
                        "batch data plane")
    parser.add_argument("--group", help="the consumer group (default: a new one)")
    args = parser.parse_args(argv)

    import faust

    from lifecert.pipeline.credentials import set_process_component

    # A benchmark's floor: a throw-away faust app of its own group, run by the admin.
    set_process_component("admin")

    from streams.app import faust_app
    from streams.dataplane import SCHEME
    from streams.worker import execute, use_uvloop

    logging.basicConfig(level="WARNING", stream=sys.stderr)
    loop = use_uvloop()
    app = faust_app(args.group or f"lifecert-floor-{uuid.uuid4().hex[:8]}", args.bootstrap,
                    args.data_dir, store="memory://",
                    scheme=SCHEME if args.plane == "batch" else "kafka")
    topic = app.topic(args.topic, key_serializer="raw", value_serializer="raw")
    counter = _Counter(args.records, args.out, loop)
    if args.plane == "batch":
        app.topics.add(topic)
        app.data_plane = _AcknowledgingPlane(args.topic, counter)
    else:
        @app.agent(topic, name="count", concurrency=1)
        async def count(stream: faust.StreamT) -> None:
            async for _ in stream:
                counter.add(1)

    return execute(app, "warning")


class _Counter:
    """Counts records from the first; writes the figures and stops at the last."""

    def __init__(self, records: int, out: Path, loop: str) -> None:
        self.records, self.out, self.loop = records, out, loop
        self.seen = 0
        self.extra: dict[str, Any] = {}
        self._wall = self._cpu = 0.0

    def add(self, n: int) -> None:
        if not self.seen:
            self._wall, self._cpu = time.perf_counter(), time.process_time()
        self.seen += n
        if self.seen >= self.records:
            wall = time.perf_counter() - self._wall
            cpu = time.process_time() - self._cpu
            # From the first record to the last: the group's start-up is not counted.
            self.out.write_text(json.dumps({
                "records": self.seen, "seconds": round(wall, 3),
                "cpu_seconds": round(cpu, 3), "per_s": round(self.seen / wall),
                "per_cpu_s": round(self.seen / max(cpu, 1e-6)), "event_loop": self.loop,
                **self.extra,
            }), encoding="utf-8")
            os.kill(os.getpid(), signal.SIGTERM)


class _AcknowledgingPlane:
    """A data-plane handler that acknowledges every record (streams.dataplane)."""

    def __init__(self, topic: str, counter: _Counter) -> None:
        self.topics = frozenset({topic})
        self._counter = counter
        self._next: dict[int, int] = {}
        counter.extra.update(batches=0, largest_batch=0, out_of_sequence=0)

    async def handle(self, consumer: Any, fetched: Any) -> None:
        extra = self._counter.extra
        count = 0
        for tp, records in fetched.items():
            for record in records:
                if record.offset != self._next.get(tp.partition, 0):
                    extra["out_of_sequence"] += 1
                self._next[tp.partition] = record.offset + 1
                consumer.acknowledge(consumer.deliver(tp, record))
                count += 1
        extra["batches"] += 1
        extra["largest_batch"] = max(extra["largest_batch"], count)
        self._counter.add(count)


if __name__ == "__main__":
    sys.exit(main())
