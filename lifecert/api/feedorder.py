"""The order Subscribe hands a partner its events in: the log's, across topics and across
fetches.

The feed reads several topics (statuses, payment instructions, alerts, tasks, verdicts),
each keyed by retiree id. The worker writes one decision's records in one order (its
outputs, its verdicts, then the statuses) and stamps each with its log time (Kafka's
record timestamp). A consumer's fetch brings some partitions' records and not others,
so handing over each fetch as it comes (even sorted) can deliver a retiree's status
before the release written just before it, when the release is only in the next fetch.

:class:`LogOrder` holds fetched records back until no partition can still bring an
earlier one: a record is released when every other partition either has a later record
waiting, has reached its end (its position is its high watermark), or has already
delivered a record at or after it in log time. The guarantee, across fetches: the events
of the feed come in order of (log time, topic rank, partition, offset); each partition's
own order is kept even where log times are out of step. Ties in log time (one decision's
records written within the same millisecond) follow the worker's write order through
``rank``; two decisions of one retiree within one millisecond follow ``rank`` too, which
may put the second's instruction before the first's status (docs/api.md, Order).

Pure: no Kafka client; records need ``topic``, ``partition``, ``offset`` and
``timestamp`` (milliseconds).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol


class Record(Protocol):
    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def timestamp(self) -> int: ...


Key = tuple[str, int]  # (topic, partition)


class LogOrder:
    """Records of several partitions in, log order out (see the module's text)."""

    def __init__(self, partitions: Iterable[Key], rank: Callable[[str], int] | None = None,
                 hold_at_most: int = 2000) -> None:
        self._waiting: dict[Key, deque[Any]] = {k: deque() for k in partitions}
        # log time of the last record released (or received) per partition
        self._last: dict[Key, int] = {}
        # the next offset to fetch in each partition (after the last record received)
        self._next: dict[Key, int] = {}
        self._rank = rank or (lambda _topic: 0)
        self.hold_at_most = hold_at_most

    def start_at(self, key: Key, offset: int) -> None:
        self._next[key] = offset

    def add(self, fetched: dict[Any, Sequence[Any]]) -> None:
        """One fetch's records (partition -> its records in offset order)."""
        for records in fetched.values():
            for record in records:
                key = (record.topic, record.partition)
                self._waiting.setdefault(key, deque()).append(record)
                self._next[key] = record.offset + 1

    def waiting(self, key: Key | None = None) -> int:
        if key is not None:
            return len(self._waiting.get(key, ()))
        return sum(len(q) for q in self._waiting.values())

    def full(self, key: Key) -> bool:
        """Whether the partition has enough waiting that it need not be fetched now."""
        return len(self._waiting.get(key, ())) >= self.hold_at_most

    def release(self, end_of: Callable[[Key], int | None]) -> list[Any]:
        """The records that can go now, in order. ``end_of`` is a partition's high
        watermark as last seen (None: not known yet)."""
        out: list[Any] = []
        while True:
            heads = [(self._order(q[0]), k) for k, q in self._waiting.items() if q]
            if not heads:
                return out
            order, key = min(heads)
            if not self._nothing_earlier(key, order[0], end_of):
                return out
            record = self._waiting[key].popleft()
            self._last[key] = max(self._last.get(key, order[0]), order[0])
            out.append(record)

    def _order(self, record: Any) -> tuple[int, int, str, int, int]:
        return (record.timestamp, self._rank(record.topic), record.topic, record.partition,
                record.offset)

    def _nothing_earlier(self, key: Key, at: int,
                         end_of: Callable[[Key], int | None]) -> bool:
        for other, queue in self._waiting.items():
            if other == key or queue:
                continue
            end = end_of(other)
            if end is not None and self._next.get(other, 0) >= end:
                continue  # at its end: a later record is a later write
            if self._last.get(other, -1) >= at:
                continue  # it has already passed this moment
            return False
        return True
