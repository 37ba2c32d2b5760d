"""Commands that other distributions add to ``lifecert``, found as entry points (as faust
finds its plug-ins): a group names a command's parent, each entry point a sub-command and
the module that defines it (``register(subparsers)``, and ``KAFKA_COMPONENT`` when its
clients log in to Kafka)::

    [project.entry-points."lifecert.commands"]        # lifecert demo, ...
    demo = "lifecert_dev.commands.demo"
    [project.entry-points."lifecert.commands.api"]    # lifecert api bench
    bench = "lifecert_dev.commands.api_bench"

The commands lifecert-dev adds are known by name: when it is not installed they are still
listed, and running one says what to install instead of "invalid choice".
"""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType
from typing import Any

from lifecert.commands.args import EXIT_USAGE

GROUP = "lifecert.commands"
DEV_DISTRIBUTION = "lifecert-dev"
# group -> the commands lifecert-dev registers in it
DEV_COMMANDS: dict[str, tuple[str, ...]] = {
    GROUP: ("demo", "generate", "stack", "bench"),
    f"{GROUP}.api": ("bench",),
}
INSTALL_DEV = (
    f"{DEV_DISTRIBUTION} (the demo, the campaign generator, the local stack and the "
    "benchmarks), which is not installed: in a checkout of lifecert run `make setup`, or "
    "`pip install -e ./dev`"
)


def plugin_names(group: str = GROUP) -> set[str]:
    """The commands the installed distributions add to ``group``, without importing them."""
    return {ep.name for ep in entry_points(group=group)}


def add_plugins(subparsers: argparse._SubParsersAction, group: str = GROUP,
                prog: str = "lifecert", only: str | None = None) -> dict[str, ModuleType]:
    """Register every command of ``group`` (``only`` that one, when given); returns command
    name -> its module. A command that lifecert-dev would add but that is absent, or one
    whose module cannot be imported, is registered as a stand-in that says so when it is
    run."""
    found: dict[str, ModuleType] = {}
    for ep in sorted(entry_points(group=group), key=lambda ep: ep.name):
        if only is not None and ep.name != only:
            continue
        try:
            module = ep.load()
        except ImportError as exc:
            _stand_in(subparsers, ep.name, f"`{prog} {ep.name}` comes from {_dist(ep)}, "
                      f"whose module {ep.value} cannot be imported: {exc}. Reinstall "
                      f"{_dist(ep)} with the extras it needs")
            continue
        module.register(subparsers)
        found[ep.name] = module
    for name in DEV_COMMANDS.get(group, ()) if only is None else ():
        if name not in found and name not in subparsers.choices:
            _stand_in(subparsers, name, f"`{prog} {name}` is a command of {INSTALL_DEV}")
    return found


def _dist(ep: EntryPoint) -> str:
    return ep.dist.name if ep.dist is not None else "the package that provides it"


def _stand_in(subparsers: argparse._SubParsersAction, name: str, message: str) -> None:
    parser = subparsers.add_parser(name, help=f"(needs {DEV_DISTRIBUTION}, not installed)",
                                   add_help=False, prefix_chars="\0")
    parser.add_argument("ignored", nargs=argparse.REMAINDER)
    parser.set_defaults(func=_fail_with(message))


def _fail_with(message: str) -> Any:
    def fail(args: argparse.Namespace) -> int:
        print(f"lifecert: {message}.", file=sys.stderr)
        return EXIT_USAGE

    return fail
