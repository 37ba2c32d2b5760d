"""Campaign policies as data: a calendar and rule switches, loaded from TOML.

The policies shipped with lifecert live in ``lifecert/policies/NAME.toml``; ``load_policy``
also takes a path, so a bureau can try a draft policy without a release.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import date, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from lifecert.domain.working_days import WorkingCalendar
from lifecert.events.catalogue import enum_symbols
from lifecert.events.time import Month, parse_month, to_utc

HOME_VISIT_SWEEP = "HOME_VISIT_SWEEP"
DEADLINE = "DEADLINE"


class PolicyError(ValueError):
    """A policy file that cannot be used; the message names the file and the key."""


@dataclass(frozen=True, slots=True)
class Moment:
    """A clock moment of the campaign: an instant and what is decided at it."""

    at: datetime
    kind: str


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    cycle: int
    timezone: str
    scope_pension_start_before: date
    window_opens: date
    deadline: date
    deadline_moment: datetime
    hold_effective_month: Month
    home_visit_moment: datetime
    employer_only_schemes: frozenset[str]
    employer_only_categories: frozenset[str]
    employer_channels: frozenset[str]
    document_channels: frozenset[str]
    home_visit_residences: frozenset[str]
    home_visit_min_age: int
    home_visit_if_disabled: bool
    holds: bool
    home_visits: bool
    fraud_checks: bool
    overpayment_checks: bool
    working_days: WorkingCalendar
    # Issue 13: a consular case approved by staff completes its CONSULATE certification
    # without the mailed form 2 (the China Consular app, 2021 on); optional, default off.
    consular_app_completes: bool = False
    # Issue 14: the notice lets a district lower the home-visit age (rule 9); a district not
    # listed keeps the city's ``home_visit_min_age``. Optional table:
    # [rules.home_visit_min_age_by_district].
    home_visit_min_age_by_district: tuple[tuple[str, int], ...] = ()
    # Issue 13: Foshan's OUTBOUND assistance requests (lifecert.domain.assistance_requests):
    # from ``assistance_ask_on`` a retiree living on a partner's side (residence -> partner)
    # who has not certified is asked about, due within so many working days. Optional
    # table [assistance]; without it nobody is asked.
    assistance_ask_on: date | None = None
    assistance_due_working_days: int = 20
    assistance_partners: tuple[tuple[str, str], ...] = ()

    def home_visit_age(self, district: str | None) -> int:
        """The home-visit age limit (rule 9) for a retiree of ``district`` (None: no
        district, the city's limit)."""
        for name, age in self.home_visit_min_age_by_district:
            if name == district:
                return age
        return self.home_visit_min_age

    @property
    def moments(self) -> tuple[Moment, ...]:
        """The clock moments in time order (switched-off rules have none)."""
        moments = []
        if self.home_visits:
            moments.append(Moment(self.home_visit_moment, HOME_VISIT_SWEEP))
        if self.holds:
            moments.append(Moment(self.deadline_moment, DEADLINE))
        return tuple(sorted(moments, key=lambda m: m.at))


def available_policies() -> list[str]:
    folder = resources.files("lifecert") / "policies"
    return sorted(p.name[: -len(".toml")] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_policy(name_or_path: str) -> Policy:
    """Load a shipped policy by name (``foshan-2017``) or a policy file by path."""
    path = Path(name_or_path)
    if path.suffix == ".toml" and path.exists():
        text, origin = path.read_text(encoding="utf-8"), str(path)
    else:
        resource = resources.files("lifecert") / "policies" / f"{name_or_path}.toml"
        if not resource.is_file():
            raise PolicyError(
                f"unknown policy {name_or_path!r}: known policies are "
                f"{', '.join(available_policies())}, or give the path of a .toml file"
            )
        text, origin = resource.read_text(encoding="utf-8"), f"policy {name_or_path}"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{origin}: not valid TOML: {exc}") from exc
    return _policy_from(data, origin)


def _policy_from(data: dict[str, Any], origin: str) -> Policy:
    def get(section: str | None, key: str, kind: type | tuple[type, ...]) -> Any:
        table = data if section is None else data.get(section, {})
        where = key if section is None else f"{section}.{key}"
        if key not in table:
            raise PolicyError(f"{origin}: missing key {where!r}")
        value = table[key]
        if not isinstance(value, kind) or (kind is date and isinstance(value, datetime)):
            raise PolicyError(f"{origin}: key {where!r} must be {_kind_name(kind)}, got {value!r}")
        return value

    def aware(section: str, key: str) -> datetime:
        value = get(section, key, datetime)
        if value.tzinfo is None:
            raise PolicyError(f"{origin}: key '{section}.{key}' needs a UTC offset, e.g. +08:00")
        return to_utc(value)

    def symbols(section: str, key: str, enum_name: str) -> frozenset[str]:
        values = get(section, key, list)
        known = enum_symbols(enum_name)
        for value in values:
            if value not in known:
                raise PolicyError(
                    f"{origin}: key '{section}.{key}' has {value!r}, not one of {', '.join(known)}"
                )
        return frozenset(values)

    try:
        hold_month = parse_month(get("calendar", "hold_effective_month", str))
    except ValueError as exc:
        raise PolicyError(f"{origin}: key 'calendar.hold_effective_month': {exc}") from exc
    policy = Policy(
        name=get(None, "name", str),
        cycle=get(None, "cycle", int),
        timezone=get(None, "timezone", str),
        scope_pension_start_before=get("calendar", "scope_pension_start_before", date),
        window_opens=get("calendar", "window_opens", date),
        deadline=get("calendar", "deadline", date),
        deadline_moment=aware("calendar", "deadline_moment"),
        hold_effective_month=hold_month,
        home_visit_moment=aware("calendar", "home_visit_moment"),
        employer_only_schemes=symbols("rules", "employer_only_schemes", "Scheme"),
        employer_only_categories=symbols("rules", "employer_only_categories", "Category"),
        employer_channels=symbols("rules", "employer_channels", "Channel"),
        document_channels=symbols("rules", "document_channels", "Channel"),
        home_visit_residences=symbols("rules", "home_visit_residences", "Residence"),
        home_visit_min_age=get("rules", "home_visit_min_age", int),
        home_visit_if_disabled=get("rules", "home_visit_if_disabled", bool),
        holds=get("switches", "holds", bool),
        home_visits=get("switches", "home_visits", bool),
        fraud_checks=get("switches", "fraud_checks", bool),
        overpayment_checks=get("switches", "overpayment_checks", bool),
        working_days=_working_calendar(get, origin),
        consular_app_completes=_optional_switch(data, "consular_app_completes", origin),
        home_visit_min_age_by_district=_ages_by_district(data, origin),
        **_assistance(data, origin),
    )
    if policy.timezone != "Asia/Shanghai":
        raise PolicyError(f"{origin}: only timezone 'Asia/Shanghai' is supported")
    if policy.window_opens > policy.deadline:
        raise PolicyError(f"{origin}: calendar.window_opens is after calendar.deadline")
    ask_on = policy.assistance_ask_on
    if ask_on is not None and not policy.window_opens <= ask_on <= policy.deadline:
        raise PolicyError(f"{origin}: key 'assistance.ask_on' ({ask_on}) must be within the "
                          f"window, calendar.window_opens to calendar.deadline")
    return policy


def _assistance(data: dict[str, Any], origin: str) -> dict[str, Any]:
    """[assistance]: ask_on (a date), due_working_days (1 to 120), partners (a table
    RESIDENCE = "PARTNER", a known Residence other than FOSHAN)."""
    table = data.get("assistance")
    if table is None:
        return {}
    if not isinstance(table, dict):
        raise PolicyError(f"{origin}: [assistance] must be a table, got {table!r}")
    ask_on, due = table.get("ask_on"), table.get("due_working_days", 20)
    if not isinstance(ask_on, date) or isinstance(ask_on, datetime):
        raise PolicyError(f"{origin}: key 'assistance.ask_on' must be a date (YYYY-MM-DD), "
                          f"got {ask_on!r}")
    if type(due) is not int or not 1 <= due <= 120:
        raise PolicyError(f"{origin}: key 'assistance.due_working_days' must be 1 to 120 "
                          f"working days, got {due!r}")
    partners = table.get("partners", {})
    if not isinstance(partners, dict) or not partners:
        raise PolicyError(f"{origin}: [assistance.partners] must be a table of RESIDENCE = "
                          f"\"PARTNER\" (e.g. MACAU = \"MACAU-SSF\"), got {partners!r}")
    known = [r for r in enum_symbols("Residence") if r != "FOSHAN"]
    for residence, partner in partners.items():
        if residence not in known:
            raise PolicyError(f"{origin}: [assistance.partners] has {residence!r}, not one "
                              f"of {', '.join(known)}")
        if not isinstance(partner, str) or not partner.strip():
            raise PolicyError(f"{origin}: [assistance.partners] {residence} must name a "
                              f"partner (its connector's agency id), got {partner!r}")
    return {"assistance_ask_on": ask_on, "assistance_due_working_days": due,
            "assistance_partners": tuple(sorted(partners.items()))}


def _optional_switch(data: dict[str, Any], key: str, origin: str) -> bool:
    value = data.get("switches", {}).get(key, False)
    if type(value) is not bool:
        raise PolicyError(f"{origin}: key 'switches.{key}' must be true or false, got "
                          f"{value!r}")
    return value


def _ages_by_district(data: dict[str, Any], origin: str) -> tuple[tuple[str, int], ...]:
    """[rules.home_visit_min_age_by_district]: district -> age limit, each a known District
    symbol and an age from 60 to the city's limit (a district may lower it, never raise it)."""
    rules = data.get("rules", {})
    table = rules.get("home_visit_min_age_by_district", {})
    where = "rules.home_visit_min_age_by_district"
    if not isinstance(table, dict):
        raise PolicyError(f"{origin}: [{where}] must be a table of DISTRICT = age, got "
                          f"{table!r}")
    known = enum_symbols("District")
    city = rules.get("home_visit_min_age")
    ages = []
    for district, age in sorted(table.items()):
        if district not in known:
            raise PolicyError(f"{origin}: [{where}] has {district!r}, not one of "
                              f"{', '.join(known)}")
        if type(age) is not int or not 60 <= age <= (city if type(city) is int else 120):
            raise PolicyError(f"{origin}: [{where}] {district} = {age!r}: an age from 60 to the "
                              f"city's home_visit_min_age ({city}); a district may lower the "
                              f"limit, not raise it")
        ages.append((district, age))
    return tuple(ages)


def _working_calendar(get: Any, origin: str) -> WorkingCalendar:
    first, last = get("working_days", "first_day", date), get("working_days", "last_day", date)
    if first > last:
        raise PolicyError(f"{origin}: working_days.first_day is after working_days.last_day")

    def days(key: str) -> frozenset[date]:
        values = get("working_days", key, list)
        for value in values:
            if not isinstance(value, date) or isinstance(value, datetime):
                raise PolicyError(f"{origin}: key 'working_days.{key}' must list dates "
                                  f"(YYYY-MM-DD), got {value!r}")
            if not first <= value <= last:
                raise PolicyError(f"{origin}: key 'working_days.{key}' has {value}, outside "
                                  f"first_day..last_day ({first} to {last})")
        return frozenset(values)

    holidays, make_up = days("holidays"), days("make_up_workdays")
    if both := sorted(holidays & make_up):
        raise PolicyError(f"{origin}: {both[0]} is both a holiday and a make-up working day "
                          f"in [working_days]")
    return WorkingCalendar(first, last, holidays, make_up)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", bool: "true or false", list: "a list",
             date: "a date (YYYY-MM-DD)", datetime: "a date-time with offset"}
    if isinstance(kind, tuple):
        return " or ".join(names.get(k, k.__name__) for k in kind)
    return names.get(kind, kind.__name__)
