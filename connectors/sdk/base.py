"""The two kinds of connector, and the hooks a connector fills.

A connector is a class with a few protected hooks; the runner (:mod:`connectors.sdk.runner`)
owns everything else: the loop, the Kafka producer and consumer, checkpoints, retries with
backoff, dead letters, metrics and a graceful stop on SIGTERM (as Debezium's
``BaseSourceTask`` owns ``poll`` and calls the connector's hooks).

Source connector (partner -> events topic)::

    class MinistryOffsite(SourceConnector):
        kind = "ministry-offsite"                 # the entry-point name
        source_agency = "MOHRSS-OFFSITE"          # envelope.source_agency of its events

        def _configure(self, settings): ...       # read self-validating settings
        def _open(self): ...                      # connect to the partner
        def _poll(self, position, max_records): ... # -> records after `position`
        def _to_events(self, record): ...         # -> interchange dicts, or RecordRejected
        def _committed(self, records, rejected, position): ...  # optional: receipts, acks
        def _close(self): ...

The runner calls ``_poll(position)`` with the last committed checkpoint (``None`` on first
start), turns each record into events with ``_to_events``, gives every event a
deterministic id (UUIDv5 of the connector instance, the record's ``key`` and the event's
index in the record), publishes them with the idempotent producer, and only once the
broker acknowledged all of them writes the position of the last record as the new
checkpoint. A record read twice (after a crash) therefore yields the same event ids, and
the worker applies an event id once.

Sink connector (topic -> partner): ``_apply(records)`` applies a batch to the partner; the
runner commits the consumed offsets after it returns. A sink that can store the offsets
in the partner system in the same transaction as its effect (exactly once) overrides
``_stored_offsets`` and the runner starts from those.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from connectors.sdk.errors import ConfigError
from lifecert.events.catalogue import INPUT_TYPES, Event

# A checkpoint: any JSON value (a cursor string, an outbox id, {"file": ..., "line": ...}).
Position = Any
# ``Event``: an event in the interchange form of DESIGN.md ({"type": "CertificationRecorded",
# ...}), declared in lifecert.events.catalogue. ``event_id`` is set by the runner;
# ``recorded_at`` may be set by the connector (the partner's own time of reporting, ISO 8601
# with offset), else the runner stamps now.


@dataclass(frozen=True, slots=True)
class PartnerRecord:
    """One record as the partner system gave it.

    ``key``: the partner's stable identity of the record (outbox id, feed item id,
    "file name:line"); the event ids derive from it. ``position``: the checkpoint to
    store once this record and every one before it are published. ``raw``: the record's
    bytes as received (a dead letter keeps them). ``data``: the connector's parsed form.
    """

    key: str
    position: Position
    raw: bytes
    data: Any = None


@dataclass(frozen=True, slots=True)
class SinkRecord:
    """One record of a topic the sink consumes; ``event`` is the decoded value (``None``
    when it could not be decoded: the runner dead-letters such a record before the sink
    sees it)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    event: dict[str, Any] = field(default_factory=dict)


class Connector:
    """What source and sink connectors share: identity, settings, lifecycle hooks."""

    #: The connector's type name: its entry point in group ``lifecert.connectors`` and the
    #: ``kind`` of its instances in the configuration file.
    kind: ClassVar[str] = ""
    #: One line for ``lifecert connectors list``.
    description: ClassVar[str] = ""

    def __init__(self, name: str, settings: Mapping[str, Any]) -> None:
        #: The instance name from the configuration file (``[connectors.NAME]``).
        self.name = name
        self.log = logging.getLogger(f"lifecert.connectors.{name}")
        self._settings_read: set[str] = set()
        self._configure(dict(settings))
        unknown = sorted(set(settings) - self._settings_read)
        if unknown:
            known = ", ".join(sorted(self._settings_read)) or "none"
            raise ConfigError(f"connector {name!r} ({self.kind}): unknown setting(s) "
                              f"{unknown} (known: {known}); check the spelling")

    # -- hooks -------------------------------------------------------------------
    def _configure(self, settings: dict[str, Any]) -> None:
        """Read the settings (secrets already resolved from the environment); raise
        :class:`ConfigError` naming the key for a missing or wrong one."""

    def _open(self) -> None:
        """Connect to the partner system (raise PartnerUnavailable to be retried)."""

    def _close(self) -> None:
        """Release connections; called once, also after a failure."""

    def _check(self) -> list[str]:
        """Problems that would stop this connector working (``lifecert connectors
        check``): each a sentence saying what is wrong and what to do. Default: try
        ``_open`` and ``_close``."""
        from connectors.sdk.errors import PartnerUnavailable

        try:
            self._open()
        except PartnerUnavailable as exc:
            return [f"{self.name}: partner system unavailable: {exc}"]
        finally:
            self._close()
        return []

    # -- helpers for subclasses ------------------------------------------------------
    def _setting(
        self, settings: Mapping[str, Any], key: str, kind: type | tuple[type, ...],
        default: Any = ...,
    ) -> Any:
        """``settings[key]`` checked to be of ``kind``; ``default`` when absent (required
        when no default is given). A setting never read this way is refused as unknown."""
        self._settings_read.add(key)
        if key not in settings:
            if default is ...:
                raise ConfigError(self._missing(settings, key))
            return default
        value = settings[key]
        if isinstance(kind, tuple) and float in kind and isinstance(value, int):
            return value
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            raise ConfigError(f"connector {self.name!r} ({self.kind}): setting {key!r} must "
                              f"be {names}, got {value!r}")
        return value


    def _missing(self, settings: Mapping[str, Any], key: str) -> str:
        """A required setting is absent: name it, the keys the file gave that no setting
        read so far (a misspelling among them is named), and the known keys so far."""
        import difflib

        given = sorted(set(settings) - self._settings_read)
        text = f"connector {self.name!r} ({self.kind}): setting {key!r} is required"
        close = difflib.get_close_matches(key, given, n=1, cutoff=0.6)
        if close:
            text += f"; {close[0]!r} looks like a misspelling of it"
        if given:
            text += f" (settings given and not known so far: {', '.join(given)})"
        return text + f"; known settings so far: {', '.join(sorted(self._settings_read))}"


