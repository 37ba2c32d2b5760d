"""Playing a campaign log through the partner systems, in an order that replay agrees with.

The demo and the end-to-end test feed a generated campaign (one JSON-lines log) to the
simulated partner systems, whose connectors publish it, instead of publishing the file
directly. Each partner's connector keeps its partner's order, but two partners run side by
side: if the pension master's enrollment of a retiree and the province's certification of
the same retiree were fed at once, the certification could reach the log first. So the log
is cut into *windows* and fed one window at a time, each window starting only once every
connector has published the previous one:

- a window never holds events of one retiree from two different sources, so each retiree's
  events keep their log order (the fold decides each retiree on its own);
- a window never straddles a clock moment, so each moment falls between the same events as
  in replay; the scheduler publishes the moment's ticks before the next window.

Events no door carries yet are published by the playback itself as ``direct`` events;
the demo counts and prints them (``published directly: N``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from lifecert.events.catalogue import Event

DIRECT = "direct"


@dataclass
class Window:
    """Events to feed at once, by source, each in log order; ``starts_at`` is the
    ``recorded_at`` of its first event (moments at or before it are published first)."""

    starts_at: datetime
    by_source: dict[str, list[Event]] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return sum(len(events) for events in self.by_source.values())


def router(carries: Mapping[str, Iterable[tuple[str, str | None]]]) -> Callable[[Event], str]:
    """``source_of(event)``: the source whose harness carries the event's (type, detail),
    the detail being its ``channel`` (certifications) or its ``source`` (deaths: each
    register, SSF), else the source carrying (type, ``None``) (any detail), else
    :data:`DIRECT`."""
    table: dict[tuple[str, str | None], str] = {}
    for source, pairs in carries.items():
        for pair in pairs:
            if pair in table:
                raise ValueError(f"{pair} is carried by both {table[pair]} and {source}")
            table[pair] = source

    def source_of(event: Event) -> str:
        detail = event.get("channel") or event.get("source")
        found = table.get((event["type"], detail)) if detail is not None else None
        if found is None:
            found = table.get((event["type"], None))
        return found or DIRECT

    return source_of


def plan_windows(
    events: Iterable[Event],
    source_of: Callable[[Event], str],
    moments: Sequence[datetime],
) -> list[Window]:
    """Cut ``events`` (in log order, ``recorded_at`` aware datetimes) into windows as the
    module doc says, as few as those two rules allow."""
    pending = sorted(moments)
    windows: list[Window] = []
    current: Window | None = None
    owner: dict[str, str] = {}  # retiree -> source within the current window
    for event in events:
        source = source_of(event)
        at = event["recorded_at"]
        retiree = event["retiree_id"]
        crossed = bool(pending) and at >= pending[0]
        clash = owner.get(retiree, source) != source
        if current is None or crossed or clash:
            while pending and at >= pending[0]:
                pending.pop(0)
            current = Window(at)
            windows.append(current)
            owner = {}
        owner[retiree] = source
        current.by_source.setdefault(source, []).append(event)
    return windows
