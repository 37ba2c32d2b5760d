"""The review queue of partial matches, a folder of JSON files (no name, no citizen id).

``review/pending/<id>.json``: written by the connector for each partial match; the id is a
digest of the row's content (source, digests, dates), so a row seen twice (the same
extract delivered again) is one review. ``lifecert review deaths confirm`` moves it to
``review/confirmed/`` with who and why and drops a staff file ``SR-<date>-<id>.jsonl`` in
the registers' inbox, which the connector reads as it reads the registers: the confirmed
death becomes a DeathRecorded through the one door, with the register's source and the
same event id an exact match would have had. ``dismiss`` moves it to ``review/dismissed/``
with who and why. Nothing here stops a pension.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from datetime import date, datetime
from pathlib import Path
from typing import Any

from connectors.death_registers.formats import REGISTERS, RowRejected
from connectors.death_registers.matching import Death, Match
from lifecert.events import bounds, interchange, masking
from lifecert.events.time import SHANGHAI

CONFIRM_NAME = re.compile(r"(SR)-(\d{8})-([0-9a-f]{16})\.jsonl")
# HOME_VISIT: a district home-visit team found the retiree deceased (the home-visits door,
# issue 14); like a partial match it waits for staff, never stops a pension on its own.
HOME_VISIT = "HOME_VISIT"
HOME_VISIT_DECEASED = "HOME_VISIT_DECEASED"
SOURCES = frozenset(source for _, source in REGISTERS.values()) | {HOME_VISIT}
STATES = ("pending", "confirmed", "dismissed")
STAFF_ID = re.compile(r"[0-9A-Za-z][0-9A-Za-z._@-]{0,63}")


class ReviewError(ValueError):
    pass


def review_id(death: Death) -> str:
    text = "|".join((death.source, death.id_digest or "-", death.name_digest,
                     str(death.birth_date), death.date_of_death.isoformat()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _write_atomic(path: Path, content: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(content, ensure_ascii=False, sort_keys=True) + "\n",
                   encoding="utf-8")
    os.replace(tmp, path)


def write_pending(folder: Path, death: Death, found: Match) -> Path | None:
    """Queue a partial match (idempotent: nothing if it is queued or decided already)."""
    rid = review_id(death)
    if any((folder / state / f"{rid}.json").exists() for state in STATES):
        return None
    path = folder / "pending" / f"{rid}.json"
    _write_atomic(path, {
        "review_id": rid, "kind": found.kind.value, "candidates": list(found.retiree_ids),
        "source": death.source, "row": death.row_ref,
        "date_of_death": death.date_of_death.isoformat(),
        "reported_at": death.reported_at.isoformat()})
    return path


def write_home_visit(folder: Path, team: str, visit_id: str, retiree_id: str,
                     date_of_death: date, reported_at: datetime) -> tuple[str, Path | None]:
    """Queue a home-visit team's report of a death (idempotent on the team and its visit
    id: the same visit reported again is one review). Returns the review id and the path
    written (None when it was queued or decided already)."""
    rid = hashlib.sha256(f"{HOME_VISIT}|{team}|{visit_id}".encode()).hexdigest()[:16]
    if any((folder / state / f"{rid}.json").exists() for state in STATES):
        return rid, None
    path = folder / "pending" / f"{rid}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(path, {
        "review_id": rid, "kind": HOME_VISIT_DECEASED, "candidates": [retiree_id],
        "source": HOME_VISIT, "row": f"team {team} visit {visit_id}",
        "team_id": team, "visit_id": visit_id,
        "date_of_death": date_of_death.isoformat(), "reported_at": reported_at.isoformat()})
    return rid, path


def listing(folder: Path, state: str = "pending") -> list[dict[str, Any]]:
    where = folder / state
    if not where.is_dir():
        return []
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(where.glob("*.json"))]


def _decide(folder: Path, rid: str, state: str, by: str, why: str,
            now: datetime, **also: str) -> dict[str, Any]:
    if not re.fullmatch(r"[0-9a-f]{16}", rid):
        raise ReviewError(f"{masking.show(rid)} is not a review id (16 hex digits; see `lifecert "
                          f"review deaths list`)")
    if not STAFF_ID.fullmatch(by):
        raise ReviewError(f"--by {masking.show(by)} is not a staff id (1-64 of 0-9 A-Z a-z "
                          f". _ @ -)")
    if not why.strip() or len(why) > 500 or any(ord(c) < 32 for c in why):
        raise ReviewError("--reason must say why, in 1-500 characters on one line")
    source = folder / "pending" / f"{rid}.json"
    if not source.exists():
        decided = [s for s in STATES[1:] if (folder / s / f"{rid}.json").exists()]
        raise ReviewError(f"review {rid} is not pending" +
                          (f": it was {decided[0]} already" if decided else ": no such review"))
    entry = json.loads(source.read_text(encoding="utf-8"))
    entry.update({"decision": state, "decided_by": by, "reason": why,
                  "decided_at": now.isoformat(), **also})
    (folder / state).mkdir(exist_ok=True)
    _write_atomic(folder / state / f"{rid}.json", entry)
    source.unlink()
    return entry


def confirm(folder: Path, inbox: Path, rid: str, retiree_id: str, by: str, why: str,
            now: datetime) -> Path:
    """Confirm review ``rid`` as the death of ``retiree_id`` (one of its candidates): the
    staff file for the connector, in ``inbox``. Returns its path."""
    pending = folder / "pending" / f"{rid}.json"
    if pending.exists():
        candidates = json.loads(pending.read_text(encoding="utf-8"))["candidates"]
        if retiree_id not in candidates:
            raise ReviewError(f"retiree {masking.show(retiree_id)} is not a candidate of review "
                              f"{rid} ({', '.join(candidates)})")
    entry = _decide(folder, rid, "confirmed", by, why, now, retiree_id=retiree_id)
    line = {"review_id": rid, "retiree_id": retiree_id, "date_of_death": entry["date_of_death"],
            "source": entry["source"], "confirmed_by": by, "reason": why,
            "confirmed_at": entry["decided_at"]}
    name = f"SR-{now.astimezone(SHANGHAI):%Y%m%d}-{rid}.jsonl"
    _write_atomic(inbox / name, line)
    return inbox / name


def dismiss(folder: Path, rid: str, by: str, why: str, now: datetime) -> dict[str, Any]:
    return _decide(folder, rid, "dismissed", by, why, now)


def home_visit_dismissals(folder: Path) -> list[dict[str, Any]]:
    """The dismissed entries of home-visit teams' death reports (each with its
    ``team_id``, ``visit_id`` and candidate), oldest decision first."""
    entries = [e for e in listing(folder, "dismissed")
               if e.get("kind") == HOME_VISIT_DECEASED and e.get("team_id")
               and e.get("visit_id") and len(e.get("candidates", ())) == 1]
    return sorted(entries, key=lambda e: (str(e.get("decided_at")), e["review_id"]))


def confirmation_event(line: bytes) -> dict[str, Any]:
    """The DeathRecorded of a staff confirmation line (RowRejected naming the field)."""
    try:
        obj = interchange.loads(line)
    except (ValueError, UnicodeDecodeError):
        raise RowRejected("line", "is not a JSON object in UTF-8") from None
    if not isinstance(obj, dict):
        raise RowRejected("line", "is not a JSON object")
    for key in ("review_id", "retiree_id", "date_of_death", "source", "confirmed_by",
                "reason", "confirmed_at"):
        if not isinstance(obj.get(key), str):
            raise RowRejected(key, "is missing or not a string")
    problem = bounds.id_problem("retiree_id", obj["retiree_id"])
    if problem:
        raise RowRejected("retiree_id", problem)
    if obj["source"] not in SOURCES:
        raise RowRejected("source", f"{masking.show(obj['source'])} is not one of "
                                    f"{sorted(SOURCES)}")
    if not STAFF_ID.fullmatch(obj["confirmed_by"]):
        raise RowRejected("confirmed_by", "is not a staff id")
    try:
        died = date.fromisoformat(obj["date_of_death"])
        at = datetime.fromisoformat(obj["confirmed_at"])
    except ValueError as exc:
        raise RowRejected("date_of_death/confirmed_at", str(exc)) from None
    if at.tzinfo is None or not bounds.EARLIEST_YEAR <= died.year <= bounds.LATEST_YEAR:
        raise RowRejected("confirmed_at", "needs its UTC offset and a date in range")
    return {"type": "DeathRecorded", "recorded_at": at.isoformat(),
            "retiree_id": obj["retiree_id"], "date_of_death": died.isoformat(),
            "source": obj["source"], "review_id": obj["review_id"],
            "confirmed_by": obj["confirmed_by"]}


def confirmed_death(folder: Path, line: bytes) -> dict[str, Any]:
    """The DeathRecorded of a staff file's line, only when the review folder holds that
    staff confirmation: the same review, retiree, date of death, source and staff id. The
    inbox is the registers' share, so a line there proves nothing by itself; the review
    folder is the connector's own, written by `lifecert review deaths confirm` only."""
    event = confirmation_event(line)
    rid = event.pop("review_id")
    by = event.pop("confirmed_by")
    if not re.fullmatch(r"[0-9a-f]{16}", rid):
        raise RowRejected("review_id", "is not a review id (16 hex digits)")
    path = folder / "confirmed" / f"{rid}.json"
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise RowRejected("review_id", f"review {rid} has no staff confirmation in the "
                          "review folder; confirm it with `lifecert review deaths "
                          "confirm`") from None
    expected = {"decision": "confirmed", "retiree_id": event["retiree_id"],
                "date_of_death": event["date_of_death"], "source": event["source"],
                "decided_by": by}
    differ = sorted(k for k, v in expected.items() if entry.get(k) != v)
    if differ:
        raise RowRejected("review_id", f"the line does not match the staff confirmation of "
                          f"review {rid} ({', '.join(differ)} differ); it was not written by "
                          f"`lifecert review deaths confirm`")
    return event
