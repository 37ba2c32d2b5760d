"""Argument types and exit codes shared by the sub-commands."""

from __future__ import annotations

import argparse
from datetime import date, datetime

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def iso_date(text: str) -> date:
    """An argparse type: a date written YYYY-MM-DD."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got {text!r}") from None


def aware_time(text: str) -> datetime:
    """An argparse type: an ISO 8601 time with its UTC offset."""
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time") from None
    if at.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no UTC offset; add +08:00")
    return at
