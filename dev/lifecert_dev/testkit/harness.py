"""What a connector's simulator offers the test kit and the demo: the partner side.

A harness starts the partner's simulator as a real process (an HTTP service, a
PostgreSQL database, a folder that files are dropped into by the simulator's command),
feeds it records, breaks it and mends it. The kit drives the connector itself as a real
process (``lifecert connectors run``) against the settings the harness returns.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lifecert.events.catalogue import Event


class Harness(ABC):
    #: The connector class's ``kind`` (its entry-point name).
    connector_kind: str = ""

    @abstractmethod
    def start(self, work_dir: Path) -> dict[str, Any]:
        """Start the simulator (a real process or service) with its state under
        ``work_dir``; return the connector's settings (the ``[connectors.NAME]`` table of
        the configuration file, without ``kind``)."""

    @abstractmethod
    def stop(self) -> None:
        """Stop the simulator and release what :meth:`start` took (idempotent)."""

    @abstractmethod
    def break_partner(self) -> None:
        """Make the partner unavailable or answer errors (process stopped, HTTP 503,
        connections refused) until :meth:`mend_partner`; records already in it stay."""

    @abstractmethod
    def mend_partner(self) -> None:
        """Undo :meth:`break_partner`."""


class SourceHarness(Harness):
    """The partner system of a source connector."""

    #: The (event type, channel or None) pairs this partner reports, e.g.
    #: ``{("CertificationRecorded", "MINISTRY_OFFSITE")}`` or ``{("RetireeEnrolled", None)}``.
    carries: frozenset[tuple[str, str | None]] = frozenset()
    #: The role (lifecert/pipeline/topics.toml) of the topic its events go to: the input
    #: log, or a partner topic (the consular system's cases: ``consular_cases``).
    topic_role: str = "events"
    #: Whether the partner can tell how many records wait after a position (the connector's
    #: ``_lag``, the ``lifecert_connector_lag`` metric). The kit then checks the number.
    tells_lag: bool = True

    @abstractmethod
    def feed(self, events: Sequence[Event]) -> None:
        """Put records into the partner system that carry exactly ``events`` (interchange
        form with ``recorded_at``, in this order), as the partner would report them: the
        connector must publish events with the same fields and the same ``recorded_at``
        (the partner's reporting time), in the same order. Returns once the partner holds
        them (committed, written, served)."""

    def feed_in_progress(self, events: Sequence[Event]) -> Callable[[], None] | None:
        """Start putting records carrying ``events`` into the partner system and stop
        halfway, as the partner looks while it is still writing them (a line without its
        end, a file being copied, a transaction not committed); return a function that
        finishes the write. ``None`` (default): the partner's protocol has no such state
        (every write is atomic) and the kit's mid-write case does not apply."""
        return None

    @abstractmethod
    def feed_malformed(self) -> str:
        """Put one record into the partner system that the connector must dead-letter
        (e.g. a missing field, a date that is not a date), after any fed before; return a
        word or phrase its dead-letter reason must contain (e.g. the field name)."""

    @abstractmethod
    def feed_hostile(self) -> list[str]:
        """Put records into the partner system, after any fed before, that a hostile or
        broken partner could send: ids with control characters or spaces, invalid
        Unicode, numbers outside Avro's range, dates and times in the year 1 or 9999, JSON
        nested deeper than a parser's stack, huge values; as many kinds as the partner's
        format can carry. Return, for each record in the order fed, a word its
        dead-letter reason must contain (the partner's field name)."""


class SinkHarness(Harness):
    """The partner system of a sink connector."""

    #: The role (lifecert/pipeline/topics.toml) of the topic the sink consumes.
    topic_role: str = ""

    @abstractmethod
    def sample_events(self, count: int, seed: int) -> list[Event]:
        """``count`` valid events for the topic, each with its own ``event_id``,
        ``recorded_at`` and a ``retiree_id`` (the record key)."""

    @abstractmethod
    def applied(self) -> list[str]:
        """The event ids the partner system holds as applied, once per application (so a
        record applied twice appears twice)."""
