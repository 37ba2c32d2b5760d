"""``lifecert keys create``: the secret keys kept outside the database, made once.

    lifecert keys create [--pki-dir DIR]

Makes, unless they exist (or their environment variable gives them), the personal-data
master key (``$LIFECERT_KEYS_DIR``, else data/keys: personal-data.key) and the
second-factor key (data/api/second-factor.key, beside the PKI folder). No other command
makes them: one that finds none refuses, naming where it looked (lifecert/keyfiles.py).
``lifecert stack up`` runs this step for the local stack.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lifecert.commands.args import EXIT_FAILED


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "keys", help="create the secret keys kept outside the database (once)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="make the keys that do not exist yet")
    create.add_argument("--pki-dir", type=Path, help="PKI folder; the second-factor key "
                        "lives beside it in api/ (default: $LIFECERT_PKI_DIR, else data/pki)")
    create.set_defaults(func=cmd_create)


def create_keys(pki_dir: Path | None = None) -> list[Path]:
    """Make the keys that do not exist yet; the files made."""
    from lifecert.api.server_config import create_second_factor_key, second_factor_dir
    from lifecert.keystore.master import create_master_key

    made = [create_master_key(), create_second_factor_key(second_factor_dir(pki_dir))]
    return [p for p in made if p is not None]


def cmd_create(args: argparse.Namespace) -> int:
    try:
        made = create_keys(args.pki_dir)
    except OSError as exc:
        print(f"lifecert keys: {exc}", file=sys.stderr)
        return EXIT_FAILED
    for path in made:
        print(f"lifecert keys: made {path} (mode 0600; keep it out of backups of the "
              "database)", file=sys.stderr)
    if not made:
        print("lifecert keys: every key exists already; none made", file=sys.stderr)
    return 0
