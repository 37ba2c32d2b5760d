"""Where the report's rows come from: the files ``lifecert replay --out`` writes (offline),
or the PostgreSQL read models (``projections.queries.report_rows``)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

from lifecert.replay import DEATHS_HEADER, RETIREES_HEADER
from lifecert.report.figures import DeathGroup, InstructionGroup, RetireeGroup

_COLUMNS = tuple(RETIREES_HEADER.strip().split(","))
_DEATH_COLUMNS = tuple(DEATHS_HEADER.strip().split(","))


class SourceError(ValueError):
    """A report source that cannot be read; the message names the file, line and field."""


def _replay_file(out_dir: Path, name: str) -> Path:
    """``out_dir/name``, a file `lifecert replay --out` writes; refused when missing."""
    path = out_dir / name
    if not path.is_file():
        raise SourceError(
            f"{path}: not found. The report reads the {name} that `lifecert replay` "
            "writes (from this version on): run `lifecert replay ... --out "
            f"{out_dir}` again.")
    return path


def replay_retirees(out_dir: Path) -> list[RetireeGroup]:
    """The retirees of a replay output (``retirees.csv``), grouped."""
    path = _replay_file(out_dir, "retirees.csv")
    counts: dict[tuple[str, str | None, str, str | None, date | None], int] = {}
    with path.open(encoding="utf-8", newline="") as fh:
        rows = csv.reader(fh)
        header = next(rows, None)
        if header is None or tuple(header) != _COLUMNS:
            raise SourceError(f"{path}:1: the header must be {','.join(_COLUMNS)}")
        for line_no, row in enumerate(rows, 2):
            key = _retiree_key(path, line_no, row)
            counts[key] = counts.get(key, 0) + 1
    return [RetireeGroup(*key, n=n) for key, n in counts.items()]


def _retiree_key(path: Path, line_no: int, row: list[str]
                 ) -> tuple[str, str | None, str, str | None, date | None]:
    if len(row) != len(_COLUMNS):
        raise SourceError(f"{path}:{line_no}: {len(row)} fields, expected {len(_COLUMNS)}")
    _, status, district, residence, channel, day = row
    if not status or not residence:
        field = "status" if not status else "residence"
        raise SourceError(f"{path}:{line_no}: field {field!r} is empty")
    completed: date | None = None
    if day:
        try:
            completed = date.fromisoformat(day)
        except ValueError:
            raise SourceError(f"{path}:{line_no}: field 'completed_day': {day!r} is not a "
                              "date YYYY-MM-DD") from None
    return status, district or None, residence, channel or None, completed


def replay_deaths(out_dir: Path) -> list[DeathGroup]:
    """The standing deaths of a replay output (``deaths.csv``), grouped by source and day."""
    path = _replay_file(out_dir, "deaths.csv")
    counts: dict[tuple[str, date], int] = {}
    with path.open(encoding="utf-8", newline="") as fh:
        rows = csv.reader(fh)
        header = next(rows, None)
        if header is None or tuple(header) != _DEATH_COLUMNS:
            raise SourceError(f"{path}:1: the header must be {','.join(_DEATH_COLUMNS)}")
        for line_no, row in enumerate(rows, 2):
            if len(row) != len(_DEATH_COLUMNS):
                raise SourceError(f"{path}:{line_no}: {len(row)} fields, expected "
                                  f"{len(_DEATH_COLUMNS)}")
            _, source, day = row
            try:
                recorded = date.fromisoformat(day)
            except ValueError:
                raise SourceError(f"{path}:{line_no}: field 'recorded_day': {day[:20]!r} is "
                                  "not a date YYYY-MM-DD") from None
            counts[(source, recorded)] = counts.get((source, recorded), 0) + 1
    return [DeathGroup(source, day, n) for (source, day), n in counts.items()]


def replay_instructions(out_dir: Path) -> list[InstructionGroup]:
    """The instructions of a replay output (``instructions.jsonl``), grouped by type,
    reason and instant."""
    path = out_dir / "instructions.jsonl"
    if not path.is_file():
        raise SourceError(f"{path}: not found: is {out_dir} the --out folder of "
                          "`lifecert replay`?")
    sums: dict[tuple[str, str | None, datetime], list[int]] = {}
    for line_no, obj in _json_lines(path):
        kind, reason, at, fen, months = _instruction(path, line_no, obj)
        acc = sums.setdefault((kind, reason, at), [0, 0, 0])
        acc[0] += 1
        acc[1] += fen
        acc[2] += months
    return [InstructionGroup(kind, at, reason, n, fen, months)
            for (kind, reason, at), (n, fen, months) in sums.items()]


def _json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as exc:
                raise SourceError(f"{path}:{line_no}: not JSON ({exc})") from None
            if not isinstance(obj, dict):
                raise SourceError(f"{path}:{line_no}: not a JSON object")
            yield line_no, obj


def _instruction(path: Path, line_no: int, obj: dict[str, Any]
                 ) -> tuple[str, str | None, datetime, int, int]:
    kind, reason, at_text = obj.get("type"), obj.get("reason"), obj.get("recorded_at")
    if not isinstance(kind, str):
        raise SourceError(f"{path}:{line_no}: field 'type' missing or not a string")
    try:
        at = datetime.fromisoformat(at_text) if isinstance(at_text, str) else None
    except ValueError:
        at = None
    if at is None or at.tzinfo is None:
        raise SourceError(f"{path}:{line_no}: field 'recorded_at' must be a time with its "
                          "offset, e.g. 2017-07-01T00:00:00+08:00")
    fen = obj.get("backpay_amount_fen", obj.get("amount_fen", 0))
    months = obj.get("backpay_months", obj.get("months", []))
    if not isinstance(fen, int) or isinstance(fen, bool):
        raise SourceError(f"{path}:{line_no}: the amount must be whole fen")
    if not isinstance(months, list):
        raise SourceError(f"{path}:{line_no}: the months must be a list")
    if reason is not None and not isinstance(reason, str):
        raise SourceError(f"{path}:{line_no}: field 'reason' must be a string")
    return kind, reason, at, fen, len(months)


def database_rows(
    retirees: list[tuple[str, str | None, str, str | None, date | None, int]],
    instructions: list[tuple[str, str | None, datetime, int, int, int]],
    deaths: list[tuple[str | None, date | None, int]] | None = None,
) -> tuple[list[RetireeGroup], list[InstructionGroup], list[DeathGroup]]:
    """The rows of ``projections.queries.report_rows`` as the figures' row types."""
    return (
        [RetireeGroup(s, d, r, c, day, n) for s, d, r, c, day, n in retirees],
        [InstructionGroup(t, at, reason, n, fen, months)
         for t, reason, at, n, fen, months in instructions],
        [DeathGroup(source or "", day, n) for source, day, n in deaths or []],
    )
