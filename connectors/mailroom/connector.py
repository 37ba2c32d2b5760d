"""Source connector for the bureau's mailroom: each line of the mailroom register (appended
by ``lifecert mailroom receive``, format in :mod:`connectors.mailroom.register`) becomes one
CertificationDocumentsReceived. Settings::

    register    required: the register file (absolute path), on the mailroom's share.
                Missing is PartnerUnavailable (share not mounted), retried; create it
                with the first ``lifecert mailroom receive``, or an empty file

Positions are the byte offset after the last complete line, keys ``register@<offset>``,
so a line read again keeps its event id. A line being written (no ``\\n`` yet) is read on a
later poll. A form whose certification has not arrived yet is published all the same: the
fold keeps it until its certification is recorded (docs/rules.md: documents received
before their certification), and the read model lists it among the unmatched forms
(projections/migrations/0007_paper_forms.sql).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from connectors.mailroom.register import RegistrationRefused, parse_line
from connectors.sdk import (
    ConfigError,
    Event,
    PartnerRecord,
    PartnerUnavailable,
    RecordRejected,
    SourceConnector,
)


class MailroomSource(SourceConnector):
    kind = "mailroom"
    description = ("Bureau mailroom: returned paper forms (forms 1-4) registered by staff "
                   "(lifecert mailroom receive; staff may also use the API)")
    source_agency = "FS-SIB-MAILROOM"

    def _configure(self, settings: dict[str, Any]) -> None:
        self.register = Path(self._setting(settings, "register", str))
        if not self.register.is_absolute():
            raise ConfigError(f"connector {self.name!r} ({self.kind}): register must be an "
                              f"absolute path, got {str(self.register)!r}")
        self.idle_interval = self._setting(settings, "scan_interval", float, 1.0)
        if self.idle_interval <= 0:
            raise ConfigError(f"connector {self.name!r} ({self.kind}): scan_interval must be "
                              f"positive")

    def _check(self) -> list[str]:
        if not self.register.is_file():
            return [f"{self.name}: the mailroom register {self.register} is not there; mount "
                    f"the mailroom share or register the first form"]
        return []

    def _poll(self, position: int | None, max_records: int) -> Sequence[PartnerRecord]:
        offset = position or 0
        try:
            with self.register.open("rb") as fh:
                fh.seek(offset)
                records: list[PartnerRecord] = []
                while len(records) < max_records:
                    line = fh.readline()
                    if not line.endswith(b"\n"):
                        break
                    records.append(PartnerRecord(key=f"register@{offset}",
                                                 position=offset + len(line), raw=line))
                    offset += len(line)
                return records
        except FileNotFoundError:
            raise PartnerUnavailable(f"the mailroom register {self.register} is not there "
                                     f"(share not mounted?)") from None
        except OSError as exc:
            raise PartnerUnavailable(f"cannot read {self.register}: {exc.strerror}") from exc

    def _lag(self, position: int | None) -> int | None:
        try:
            with self.register.open("rb") as fh:
                fh.seek(position or 0)
                waiting = 0
                while chunk := fh.read(1 << 20):
                    waiting += chunk.count(b"\n")  # complete lines: a line being written
                return waiting                     # is not a record yet
        except FileNotFoundError:
            raise PartnerUnavailable(f"the mailroom register {self.register} is not there "
                                     f"(share not mounted?)") from None
        except OSError as exc:
            raise PartnerUnavailable(f"cannot read {self.register}: {exc.strerror}") from exc

    def _to_events(self, record: PartnerRecord) -> list[Event]:
        try:
            reg = parse_line(record.raw)
        except RegistrationRefused as exc:
            raise RecordRejected(str(exc)) from None
        return [reg.event()]
