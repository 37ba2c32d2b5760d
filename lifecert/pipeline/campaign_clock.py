"""A campaign clock that is not the wall clock: the sandbox's and the drills' time.

A clock file (JSON) pins an instant of the campaign to an instant of the wall clock:

    {"campaign_at": "2017-05-02T09:00:00+08:00", "wall_at": "2026-12-07T05:00:00+00:00"}

and from then on the campaign's time runs at the wall clock's pace from there: a partner
trying the API in a sandbox set to 2 May 2017 submits on 2 May 2017, not nine years after
the deadline. The API server (``--clock-file``: the ``recorded_at`` it stamps and the
future-time tolerance) and the scheduler (``lifecert clock run --clock-file``: the
moments it publishes) read the same file, so they agree on the time. Without a file,
the wall clock.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path

from lifecert.events.time import SHANGHAI

Clock = Callable[[], datetime]


class ClockFileError(ValueError):
    """A clock file that cannot be read; ``str()`` says which file and what to do."""


def wall_clock() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class CampaignClock:
    campaign_at: datetime  # the campaign's time when the wall clock showed wall_at
    wall_at: datetime

    def now(self) -> datetime:
        return self.campaign_at + (datetime.now(UTC) - self.wall_at)

    @classmethod
    def starting(cls, day: date | datetime) -> CampaignClock:
        """A clock that shows ``day`` (09:00 Asia/Shanghai for a date) now."""
        at = day if isinstance(day, datetime) else datetime.combine(day, time(9), SHANGHAI)
        if at.tzinfo is None:
            raise ClockFileError(f"the campaign time {at.isoformat()} has no UTC offset")
        return cls(at, datetime.now(UTC))

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps({"campaign_at": self.campaign_at.isoformat(),
                                   "wall_at": self.wall_at.isoformat()}) + "\n")
        tmp.replace(path)

    @classmethod
    def read(cls, path: Path) -> CampaignClock:
        try:
            data = json.loads(path.read_text())
            campaign_at = datetime.fromisoformat(data["campaign_at"])
            wall_at = datetime.fromisoformat(data["wall_at"])
        except OSError as exc:
            raise ClockFileError(f"cannot read the clock file {path}: {exc.strerror}") from None
        except (ValueError, TypeError, KeyError) as exc:
            raise ClockFileError(
                f"{path}: not a clock file ({exc!s}); expected JSON with \"campaign_at\" and "
                "\"wall_at\" as ISO 8601 times with UTC offsets"
            ) from None
        if campaign_at.tzinfo is None or wall_at.tzinfo is None:
            raise ClockFileError(f"{path}: campaign_at and wall_at need UTC offsets")
        return cls(campaign_at, wall_at)


def clock_of(path: Path | None) -> Clock:
    """The clock to use: the clock file's (re-read at every call, so that rewriting the
    file moves a running server's clock), or the wall clock without one."""
    if path is None:
        return wall_clock
    CampaignClock.read(path)  # refuse a bad file at start-up, not at the first call

    def now() -> datetime:
        return CampaignClock.read(path).now()

    return now
