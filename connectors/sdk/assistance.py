"""Settings shared by the sources that open assistance cases (a partner asks Foshan to
certify someone): whose working-day calendar dates the cases, and in how many working days
they are due."""

from __future__ import annotations

from typing import Any

from connectors.sdk.base import Connector
from connectors.sdk.errors import ConfigError
from lifecert.domain.policy import PolicyError, load_policy
from lifecert.domain.working_days import WorkingCalendar


def case_calendar(connector: Connector, settings: dict[str, Any]) -> tuple[WorkingCalendar, int]:
    """(calendar, due working days) from the settings ``policy`` (default foshan-2017) and
    ``due_working_days`` (default 20, 1 to 120)."""
    where = f"connector {connector.name!r} ({connector.kind})"
    policy = connector._setting(settings, "policy", str, "foshan-2017")
    try:
        calendar = load_policy(policy).working_days
    except (PolicyError, OSError) as exc:
        raise ConfigError(f"{where}: setting 'policy': {exc}") from None
    days = connector._setting(settings, "due_working_days", int, 20)
    if not 1 <= days <= 120:
        raise ConfigError(f"{where}: setting 'due_working_days' must be 1 to 120")
    return calendar, days
