"""The ``lifecert`` command. Each sub-command lives in its own module and registers itself
with ``register(subparsers)``; this module only assembles them."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Modules that define a sub-command: each has ``register(subparsers) -> None`` which adds
# its parser and sets ``func`` (taking the parsed namespace, returning an exit code).
COMMAND_MODULES: tuple[str, ...] = (
    "lifecert.commands.replay",
    "lifecert_dev.commands.generate",
    "lifecert_dev.commands.bench",
    "lifecert_dev.commands.demo",
    "lifecert_dev.commands.stack",
    "lifecert.commands.topics",
    "lifecert.commands.publish",
    "lifecert.commands.clock",
    "lifecert.commands.worker",
    "lifecert.commands.projections",
    "lifecert.commands.wait_idle",
    "lifecert.commands.connectors",
    "lifecert.commands.reconcile",
    "lifecert.commands.api",
    "lifecert.commands.pki",
    "lifecert.commands.keys",
    "lifecert.commands.erase",
    "lifecert.commands.dead_letters",
)


# The Kafka principal each command's clients log in as (lifecert/pipeline/acls.toml says
# what each may do). Commands that set up or tear down topics and ACLs, or drive a whole
# local run (the demo, the benchmarks), are the admin; commands absent use none.
COMMAND_COMPONENTS: dict[str, str] = {
    "stack": "admin",
    "topics": "admin",
    "demo": "admin",
    "bench": "admin",
    "publish": "connector",
    "connectors": "connector",
    "reconcile": "connector",
    "clock": "scheduler",
    "worker": "worker",
    "projections": "projections",
    "wait-idle": "projections",
    "api": "api",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lifecert",
        description="Pension eligibility certification hub (proof of life).",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from lifecert.pipeline.credentials import acting_as

    component = COMMAND_COMPONENTS.get(args.command)
    try:
        if component is None:
            return int(args.func(args) or 0)
        with acting_as(component):
            return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("lifecert: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
