"""``lifecert review deaths list | confirm | dismiss``: the partial matches of the death
registers, decided by a person.

    lifecert review deaths list --review-dir DIR [--state pending|confirmed|dismissed]
    lifecert review deaths confirm REVIEW_ID RETIREE_ID --by STAFF --reason TEXT \\
        --review-dir DIR --inbox DIR
    lifecert review deaths dismiss REVIEW_ID --by STAFF --reason TEXT --review-dir DIR

``--review-dir`` and ``--inbox`` are the death-registers connector's ``review`` and
``inbox`` folders ($LIFECERT_DEATH_REVIEW_DIR, $LIFECERT_DEATH_INBOX). A confirmation
publishes nothing itself: it drops a staff file in the registers' inbox and the connector
turns it into a DeathRecorded (the one door), with who and why kept in
``review/confirmed/`` and in the staff file. The list shows no name and no citizen id
(there are none in the queue): staff look the row up in the extract the list names.
Exit codes: 0 done; 1 the review is not pending or not a candidate; 2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connectors.death_registers import review
from lifecert.commands.args import EXIT_FAILED, EXIT_OK, EXIT_USAGE


def _folder(value: str | None, env: str, flag: str) -> Path:
    text = value or os.environ.get(env)
    if not text:
        print(f"lifecert review deaths: {flag} (or ${env}) is required: the "
              f"death-registers connector's folder", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)
    return Path(text)


def register_queue(kinds: Any) -> None:
    """Add ``deaths`` to ``lifecert review``'s queues (lifecert/commands/review.py)."""
    deaths = kinds.add_parser("deaths", help="partial matches of the death registers",
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = deaths.add_subparsers(dest="action", required=True)
    ls = actions.add_parser("list", help="the reviews in a state (default pending)")
    ls.add_argument("--state", choices=review.STATES, default="pending")
    ls.add_argument("--json", action="store_true")
    ok = actions.add_parser("confirm", help="confirm a review as a retiree's death")
    ok.add_argument("review_id")
    ok.add_argument("retiree_id")
    ok.add_argument("--inbox", help="the connector's inbox ($LIFECERT_DEATH_INBOX)")
    no = actions.add_parser("dismiss", help="dismiss a review: not a retiree's death")
    no.add_argument("review_id")
    for sub in (ok, no):
        sub.add_argument("--by", required=True, help="who decides (staff id)")
        sub.add_argument("--reason", required=True, help="why (kept with the decision)")
    for sub in (ls, ok, no):
        sub.add_argument("--review-dir", help="the connector's review folder "
                                              "($LIFECERT_DEATH_REVIEW_DIR)")
    deaths.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    folder = _folder(args.review_dir, "LIFECERT_DEATH_REVIEW_DIR", "--review-dir")
    now = datetime.now(UTC)
    try:
        if args.action == "list":
            return _list(review.listing(folder, args.state), args.json)
        if args.action == "confirm":
            inbox = _folder(args.inbox, "LIFECERT_DEATH_INBOX", "--inbox")
            if not inbox.is_dir():
                print(f"the inbox {inbox} is not a folder", file=sys.stderr)
                return EXIT_USAGE
            path = review.confirm(folder, inbox, args.review_id, args.retiree_id, args.by,
                                  args.reason, now)
            print(f"confirmed {args.review_id} as the death of {args.retiree_id}; the "
                  f"connector publishes it from {path.name}")
        else:
            review.dismiss(folder, args.review_id, args.by, args.reason, now)
            print(f"dismissed {args.review_id}")
    except review.ReviewError as exc:
        print(f"lifecert review deaths {args.action}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _list(entries: list[dict[str, Any]], as_json: bool) -> int:
    if as_json:
        print(json.dumps(entries, ensure_ascii=False, indent=1))
        return EXIT_OK
    for e in entries:
        print(f"{e['review_id']}  {e['kind']:<16} {e['source']:<18} died {e['date_of_death']}"
              f"  candidates {','.join(e['candidates'])}  row {e['row']}"
              + (f"  {e['decision']} by {e['decided_by']}: {e['reason']}"
                 if "decision" in e else ""))
    print(f"{len(entries)} review(s)")
    return EXIT_OK
