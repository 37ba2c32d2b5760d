"""Replay: recompute every decision of a campaign from a JSON-lines event log.

The same :class:`~lifecert.domain.campaign.Campaign` the live workers use decides each
event; this module only reads lines, routes malformed ones, and hands the results to
sinks. ``replay_lines`` collects them in memory (tests, small logs); ``replay_file`` streams
them to ``instructions.jsonl``, ``status.csv``, ``rejections.jsonl`` (line, reason) and
``verdicts.jsonl`` (the ``EventRejected`` output events the live worker publishes on
``lifecert.verdicts``, in the interchange form), ``retirees.csv`` (what the campaign
report counts: status, district, channel and day of completion) and ``deaths.csv`` (who
reported each standing death, and the day it was recorded). ``replay_assistance`` folds
the assistance topic (``lifecert log dump --topic assistance_results``) with the same
:func:`lifecert.domain.assistance.fold` the projections writer applies, into
``assistance.csv`` (one row per case) and its totals: in, out, answered, overdue.
"""

from __future__ import annotations

import csv
import gc
import io
import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any

from lifecert.domain import assistance
from lifecert.domain.campaign import Campaign
from lifecert.domain.clock import cutoff
from lifecert.domain.policy import Policy, load_policy
from lifecert.domain.state import RetireeState
from lifecert.domain.verdicts import verdict
from lifecert.events.catalogue import ALL_TYPES, Event, personal_field_names
from lifecert.events.interchange import MalformedEvent, loads, parse_event, parse_line, to_json
from lifecert.events.time import SHANGHAI, local_date

InstructionSink = Callable[[Event], None]
RejectionSink = Callable[[dict[str, Any]], None]
DeadLetterSink = Callable[[dict[str, Any]], None]


class ReplayError(Exception):
    """A replay that cannot go on; the message names the file, line and field."""


@dataclass(slots=True)
class ReplayStats:
    lines: int = 0
    decided: int = 0
    skipped_after_until: int = 0
    rejected: int = 0
    dead_lettered: int = 0
    instructions: int = 0
    verdicts: int = 0
    by_instruction: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class ReplayResult:
    instructions: list[dict[str, Any]]
    statuses: dict[str, str]
    rejections: list[dict[str, Any]]
    dead_letters: list[dict[str, Any]]
    stats: ReplayStats
    verdicts: list[dict[str, Any]] = field(default_factory=list)


def rejection_record(line_no: int, event: Event, reason: str) -> dict[str, Any]:
    record: dict[str, Any] = {
        "line": line_no,
        "type": event["type"],
        "event_id": event.get("event_id"),
        "retiree_id": event.get("retiree_id"),
    }
    if "certification_id" in event:
        record["certification_id"] = event["certification_id"]
    record["reason"] = reason
    return record


def dead_letter_record(line_no: int, error: MalformedEvent, raw: str | bytes) -> dict[str, Any]:
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    raw = without_personal_data(raw.rstrip("\n"))
    return {"line": line_no, "field": error.field, "reason": error.reason, "raw": raw}


REDACTED = "[personal data removed]"


def without_personal_data(raw: str) -> str:
    """``raw`` with the values of its personal fields replaced (a dead letter is an export:
    phone and address never leave in one). A line that is not a JSON object but names an
    event type with personal fields is replaced whole."""
    types = [t for t in ALL_TYPES if personal_field_names(t) and f'"{t}"' in raw]
    if not types:
        return raw
    try:
        obj = json.loads(raw)
    except ValueError:
        obj = None
    if not isinstance(obj, dict) or obj.get("type") not in types or len(types) > 1:
        return f"{REDACTED} (a line naming {', '.join(types)} that could not be read)"
    for name in personal_field_names(obj["type"]):
        if obj.get(name) is not None:
            obj[name] = REDACTED
    return json.dumps(obj, ensure_ascii=False)


