"""``lifecert worker``: decide the events topic live, until SIGTERM/SIGINT.

The worker itself is the faust app in ``streams/`` (streams/app.py), with its options
(streams/options.py); this module runs ``streams.worker`` only when the command is chosen,
so that the rest of ``lifecert`` does not import faust.
"""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "worker",
        help="run the stream worker: decide the events topic live (faust)",
        description=(
            "Consume the events topic partition by partition, decide each input with the "
            "campaign rules (as `lifecert replay` does), and write payment instructions, "
            "alerts, tasks, statuses and dead letters to their topics. The state lives in a "
            "faust table with a changelog topic. Runs until SIGTERM or SIGINT."
        ),
    )
    from streams.options import add_arguments  # the worker's own options

    add_arguments(parser)
    parser.set_defaults(func=func)


def func(args: argparse.Namespace) -> int:
    from streams.worker import run

    return run(args)
