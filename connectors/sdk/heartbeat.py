"""Connector heartbeats: each instance's lag, published where the read models can see it
(as Kafka Connect keeps its connectors' states in a status topic).

The runner measures its lag every few seconds (``_lag`` for a source: the partner's
backlog; the topics' ends against its offsets for a sink). :class:`Heartbeat` publishes
it to the compacted ``connector_status`` topic, keyed by the instance name, as JSON
``{"kind", "lag", "measured_at"}``: at once when the lag changed, else every
:data:`EVERY_S` seconds, so that a silent connector shows as stale. Nothing else: no
position (a partner's file name may say too much), no record. The projections keep the
latest per instance (``connector_health``), and the staff dashboard shows them.

A heartbeat never holds the connector up: it is sent without waiting for the broker; one
that cannot be sent (the topic missing, the broker away) is logged and the heartbeats
pause for :data:`PAUSE_S` seconds.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kafka.errors import KafkaError

EVERY_S = 30.0  # a heartbeat at least this often while the lag stays the same
PAUSE_S = 600.0  # after a failed send
# A connector whose last heartbeat is older than this is stale (the dashboard flags it).
STALE_AFTER_S = 4 * EVERY_S


def heartbeat_value(kind: str, lag: int | None, at: datetime) -> bytes:
    """The JSON value of a heartbeat; ``lag`` None: the connector cannot tell."""
    if at.tzinfo is None:
        raise ValueError("a heartbeat's time must carry its offset")
    return json.dumps({"kind": kind, "lag": lag, "measured_at": at.isoformat()},
                      separators=(",", ":")).encode("utf-8")


class Schedule:
    """When a heartbeat is due (pure; times in monotonic seconds): the first, one whose lag
    changed, or :data:`EVERY_S` after the last sent; none for :data:`PAUSE_S` after a
    failed send."""

    def __init__(self) -> None:
        self._last: tuple[int | None, float] | None = None  # (lag, when sent)
        self._paused_until = float("-inf")

    def due(self, lag: int | None, at: float) -> bool:
        if at < self._paused_until:
            return False
        return self._last is None or self._last[0] != lag or at - self._last[1] >= EVERY_S

    def sent(self, lag: int | None, at: float) -> None:
        self._last = (lag, at)

    def failed(self, at: float) -> None:
        self._paused_until = at + PAUSE_S


class Heartbeat:
    """Sends the heartbeats of one instance when :class:`Schedule` says; ``clock`` is
    monotonic seconds, ``now`` the wall time written in the value."""

    def __init__(
        self, producer: Any, topic: str, instance: str, kind: str, *,
        log: logging.Logger,
        clock: Callable[[], float],
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.producer = producer
        self.topic = topic
        self.key = instance.encode("utf-8")
        self.kind = kind
        self.log = log
        self.clock = clock
        self.now = now
        self.schedule = Schedule()
        # The last heartbeat sent and when (clock), until the broker acknowledges it.
        self._pending: tuple[Any, float] | None = None

    def undelivered_for(self) -> float:
        """Seconds the last heartbeat sent has waited for the broker's acknowledgement (0
        once acknowledged or failed). A heartbeat is tiny: one unacknowledged for long
        means the broker is unreachable or the topic is gone."""
        if self._pending is None:
            return 0.0
        future, sent_at = self._pending
        if future.is_done:
            self._pending = None
            return 0.0
        return self.clock() - sent_at

    def beat(self, lag: int | None) -> bool:
        """Send the heartbeat if it is due; whether one was sent."""
        if not self.schedule.due(lag, self.clock()):
            return False
        try:
            future = self.producer.send(self.topic, key=self.key,
                                        value=heartbeat_value(self.kind, lag, self.now()))
        except KafkaError as exc:
            self.schedule.failed(self.clock())
            self.log.warning(
                "cannot publish the heartbeat to %s (%s): the dashboard will show this "
                "connector as stale; does the topic exist (`lifecert topics create`)? "
                "Trying again in %.0f s", self.topic, type(exc).__name__, PAUSE_S)
            return False
        self.schedule.sent(lag, self.clock())
        if self._pending is None:
            self._pending = (future, self.clock())
        return True
