"""Reading a partner record's fields: shared by the connectors' mappings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.sdk.errors import RecordRejected
from lifecert.events import bounds


def coded(record: Mapping[str, Any], name: str, codes: Mapping[str, str],
          listed: str | None = None) -> str:
    """What the code in field ``name`` stands for in ``codes``; refused (RecordRejected,
    naming the field and the codes, ``listed`` or the codes themselves) when the field
    is missing, not a string, or not one of them."""
    value = record.get(name)
    found = codes.get(value) if isinstance(value, str) else None
    if found is None:
        raise RecordRejected(f"field {name} {bounds.show(value)} is not one of "
                             f"{listed if listed is not None else ', '.join(codes)}")
    return found
