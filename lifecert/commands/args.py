"""Argument types and exit codes shared by the sub-commands."""

from __future__ import annotations

import argparse
from datetime import date

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def iso_date(text: str) -> date:
    """An argparse type: a date written YYYY-MM-DD."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got {text!r}") from None