def run_replay(
    lines: Iterable[str] | Iterable[bytes],
    policy: Policy,
    *,
    until: date | None,
    on_instruction: InstructionSink,
    on_rejection: RejectionSink,
    on_dead_letter: DeadLetterSink | None,
    on_line: Callable[[int], None] | None = None,
    source: str = "events",
    on_verdict: InstructionSink | None = None,
) -> tuple[Campaign, ReplayStats]:
    """Decide ``lines`` in order. Malformed lines go to ``on_dead_letter`` or, when it is
    ``None``, stop the run with a :class:`ReplayError`. ``on_line`` is called every few
    thousand lines with the length of the lines read since its last call (for progress).
    ``on_verdict`` receives the ``EventRejected`` of each reported rejection."""
    with _without_cyclic_gc():
        return _decide_lines(
            lines, policy, until, on_instruction, on_rejection, on_dead_letter, on_line, source,
            on_verdict,
        )


@contextmanager
def _without_cyclic_gc() -> Iterator[None]:
    """The fold builds no reference cycles, and with millions of live states the cyclic
    collector's full passes cost about a fifth of a replay: switch it off meanwhile, and
    freeze what survives so that switching it back on does not start with a full pass."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.freeze()
            gc.enable()


def _decide_lines(
    lines: Iterable[str | bytes],
    policy: Policy,
    until: date | None,
    on_instruction: InstructionSink,
    on_rejection: RejectionSink,
    on_dead_letter: DeadLetterSink | None,
    on_line: Callable[[int], None] | None,
    source: str,
    on_verdict: InstructionSink | None,
) -> tuple[Campaign, ReplayStats]:
    campaign = Campaign(policy)
    stats = ReplayStats()
    by_instruction = stats.by_instruction
    until_at: datetime | None = cutoff(until) if until is not None else None
    decide = campaign.decide
    verdict_ids: set[str] = set()
    line_no = 0
    unreported = 0
    for line_no, line in enumerate(lines, 1):
        if on_line is not None:
            unreported += len(line)
            if not line_no & 0xFFF:
                on_line(unreported)
                unreported = 0
        if not line or line.isspace():
            continue
        try:
            event = parse_line(line, line_no)
        except MalformedEvent as error:
            if on_dead_letter is None:
                raise ReplayError(
                    f"{source}: {error.describe()}\n"
                    "Fix the line, or pass --dead-letters FILE to set malformed lines aside "
                    "and go on."
                ) from None
            stats.dead_lettered += 1
            on_dead_letter(dead_letter_record(line_no, error, line))
            continue
        if until_at is not None and event["recorded_at"] >= until_at:
            stats.skipped_after_until += 1
            continue
        stats.decided += 1
        outputs, rejection = decide(event)
        for output in outputs:
            by_instruction[output["type"]] = by_instruction.get(output["type"], 0) + 1
            on_instruction(output)
        if rejection is not None:
            stats.rejected += 1
            on_rejection(rejection_record(line_no, event, rejection))
            if on_verdict is not None:
                judged = verdict(event, rejection, policy)
                # Once per id, as the read model keeps them: an event redelivered for a
                # retiree not enrolled is UNKNOWN_RETIREE again, with the same verdict.
                if judged is not None and judged["event_id"] not in verdict_ids:
                    verdict_ids.add(judged["event_id"])
                    stats.verdicts += 1
                    on_verdict(judged)
    stats.lines = line_no
    if on_line is not None and unreported:
        on_line(unreported)
    if until_at is not None:
        for output in campaign.advance_to(until_at):
            by_instruction[output["type"]] = by_instruction.get(output["type"], 0) + 1
            on_instruction(output)
    stats.instructions = sum(by_instruction.values())
    return campaign, stats


def replay_lines(
    lines: Iterable[str],
    policy_name: str = "foshan-2017",
    until: date | None = None,
    *,
    dead_letters: bool = False,
) -> ReplayResult:
    """Replay in memory; instructions and rejections as their JSON-form dicts."""
    instructions: list[dict[str, Any]] = []
    rejections: list[dict[str, Any]] = []
    dead: list[dict[str, Any]] = []
    verdicts: list[dict[str, Any]] = []
    campaign, stats = run_replay(
        lines,
        load_policy(policy_name),
        until=until,
        on_instruction=lambda e: instructions.append(to_json(e)),
        on_rejection=rejections.append,
        on_dead_letter=dead.append if dead_letters else None,
        on_verdict=lambda e: verdicts.append(to_json(e)),
    )
    return ReplayResult(instructions, dict(campaign.statuses()), rejections, dead, stats,
                        verdicts)


def replay_file(
    events: Path,
    policy: Policy,
    out_dir: Path,
    *,
    until: date | None = None,
    dead_letters: Path | None = None,
    on_line: Callable[[int], None] | None = None,
    on_instruction: InstructionSink | None = None,
) -> tuple[Campaign, ReplayStats]:
    """Replay a file into ``out_dir``: instructions.jsonl, status.csv, rejections.jsonl,
    verdicts.jsonl, retirees.csv, deaths.csv.
    ``on_instruction`` also sees every instruction (e.g. to total them up)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with (
        events.open("rb") as source,
        (out_dir / "instructions.jsonl").open("w", encoding="utf-8") as instructions,
        (out_dir / "rejections.jsonl").open("w", encoding="utf-8") as rejections,
        (out_dir / "verdicts.jsonl").open("w", encoding="utf-8") as verdicts,
        _optional_writer(dead_letters) as dead,
    ):
        write = jsonl_writer(instructions, to_json)
        write_instruction = write
        if on_instruction is not None:
            also = on_instruction

            def both(event: Event) -> None:
                write(event)
                also(event)

            write_instruction = both
        campaign, stats = run_replay(
            source,
            policy,
            until=until,
            on_instruction=write_instruction,
            on_rejection=jsonl_writer(rejections),
            on_dead_letter=jsonl_writer(dead) if dead is not None else None,
            on_line=on_line,
            source=str(events),
            on_verdict=jsonl_writer(verdicts, to_json),
        )
    write_status_csv(out_dir / "status.csv", campaign.statuses())
    write_retirees_csv(out_dir / "retirees.csv", campaign.retirees.values())
    write_deaths_csv(out_dir / "deaths.csv", campaign.retirees.values())
    return campaign, stats


