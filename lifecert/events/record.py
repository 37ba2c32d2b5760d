"""The base of the typed event classes (generated into :mod:`lifecert.events.types`).

A typed event is a frozen ``msgspec`` Struct tagged by its type name. It also reads as a
read-only mapping of the flat event (``event["type"]``, ``event.get("source_agency")``,
``{**event}``) and compares equal to the ``dict`` of the same event, so the code and the
tests written for the mapping form (the fold, replay, the reference) take it unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, TypeAlias

import msgspec

__all__ = ["EventLike", "EventRecord"]


class EventRecord(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """One lifecert event, typed; ``type`` is the class's tag, not a field."""

    @property
    def type_name(self) -> str:
        return str(self.__struct_config__.tag)

    def __getitem__(self, key: str) -> Any:
        if key == "type":
            return self.__struct_config__.tag
        if key in self.__struct_fields__:
            return getattr(self, key)
        raise KeyError(key)

    def get(self, key: str, default: Any = None) -> Any:
        if key == "type":
            return self.__struct_config__.tag
        if key in self.__struct_fields__:
            return getattr(self, key)
        return default

    def keys(self) -> tuple[str, ...]:
        return ("type", *self.__struct_fields__)

    def items(self) -> list[tuple[str, Any]]:
        return [(key, self[key]) for key in self.keys()]

    def values(self) -> list[Any]:
        return [self[key] for key in self.keys()]

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return 1 + len(self.__struct_fields__)

    def __contains__(self, key: object) -> bool:
        return key == "type" or key in self.__struct_fields__

    def __eq__(self, other: object) -> bool:
        if isinstance(other, EventRecord | dict):
            return dict(self.items()) == dict(other.items())
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # equal to a dict, so not hashable

    def to_dict(self) -> dict[str, Any]:
        """The flat ``dict`` of this event (a copy)."""
        return dict(self.items())


Mapping.register(EventRecord)


# What the producers take: a flat mapping or a typed event (registered as a Mapping at run
# time, which type checkers do not see).
EventLike: TypeAlias = Mapping[str, Any] | EventRecord
