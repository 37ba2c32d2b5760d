"""From the flat mapping of a valid event to its typed class (:mod:`lifecert.events.types`).

:func:`from_event` takes an event the interchange parser (or the codec's decoder) already
checked and converted: it only builds the instance, and refuses fields the schema does not
have with the codec's own words. The entry points (the connector runner, the partner API,
``lifecert publish``) parse a record once this way and carry the typed event from there;
the codec then writes it without checking it again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from lifecert.events.catalogue import INPUT_TYPES, NAMESPACE
from lifecert.events.codec import InvalidEvent, UnknownEventType
from lifecert.events.interchange import parse_event
from lifecert.events.record import EventRecord
from lifecert.events.types import BY_NAME, TypedEvent

__all__ = ["from_event", "parse_typed"]


def from_event(event: Mapping[str, Any]) -> TypedEvent:
    """The typed form of a checked flat event; an :class:`EventRecord` is returned as is.

    Raises :class:`~lifecert.events.codec.InvalidEvent` for a field its type does not
    have or a required one missing (the values themselves are not checked again)."""
    if isinstance(event, EventRecord):
        return event
    type_name = event.get("type")
    cls = BY_NAME.get(type_name) if isinstance(type_name, str) else None
    if cls is None:
        raise UnknownEventType(f"no schema for event type {type_name!r}; known types: "
                               f"{', '.join(BY_NAME)}")
    fields = cls.__struct_fields__
    values = {key: value for key, value in event.items() if key != "type"}
    unknown = sorted(str(key) for key in values if key not in fields)
    if unknown:
        known = sorted(("type", *fields))
        raise InvalidEvent(
            f"invalid {type_name} event: unknown field(s) {', '.join(unknown)} "
            f"(fields of {NAMESPACE}.{type_name}: {', '.join(known)})"
        )
    try:
        return cls(**values)  # type: ignore[return-value]
    except TypeError as exc:  # a required field missing
        raise InvalidEvent(f"invalid {type_name} event: {exc}") from None


def parse_typed(obj: Any, *, allowed: Iterable[str] = INPUT_TYPES) -> TypedEvent:
    """One decoded JSON object parsed once into its typed event: the interchange parser's
    checks (:class:`~lifecert.events.interchange.MalformedEvent` naming the field), then
    :func:`from_event` (:class:`~lifecert.events.codec.InvalidEvent` for a field the
    schema does not have)."""
    return from_event(parse_event(obj, allowed=allowed))
