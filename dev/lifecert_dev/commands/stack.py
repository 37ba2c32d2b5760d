"""``lifecert stack up | down | status [--json]``: the local Kafka broker and PostgreSQL.

Exit codes: 0 success (for ``status``: both services run and answer); 1 the stack failed
to start or stop; 2 a prerequisite is missing (java, mvn, apt-get, initdb, an OS user);
3 ``status`` found a service stopped (the LSB convention for "not running").
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from lifecert_dev.stack import (
    ENV_VARS,
    MissingPrerequisite,
    StackConfig,
    StackError,
    StackStatus,
    down,
    status,
    up,
)

EXIT_FAILED = 1
EXIT_MISSING = 2
EXIT_NOT_RUNNING = 3


# The Kafka principal of its clients (lifecert.cli): it sets up topics and ACLs.
KAFKA_COMPONENT = "admin"


def register(subparsers: Any) -> None:
    env_help = "\n".join(f"  {name:32} {text}" for name, text in ENV_VARS.items())
    parser = subparsers.add_parser(
        "stack",
        help="run the local Kafka broker and PostgreSQL (up | down | status)",
        description=(
            "The local stack: one Apache Kafka broker (KRaft, Java 17, jars resolved with "
            "Maven; or a cluster of them, --brokers) and one PostgreSQL cluster (Debian's "
            "packages), on 127.0.0.1, with data and logs under the stack's data folder."
        ),
        epilog="environment overrides:\n" + env_help,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="stack_action", required=True, metavar="ACTION")
    for name, func, text in (
        ("up", run_up, "start what does not run yet (idempotent)"),
        ("down", run_down, "stop both services (data is kept)"),
        ("status", run_status, "say what runs, and where"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("--json", action="store_true", help="print the status as JSON")
        if name == "up":
            action.add_argument(
                "--brokers", type=int, metavar="N",
                help="Kafka brokers, 1 to 5 (default: as the stack was formatted, else 1); "
                "3 makes a KRaft cluster with replication 3 and min.insync.replicas 2. A "
                "stack's count is fixed when it is first formatted")
        action.set_defaults(func=func)
    from lifecert.dbroles import ROLES

    dsn = actions.add_parser(
        "dsn", help="print a component's PostgreSQL DSN (its own role; the password stays "
        "in the stack's password file, which the DSN names)")
    dsn.add_argument("component", choices=sorted(ROLES), help="whose role")
    dsn.add_argument("--database", help="database (default: the stack's)")
    dsn.set_defaults(func=run_dsn)


def _progress(message: str) -> None:
    print(f"lifecert stack: {message}", file=sys.stderr, flush=True)


def _report(st: StackStatus, as_json: bool) -> None:
    info = st.to_dict()
    if as_json:
        print(json.dumps(info, indent=2))
        return
    k, p = info["kafka"], info["postgres"]
    pid_k = f"pid {k['pid']}" if k["pid"] else ""
    pid_p = f"pid {p['pid']}" if p["pid"] else ""
    print(f"kafka     {k['state']:8} {pid_k:11} {k['bootstrap']}  (Apache Kafka {k['version']})")
    if k["brokers"] > 1:
        nodes = ", ".join(f"node {n['node']} " + (f"pid {n['pid']}" if n["pid"] else "stopped")
                          for n in k["nodes"])
        print(f"          {k['brokers']} brokers ({nodes}); replication "
              f"{k['replication']}, min.insync.replicas {k['min_insync_replicas']}")
    print(f"postgres  {p['state']:8} {pid_p:11} {p['dsn']}")
    print(f"data      {info['data_dir']}")
    if p["fallback"]:
        print(f"pg data   {p['data_dir']}  (its OS user cannot reach the data folder)")
    print(f"logs      {info['logs_dir']}")


Action = Callable[[StackConfig, argparse.Namespace], int]


def _guarded(action: Action, args: argparse.Namespace) -> int:
    try:
        cfg = StackConfig.from_env()
        brokers = getattr(args, "brokers", None)
        if brokers is not None:
            cfg = replace(cfg, kafka_brokers=brokers)
        return action(cfg, args)
    except MissingPrerequisite as exc:
        print(f"lifecert stack: missing prerequisite: {exc}", file=sys.stderr)
        return EXIT_MISSING
    except StackError as exc:
        print(f"lifecert stack: error: {exc}", file=sys.stderr)
        return EXIT_FAILED


def _up(cfg: StackConfig, args: argparse.Namespace) -> int:
    _report(up(cfg, progress=_progress), args.json)
    return 0


def _down(cfg: StackConfig, args: argparse.Namespace) -> int:
    _report(down(cfg, progress=_progress), args.json)
    return 0


def _status(cfg: StackConfig, args: argparse.Namespace) -> int:
    st = status(cfg)
    _report(st, args.json)
    return 0 if st.running else EXIT_NOT_RUNNING


def run_up(args: argparse.Namespace) -> int:
    return _guarded(_up, args)


def run_down(args: argparse.Namespace) -> int:
    return _guarded(_down, args)


def run_status(args: argparse.Namespace) -> int:
    return _guarded(_status, args)


def run_dsn(args: argparse.Namespace) -> int:
    print(StackConfig.from_env().postgres_dsn_for(args.component, args.database))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run just this sub-command: ``python -m lifecert_dev.commands.stack up``."""
    parser = argparse.ArgumentParser(prog="lifecert")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["stack", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
