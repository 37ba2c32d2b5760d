"""Community office source: one CSV line of the partner's log -> one CertificationRecorded
(channel ASSISTING_AGENCY, form 1)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from connectors.sdk import (
    ConfigError,
    Event,
    PartnerRecord,
    PartnerUnavailable,
    RecordRejected,
    SourceConnector,
)

COLUMNS = ("certification_id", "retiree_id", "performed_at", "recorded_at", "office")


class CommunityOfficeSource(SourceConnector):
    kind = "community-office"
    description = "Community office certification log (CSV, appended) - the guide's example"
    source_agency = "COMMUNITY-OFFICES"

    def _configure(self, settings: dict[str, Any]) -> None:
        self.log_file = Path(self._setting(settings, "log_file", str))
        if not self.log_file.is_absolute():
            raise ConfigError(f"connector {self.name!r}: log_file must be an absolute path, "
                              f"got {str(self.log_file)!r}")

    def _check(self) -> list[str]:
        if not self.log_file.is_file():
            return [f"{self.name}: the office log {self.log_file} is not there; mount the "
                    f"offices' share or fix log_file"]
        return []

    def _poll(self, position: int | None, max_records: int) -> Sequence[PartnerRecord]:
        offset = position or 0
        try:
            with self.log_file.open("rb") as fh:
                fh.seek(offset)
                records: list[PartnerRecord] = []
                while len(records) < max_records:
                    line = fh.readline()
                    if not line.endswith(b"\n"):  # nothing more, or a line still being written
                        break
                    offset += len(line)
                    records.append(PartnerRecord(key=f"{self.log_file.name}@{offset - len(line)}",
                                                 position=offset, raw=line))
                return records
        except FileNotFoundError:
            raise PartnerUnavailable(f"the office log {self.log_file} is not there "
                                     f"(share not mounted?)") from None

    def _lag(self, position: int | None) -> int | None:
        try:
            with self.log_file.open("rb") as fh:
                fh.seek(position or 0)
                return fh.read().count(b"\n")  # complete lines only, as _poll reads them
        except FileNotFoundError:
            raise PartnerUnavailable(f"the office log {self.log_file} is not there "
                                     f"(share not mounted?)") from None

    def _to_events(self, record: PartnerRecord) -> list[Event]:
        try:
            row = next(csv.reader([record.raw.decode("utf-8")]))
        except (UnicodeDecodeError, StopIteration, csv.Error) as exc:
            raise RecordRejected(f"not a CSV line in UTF-8: {exc}") from None
        if len(row) != len(COLUMNS):
            raise RecordRejected(f"{len(row)} columns, expected {len(COLUMNS)}: "
                                 f"{', '.join(COLUMNS)}")
        values = dict(zip(COLUMNS, (v.strip() for v in row), strict=True))
        for column in ("performed_at", "recorded_at"):
            try:
                if datetime.fromisoformat(values[column]).tzinfo is None:
                    raise ValueError("no UTC offset")
            except ValueError as exc:
                raise RecordRejected(f"column {column}: {values[column]!r} is not an ISO 8601 "
                                     f"time with offset ({exc})") from None
        return [{
            "type": "CertificationRecorded",
            "recorded_at": values["recorded_at"],
            "certification_id": values["certification_id"],
            "retiree_id": values["retiree_id"],
            "channel": "ASSISTING_AGENCY",
            "agency_id": values["office"],
            "performed_at": values["performed_at"],
        }]
