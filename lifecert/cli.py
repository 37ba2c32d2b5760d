"""The ``lifecert`` command. Each sub-command lives in its own module and registers itself
with ``register(subparsers)``; this module only assembles them: lifecert's own commands,
then those other distributions add through entry points (lifecert/commands/plugins.py:
lifecert-dev adds demo, generate, stack and bench). Running one command imports that
command's module alone; ``lifecert --help`` imports them all."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

from lifecert.commands.plugins import add_plugins, plugin_names

# Modules that define a sub-command: each has ``register(subparsers) -> None`` which adds
# its parser and sets ``func`` (taking the parsed namespace, returning an exit code).
COMMAND_MODULES: tuple[str, ...] = (
    "lifecert.commands.replay",
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
    "lifecert.commands.review",
    "lifecert.commands.assistance",
    "lifecert.commands.mailroom",
    "lifecert.commands.log",
    "lifecert.commands.report",
    "lifecert.commands.web",
)


# The Kafka principal each command's clients log in as (lifecert/pipeline/acls.toml says
# what each may do); commands absent use none. Commands that set up or tear down topics
# and ACLs, or drive a whole local run, are the admin. A plug-in command names its own
# (``KAFKA_COMPONENT`` of its module: lifecert-dev's demo, stack and bench are the admin).
COMMAND_COMPONENTS: dict[str, str] = {
    "topics": "admin",
    # a command's action may log in as another principal than the command's (key
    # "<command> <action>"): looking at the log needs no right to change it
    "topics tail": "reader",
    "log": "reader",
    "publish": "connector",
    "connectors": "connector",
    "reconcile": "connector",
    "clock": "scheduler",
    "worker": "worker",
    "projections": "projections",
    "wait-idle": "projections",
    "api": "api",
    # staff reviews publish as the API does (its STAFF role makes the same reviews)
    "review": "api",
    # Foshan's requests to partners go where the API's results for other regions go
    "assistance": "api",
    "mailroom": "projections",
}


# The optional extra that brings each third-party package the commands import.
EXTRA_OF: dict[str, str] = {
    "kafka": "live", "aiokafka": "live", "faust": "live", "mode": "live", "psycopg2": "live",
    "prometheus_client": "live", "cryptography": "live", "grpc": "api", "google": "api",
    "reportlab": "report",
    "starlette": "web", "uvicorn": "web", "jinja2": "web", "argon2": "web", "multipart": "web",
}


def missing_extra(exc: ModuleNotFoundError, module_name: str) -> str | None:
    """What to install when ``module_name`` failed on ``exc`` for want of an extra's package;
    None when the missing module is not a known extra's (a broken install: let it raise)."""
    top = (exc.name or "").partition(".")[0]
    extra = EXTRA_OF.get(top)
    if extra is None:
        return None
    return (f"lifecert: {module_name} needs the Python package {top!r}, which is not "
            f"installed: it comes with lifecert's {extra!r} extra. A bureau installs "
            "pip install 'lifecert[live,api]' (add 'face' for face verification).")


def command_name(module_name: str) -> str:
    """The sub-command a module of ``COMMAND_MODULES`` registers: its own name, with ``-``
    for ``_`` (tests/commands/test_cli_dispatch.py checks that each one does)."""
    return module_name.rpartition(".")[2].replace("_", "-")


def build_parser() -> argparse.ArgumentParser:
    return _build()[0]


def _build(command: str | None = None) -> tuple[argparse.ArgumentParser, dict[str, ModuleType]]:
    """The parser of every command; given ``command``, the first word of a command line, the
    parser of that one command alone when it is known, so that running one command imports
    its module only (the parser of one sub-command parses its arguments as the whole one
    does; ``lifecert --help`` and an unknown word still get every command)."""
    parser = argparse.ArgumentParser(
        prog="lifecert",
        description="Pension eligibility certification hub (proof of life).",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    own = [name for name in COMMAND_MODULES if command_name(name) == command]
    if command is not None and not own and command in plugin_names():
        return parser, add_plugins(subparsers, only=command)
    for module_name in own or COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            message = missing_extra(exc, module_name)
            if message is None:
                raise
            raise SystemExit(message) from None
        module.register(subparsers)
    return parser, ({} if own else add_plugins(subparsers))


def component_of(command: str, plugin: ModuleType | None = None,
                 action: str | None = None) -> str | None:
    """The Kafka principal of ``command`` (its ``action`` when it has one), ``plugin`` its
    module when a plug-in."""
    declared = getattr(plugin, "KAFKA_COMPONENT", None)
    if isinstance(declared, str):
        return declared
    if action is not None and f"{command} {action}" in COMMAND_COMPONENTS:
        return COMMAND_COMPONENTS[f"{command} {action}"]
    return COMMAND_COMPONENTS.get(command)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, plugins = _build(argv[0] if argv else None)
    args = parser.parse_args(argv)
    from lifecert.pipeline.credentials import acting_as

    action = getattr(args, f"{args.command.replace('-', '_')}_action", None)
    component = component_of(args.command, plugins.get(args.command), action)
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
