"""``lifecert sandbox``: a private copy of lifecert on the local stack for a partner's
engineer (docs/partners.md, "Your sandbox").

    lifecert sandbox create macau --role MACAU_SSF --agency MO-SSF --date 2017-05-02
    lifecert sandbox list
    lifecert sandbox show macau            # where to connect, certificates, test retirees
    lifecert sandbox reset macau [--date 2017-06-25]   # wipe the log and the database
    lifecert sandbox delete macau

Exit codes: 0 success; 1 the sandbox could not be made, reset or deleted (the message says
why); 2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path
from typing import Any

from lifecert.commands.args import EXIT_FAILED, EXIT_USAGE, iso_date

# The Kafka principal of its clients (lifecert.cli): it makes topics, as the demo does.
KAFKA_COMPONENT = "admin"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sandbox", help="a partner's private sandbox: API, worker, clock on the local stack",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("--root", type=Path, default=None,
                        help="folder of the sandboxes (default: $LIFECERT_SANDBOX_DIR, else "
                        "data/sandboxes)")
    actions = parser.add_subparsers(dest="sandbox_action", required=True, metavar="ACTION")
    create = actions.add_parser(
        "create", help="make a sandbox and start its API server, worker, projections, clock",
        description="Topics sbx-NAME.*, database lifecert_sbx_NAME, a CA and a client "
        "certificate for AGENCY with ROLE, test retirees in the role's jurisdiction, and a "
        "campaign clock showing DATE (09:00 Asia/Shanghai) now and running from there.")
    create.add_argument("name", help="1-30 characters of a-z, 0-9 and -")
    create.add_argument("--role", required=True, help="the role of your certificate "
                        "(`lifecert pki roles`), e.g. MACAU_SSF")
    create.add_argument("--agency", required=True, help="your agency id, e.g. MO-SSF")
    create.add_argument("--date", required=True, type=iso_date, metavar="YYYY-MM-DD",
                        help="the campaign day the sandbox's clock shows now, e.g. 2017-05-02")
    create.add_argument("--retirees", type=int, default=5,
                        help="test retirees enrolled in your scope (default 5)")
    create.add_argument("--port", type=int, default=0,
                        help="port of the API server on 127.0.0.1 (default: a free one)")
    create.set_defaults(func=run_create)
    show = actions.add_parser(
        "show", help="where to connect, the certificates, the test retirees")
    show.add_argument("name")
    show.add_argument("--json", action="store_true", help="print as JSON")
    show.set_defaults(func=run_show)
    delete = actions.add_parser(
        "delete", help="stop the processes, drop the topics, the database and the folder")
    delete.add_argument("name")
    delete.set_defaults(func=run_delete)
    reset = actions.add_parser(
        "reset", help="wipe the log and the database, enroll again, restart the clock",
        description="Stop the sandbox's processes, recreate its topics and database, enroll "
        "the test retirees again, set the clock to --date (default: the sandbox's date) and "
        "start again. The certificates stay valid.")
    reset.add_argument("name")
    reset.add_argument("--date", type=iso_date, metavar="YYYY-MM-DD")
    reset.set_defaults(func=run_reset)
    lister = actions.add_parser("list", help="the sandboxes and whether they run")
    lister.set_defaults(func=run_list)


def _root(args: argparse.Namespace) -> Path:
    import os

    if args.root is not None:
        return Path(args.root)
    return Path(os.environ.get("LIFECERT_SANDBOX_DIR") or "data/sandboxes")


def run_create(args: argparse.Namespace) -> int:
    from lifecert_dev.sandbox import (
        PartnerSandbox,
        SandboxError,
        SandboxInfo,
        check_name,
        check_role,
        free_port,
        sandbox_retirees,
    )
    from lifecert_dev.stack import StackConfig, up

    try:
        name, role = check_name(args.name), check_role(args.role)
        if not 1 <= args.retirees <= 1000:
            raise SandboxError("--retirees must be between 1 and 1000")
    except SandboxError as exc:
        print(f"lifecert sandbox: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print("lifecert sandbox: starting the local stack", file=sys.stderr)
    stack = up(StackConfig.from_env())
    day: date = args.date
    info = SandboxInfo(
        name=name, role=role, agency=args.agency, date=day.isoformat(),
        prefix=f"sbx-{name}.", database=f"lifecert_sbx_{name.replace('-', '_')}",
        bootstrap=stack.kafka_bootstrap, admin_dsn=stack.postgres_dsn,
        port=args.port or free_port(),
    )
    box = PartnerSandbox(_root(args) / name)
    try:
        print(f"lifecert sandbox: topics {info.prefix}*, database {info.database}, PKI in "
              f"{box.root}", file=sys.stderr)
        box.create(info, sandbox_retirees(role, args.agency, args.retirees))
    except (SandboxError, ValueError) as exc:
        print(f"lifecert sandbox: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(describe(box, info))
    return 0


def _load(args: argparse.Namespace) -> Any:
    from lifecert_dev.sandbox import PartnerSandbox, check_name

    box = PartnerSandbox(_root(args) / check_name(args.name))
    return box, box.load()


def run_show(args: argparse.Namespace) -> int:
    from lifecert_dev.sandbox import SandboxError

    try:
        box, info = _load(args)
    except SandboxError as exc:
        print(f"lifecert sandbox: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        cert, key = box.client_files(info.agency)
        print(json.dumps({"name": info.name, "target": info.target, "role": info.role,
                          "agency": info.agency, "date": info.date,
                          "ca": str(box.pki.ca_cert), "cert": str(cert), "key": str(key),
                          "retirees": info.retirees, "processes": box.states(info)},
                         indent=2))
    else:
        print(describe(box, info))
    return 0


def run_reset(args: argparse.Namespace) -> int:
    from lifecert_dev.sandbox import SandboxError

    try:
        box, _ = _load(args)
        info = box.reset(args.date.isoformat() if args.date else None)
    except SandboxError as exc:
        print(f"lifecert sandbox: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(describe(box, info))
    return 0


def run_delete(args: argparse.Namespace) -> int:
    from lifecert_dev.sandbox import SandboxError

    try:
        box, info = _load(args)
        box.delete()
    except SandboxError as exc:
        print(f"lifecert sandbox: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"lifecert sandbox: deleted {info.name} (topics {info.prefix}*, database "
          f"{info.database}, {box.root})")
    return 0


def run_list(args: argparse.Namespace) -> int:
    from lifecert_dev.sandbox import sandboxes

    found = list(sandboxes(_root(args)))
    if not found:
        print(f"no sandboxes in {_root(args)}")
    for box in found:
        info = box.load()
        states = box.states(info)
        running = sum(s == "running" for s in states.values())
        print(f"{info.name:20} {info.role:18} {info.agency:12} clock from {info.date}  "
              f"{info.target}  {running}/{len(states)} processes running")
    return 0


def describe(box: Any, info: Any) -> str:
    cert, key = box.client_files(info.agency)
    lines = [
        f"sandbox {info.name}: {info.agency} as {info.role}, campaign clock from "
        f"{info.date} 09:00 Asia/Shanghai (running)",
        f"  API          {info.target}  (mutual TLS; server name localhost)",
        f"  CA           {box.pki.ca_cert}",
        f"  certificate  {cert}",
        f"  key          {key}",
        f"  topics       {info.prefix}*    database {info.database}",
        f"  logs         {box.root / 'logs'}/",
        "  processes    " + ", ".join(f"{n} {s}" for n, s in box.states(info).items()),
        "  test retirees (retiree id, second factor for GetStatus):",
    ]
    for r in info.retirees:
        lines.append(f"    {r['retiree_id']:14} {r['id_number'][-4:]}  {r['note']}")
    # the interpreter lifecert runs in: a bare `python` outside its venv has no lifecert
    lines.append(f"  try: {sys.executable} -m lifecert.api.example_client --target "
                 f"{info.target} --ca {box.pki.ca_cert} --cert {cert} --key {key} "
                 f"submit {info.retirees[0]['retiree_id']}")
    return "\n".join(lines)