@dataclass(frozen=True, slots=True)
class AssistanceTotals:
    """The assistance cases of a replay: INBOUND (a partner asked Foshan), OUTBOUND
    (Foshan asked a partner), those with a result, those overdue on ``as_of``."""

    inbound: int
    outbound: int
    answered: int
    overdue: int
    as_of: date


def replay_assistance(
    events: Path,
    out_dir: Path,
    as_of: date,
    *,
    on_dead_letter: DeadLetterSink | None = None,
) -> tuple[dict[tuple[str, str], assistance.Case], AssistanceTotals]:
    """Fold the assistance topic's dump ``events`` (interchange JSON lines, log order)
    into ``out_dir/assistance.csv``; a line that is not an assistance case event goes to
    ``on_dead_letter`` or, when it is ``None``, stops the run with a :class:`ReplayError`.
    Overdue is judged on ``as_of`` (an Asia/Shanghai day)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with events.open("rb") as source:
        cases = assistance.fold(_case_events(source, str(events), on_dead_letter))
    write_assistance_csv(out_dir / "assistance.csv", cases.values(), as_of)
    totals = AssistanceTotals(
        inbound=sum(c.direction == "INBOUND" for c in cases.values()),
        outbound=sum(c.direction == "OUTBOUND" for c in cases.values()),
        answered=sum(not c.is_open for c in cases.values()),
        overdue=sum(assistance.is_overdue(c, as_of) for c in cases.values()),
        as_of=as_of)
    return cases, totals


def _case_events(lines: Iterable[bytes], source: str, on_dead_letter: DeadLetterSink | None
                 ) -> Iterator[Event]:
    for line_no, line in enumerate(lines, 1):
        if not line or line.isspace():
            continue
        try:
            try:
                obj = loads(line)
            except ValueError as exc:
                raise MalformedEvent(f"not valid JSON: {exc}") from None
            yield parse_event(obj, allowed=assistance.CASE_TYPES)
        except MalformedEvent as error:
            error = error.at_line(line_no)
            if on_dead_letter is None:
                raise ReplayError(
                    f"{source}: {error.describe()}\n"
                    "The assistance log holds only AssistanceRequested, "
                    "AssistanceAcknowledged and AssistanceResult; fix the line, or pass "
                    "--dead-letters FILE to set it aside and go on."
                ) from None
            on_dead_letter(dead_letter_record(line_no, error, line))


ASSISTANCE_HEADER = ("partner,case_id,retiree_id,direction,status,requested_at,due_on,"
                     "acknowledged_at,answered_at,outcome,result_id,received_at,receipt,"
                     "overdue\n")


def write_assistance_csv(path: Path, cases: Iterable[assistance.Case], as_of: date) -> None:
    """One row per assistance case, by partner and case id: the read model's
    ``assistance_cases`` columns (times in Asia/Shanghai, ISO 8601) and whether the case
    is overdue on ``as_of``."""
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        fh.write(ASSISTANCE_HEADER)
        for case in sorted(cases, key=lambda c: c.key):
            writer.writerow((
                case.partner, case.case_id, case.retiree_id, case.direction, case.status,
                _iso(case.requested_at), _iso(case.due_on), _iso(case.acknowledged_at),
                _iso(case.answered_at), case.outcome or "", case.result_id or "",
                _iso(case.received_at), case.receipt or "",
                "1" if assistance.is_overdue(case, as_of) else "0"))


def _iso(value: date | None) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(SHANGHAI).isoformat()
    return value.isoformat()


RETIREES_HEADER = "retiree_id,status,district,residence,channel,completed_day\n"


def write_retirees_csv(path: Path, states: Iterable[RetireeState]) -> None:
    """What the campaign report counts (``lifecert report --replay``), one row per retiree:
    status, district and residence, the channel that completed the certification and the
    Asia/Shanghai day it did (empty when none did). The same as the read model's
    ``retiree_status`` columns."""
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        fh.write(RETIREES_HEADER)
        for state in states:
            completed_at = state.completed_at
            writer.writerow((
                state.retiree_id, state.status(), state.district or "", state.residence,
                state.completed_by or "",
                "" if completed_at is None else local_date(completed_at).isoformat(),
            ))


DEATHS_HEADER = "retiree_id,source,recorded_day\n"


def write_deaths_csv(path: Path, states: Iterable[RetireeState]) -> None:
    """Who reported each standing death (``DeathRecorded.source``: a register, a family,
    a home visit...) and the Asia/Shanghai day the hub recorded it, one row per deceased
    retiree: the report's deaths by register. The same as the read model's
    ``retiree_status.death_source`` and ``death_recorded_at``."""
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        fh.write(DEATHS_HEADER)
        for state in states:
            if state.death_report is not None:
                source, at = state.death_report
                writer.writerow((state.retiree_id, source, local_date(at).isoformat()))


def write_status_csv(path: Path, statuses: Iterable[tuple[str, str]]) -> None:
    """``retiree_id,status`` rows. Ids that CSV would need to quote are quoted."""
    with path.open("w", encoding="utf-8", newline="") as fh:
        fh.write("retiree_id,status\n")
        plain: list[str] = []
        for retiree_id, status in statuses:
            if _CSV_SPECIAL.isdisjoint(retiree_id):
                plain.append(f"{retiree_id},{status}\n")
            else:
                quoted = io.StringIO()
                csv.writer(quoted, lineterminator="\n").writerow((retiree_id, status))
                plain.append(quoted.getvalue())
            if len(plain) >= 65536:
                fh.write("".join(plain))
                plain.clear()
        fh.write("".join(plain))


_CSV_SPECIAL = frozenset(',"\r\n')


def jsonl_writer(
    fh: IO[str], convert: Callable[[Any], Any] | None = None
) -> Callable[[Any], None]:
    """A function writing one record per line in lifecert's JSON-lines form (compact, UTF-8
    as is); ``convert`` first turns the record into its JSON form (e.g. ``to_json``)."""
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    write = fh.write
    if convert is None:
        def write_record(record: Any) -> None:
            write(dumps(record) + "\n")
        return write_record

    def write_converted(record: Any) -> None:
        write(dumps(convert(record)) + "\n")

    return write_converted


class _optional_writer:
    """``open(path, "w")`` when a path is given, else a context yielding ``None``."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._fh: IO[str] | None = None

    def __enter__(self) -> IO[str] | None:
        if self._path is not None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self._path.open("w", encoding="utf-8")
        return self._fh

    def __exit__(self, *exc: object) -> None:
        if self._fh is not None:
            self._fh.close()
