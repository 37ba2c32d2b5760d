"""The comparison: a register row against the roster of enrolled retirees. Pure functions.

Categories (docs/partners/death-registers.md):

- ``EXACT``: the row's citizen id AND its name are those of one enrolled retiree. The only
  category that becomes a DeathRecorded.
- ``ID_NAME_DIFFERS``: the citizen id is a retiree's, the name is not (a typing error in a
  register, a reused number, a changed name): a person decides (review queue).
- ``NAME_BIRTH_ONLY``: the row has no citizen id; name and birth date are those of one or
  more retirees (namesakes are common): a person decides.
- ``NONE``: nobody enrolled; the row concerns us no further.

A partial match never stops a pension on its own.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime


class Kind(enum.Enum):
    EXACT = "EXACT"
    ID_NAME_DIFFERS = "ID_NAME_DIFFERS"
    NAME_BIRTH_ONLY = "NAME_BIRTH_ONLY"
    NONE = "NONE"


@dataclass(frozen=True, slots=True)
class Enrolled:
    """One enrolled retiree as the comparison sees it: digests only."""

    retiree_id: str
    id_digest: str
    name_digest: str
    birth_date: date


@dataclass(frozen=True, slots=True)
class Death:
    """One register row, parsed and digested."""

    source: str                 # the DeathRecorded source: CIVIL_AFFAIRS ...
    row_ref: str                # file:line, for people and dead letters
    id_digest: str | None       # None: the register gave no citizen id
    name_digest: str
    birth_date: date | None
    date_of_death: date
    reported_at: datetime       # the register's time of registration (tz-aware)


@dataclass(frozen=True, slots=True)
class Match:
    kind: Kind
    retiree_ids: tuple[str, ...]


NO_MATCH = Match(Kind.NONE, ())


class Roster:
    """The enrolled retirees, indexed by id digest and by (name digest, birth date)."""

    __slots__ = ("by_id", "by_name_birth")

    def __init__(self, entries: Iterable[Enrolled]) -> None:
        self.by_id: dict[str, Enrolled] = {}
        by_name_birth: dict[tuple[str, date], list[str]] = {}
        for e in entries:
            self.by_id[e.id_digest] = e
            by_name_birth.setdefault((e.name_digest, e.birth_date), []).append(e.retiree_id)
        self.by_name_birth: Mapping[tuple[str, date], tuple[str, ...]] = {
            k: tuple(sorted(v)) for k, v in by_name_birth.items()}

    def __len__(self) -> int:
        return len(self.by_id)


def match(death: Death, roster: Roster) -> Match:
    """The category of ``death`` against ``roster``."""
    if death.id_digest is not None:
        enrolled = roster.by_id.get(death.id_digest)
        if enrolled is None:
            return NO_MATCH
        if enrolled.name_digest == death.name_digest:
            return Match(Kind.EXACT, (enrolled.retiree_id,))
        return Match(Kind.ID_NAME_DIFFERS, (enrolled.retiree_id,))
    if death.birth_date is None:
        return NO_MATCH
    namesakes = roster.by_name_birth.get((death.name_digest, death.birth_date), ())
    return Match(Kind.NAME_BIRTH_ONLY, namesakes) if namesakes else NO_MATCH


def death_key(retiree_id: str, date_of_death: date) -> str:
    """The record key of a retiree's death, the same whichever register reports it: the
    runner derives the event id from it, so the same death in two registers, or an extract
    delivered twice, is one event id and one effect (rule 10)."""
    return f"death:{retiree_id}:{date_of_death.isoformat()}"


def death_event(death: Death, retiree_id: str) -> dict[str, object]:
    """The DeathRecorded of an exact match, in the interchange form."""
    return {"type": "DeathRecorded", "recorded_at": death.reported_at.isoformat(),
            "retiree_id": retiree_id, "date_of_death": death.date_of_death.isoformat(),
            "source": death.source}
