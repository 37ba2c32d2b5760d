"""``lifecert connectors list | run NAME | check NAME | missions``: partner connectors.

Connector types are installed packages (entry-point group ``lifecert.connectors``);
instances and their settings are in one TOML file (``--config``, default
``$LIFECERT_CONNECTORS_CONFIG``, else ``connectors.toml``). Secrets are read from the
environment (``password = { env = "NAME" }``) and never printed. See docs/connectors.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lifecert.commands.args import EXIT_FAILED, EXIT_OK, EXIT_USAGE

if TYPE_CHECKING:
    from connectors.sdk.app import Built

CONFIG_ENV = "LIFECERT_CONNECTORS_CONFIG"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "connectors", help="list, run and check partner connectors",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
    )
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", type=Path,
                       default=Path(os.environ.get(CONFIG_ENV, "connectors.toml")),
                       help=f"the connectors' TOML file (default ${CONFIG_ENV}, "
                            f"else ./connectors.toml)")
        p.add_argument("--bootstrap", help="Kafka bootstrap servers (overrides the file)")
        p.add_argument("--topic-prefix", help="topic name prefix (overrides the file)")

    listing = sub.add_parser("list", help="installed connector types and configured instances")
    listing.add_argument("--config", type=Path, default=None,
                         help="also list the instances of this configuration file")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(func=_list)

    missions = sub.add_parser(
        "missions", help="the partner directory of missions (embassies, consulates, trade "
                         "offices, caretaker embassies) the consular-app connector takes")
    missions.add_argument("--file", type=Path, default=None,
                          help="a directory file (a consular-app instance's missions_file; "
                               "default: the one shipped with the connector)")
    missions.add_argument("--json", action="store_true", help="machine-readable output")
    missions.set_defaults(func=_missions)

    run = sub.add_parser("run", help="run one connector instance until SIGTERM")
    run.add_argument("name", help="the instance name ([connectors.NAME] in the file)")
    common(run)
    run.add_argument("--metrics-port", type=int, default=None, metavar="PORT",
                     help="serve Prometheus metrics on 127.0.0.1:PORT/metrics (0: any port)")
    run.add_argument("--log-level", default="info",
                     choices=["debug", "info", "warning", "error"])
    run.set_defaults(func=_run)

    check = sub.add_parser("check", help="check an instance's settings, topics and partner")
    check.add_argument("name")
    common(check)
    check.set_defaults(func=_check)


def _load(args: argparse.Namespace) -> Built:
    from connectors.sdk import app, config_file

    return app.build(config_file.load(args.config), args.name, bootstrap=args.bootstrap,
                     topic_prefix=args.topic_prefix)


def _list(args: argparse.Namespace) -> int:
    from connectors.sdk import config_file, registry

    found = registry.installed()
    rows = []
    for kind, item in sorted(found.items()):
        try:
            cls = registry.load(kind)
            role = "source" if registry.is_source(cls) else "sink"
            description, problem = cls.description, ""
        except Exception as exc:  # show a broken plug-in, never crash the listing
            role, description, problem = "?", "", str(exc)
        rows.append({"kind": kind, "role": role, "target": item.target,
                     "package": item.distribution, "description": description,
                     "problem": problem})
    instances: list[dict[str, Any]] = []  # JSON objects
    if args.config is not None:
        try:
            loaded = config_file.load(args.config)
        except config_file.ConfigError as exc:
            print(f"lifecert connectors: {exc}", file=sys.stderr)
            return EXIT_USAGE
        instances = [{"name": i.name, "kind": i.kind, "settings": i.public_settings()}
                     for i in loaded.instances.values()]
    if args.json:
        print(json.dumps({"connectors": rows, "instances": instances}, ensure_ascii=False,
                         indent=2))
        return EXIT_OK
    for row in rows:
        line = f"{row['kind']:<20} {row['role']:<6} {row['description']}"
        print(line + (f"  [cannot load: {row['problem']}]" if row["problem"] else ""))
    for inst in instances:
        print(f"instance {inst['name']} ({inst['kind']}): "
              + ", ".join(f"{k}={v}" for k, v in inst["settings"].items()))
    return EXIT_OK


def _missions(args: argparse.Namespace) -> int:
    from connectors.consular_app import missions as directory

    try:
        found = directory.load(args.file)
    except directory.DirectoryError as exc:
        print(f"lifecert connectors: {exc}", file=sys.stderr)
        return EXIT_USAGE
    rows = sorted(found.values(), key=lambda m: (m.country, m.kind, m.code))
    if args.json:
        print(json.dumps({"missions": [{"code": m.code, "kind": m.kind, "country": m.country,
                                        "city": m.city} for m in rows]},
                         ensure_ascii=False, indent=2))
        return EXIT_OK
    for m in rows:
        print(f"{m.code:<24} {m.kind:<18} {m.country}  {m.city}")
    print(f"{len(rows)} missions")
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    from connectors.sdk import app
    from connectors.sdk.errors import ConfigError

    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        built = _load(args)
    except ConfigError as exc:
        print(f"lifecert connectors: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        app.run(built, metrics_port=args.metrics_port)
    except ConfigError as exc:
        print(f"lifecert connectors: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception:
        logging.getLogger("lifecert.connectors").exception(
            "%s stopped by an unexpected error (its current batch is not committed and "
            "will be read again on restart)", args.name)
        return EXIT_FAILED
    return EXIT_OK


def _check(args: argparse.Namespace) -> int:
    from connectors.sdk import app
    from connectors.sdk.errors import ConfigError

    try:
        built = _load(args)
    except ConfigError as exc:
        print(f"lifecert connectors: {exc}", file=sys.stderr)
        return EXIT_USAGE
    problems = app.check(built)
    settings = ", ".join(f"{k}={v}" for k, v in built.instance.public_settings().items())
    print(f"{built.instance.name} ({built.instance.kind}): {settings}")
    for problem in problems:
        print(f"  problem: {problem}")
    print("ok" if not problems else f"{len(problems)} problem(s)")
    return EXIT_OK if not problems else EXIT_FAILED