class SourceConnector(Connector, ABC):
    """Reads a partner system and turns its records into canonical events."""

    #: ``envelope.source_agency`` of every event this connector publishes.
    source_agency: ClassVar[str] = ""
    #: The event types it may publish (each is routed to the topic that carries it):
    #: input events by default; a partner's own records (the consular system's cases, the
    #: assistance cases' requests and acknowledgements) when the connector names them.
    publishes: ClassVar[tuple[str, ...]] = INPUT_TYPES
    #: How long the runner waits between polls that returned nothing (seconds); ``None``:
    #: the instance's ``[runner] idle_interval`` (default 1 s). The connector may wake
    #: earlier by overriding :meth:`_wait` (e.g. LISTEN/NOTIFY).
    idle_interval: float | None = None

    @abstractmethod
    def _poll(self, position: Position | None, max_records: int) -> Sequence[PartnerRecord]:
        """Up to ``max_records`` records after ``position`` (``None``: from the start),
        in the partner's order; an empty sequence when there is nothing new. Raise
        :class:`PartnerUnavailable` on a transient failure."""

    @abstractmethod
    def _to_events(self, record: PartnerRecord) -> list[Event]:
        """The events of one record, in the interchange form (usually one). Raise
        :class:`RecordRejected` with a precise reason (field, value, what to do) for a
        record that cannot be mapped; the runner dead-letters it and goes on."""

    def _committed(
        self,
        records: Sequence[PartnerRecord],
        rejected: Sequence[tuple[PartnerRecord, str]],
        position: Position,
    ) -> None:
        """Called after the checkpoint ``position`` is durable, with the batch's records
        and the rejected ones with their reasons (write a receipt, move a file, confirm a
        cursor). Must be idempotent: after a crash it may be called again for a batch."""

    def _wait(self, timeout: float) -> None:
        """Block until the partner may have news, at most ``timeout`` seconds."""
        import time

        time.sleep(timeout)

    def _lag(self, position: Position | None) -> int | None:
        """How many records the partner holds after ``position``, if it can tell."""
        return None


class SinkConnector(Connector, ABC):
    """Applies the records of lifecert topics to a partner system."""

    #: Roles of the topics consumed (see lifecert/pipeline/topics.toml), e.g.
    #: ``("payment_instructions",)``.
    topics: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def _apply(self, records: Sequence[SinkRecord]) -> Sequence[tuple[SinkRecord, str]]:
        """Apply a batch (in offset order within each partition) to the partner and
        return the records the partner refused for good, each with the reason (the runner
        dead-letters them). Raise :class:`PartnerUnavailable` to have the whole batch
        retried: the partner side must therefore apply a record at most once by its
        ``event_id`` (an idempotency key), whatever the retries."""

    def _apply_through(
        self, records: Sequence[SinkRecord], next_offsets: Mapping[tuple[str, int], int]
    ) -> Sequence[tuple[SinkRecord, str]]:
        """Apply ``records`` (maybe none) as :meth:`_apply` does; ``next_offsets`` are the
        offsets to resume from per (topic, partition) once this batch is applied, counting
        the records the runner dead-lettered itself (undecodable). An exactly-once sink
        overrides this to store them in the same transaction as the effects; the runner
        then calls it even for a batch of nothing but undecodable records, so that those
        are not read (and dead-lettered) again after a restart."""
        return self._apply(records) if records else []

    def _stored_offsets(self) -> Mapping[tuple[str, int], int] | None:
        """For an exactly-once sink: the next offset to consume per (topic, partition), as
        stored in the partner system with the effects. ``None`` (default): the runner's
        checkpoint topic holds them."""
        return None
