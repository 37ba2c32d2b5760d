"""Mutated copies of the guide's example connector (connectors/examples/community_office),
one fault each, that the connector test kit must fail. Test-only: registered as connector
kinds only for the child test sessions of tests/dev/testkit/test_kit_catches_mutants.py
(through a throwaway ``*.dist-info`` on their PYTHONPATH), never in pyproject.toml."""

from __future__ import annotations

from collections.abc import Sequence

from connectors.examples.community_office.connector import CommunityOfficeSource
from connectors.sdk import PartnerRecord, PartnerUnavailable


class OffByOneCheckpoint(CommunityOfficeSource):
    """The guide's off-by-one: the checkpoint is the offset where the last line STARTS, so
    once caught up every poll reads that line again (245 records for 12 lines in 6 s)."""

    kind = "kit-mutant-off-by-one"

    def _poll(self, position: int | None, max_records: int) -> Sequence[PartnerRecord]:
        records = super()._poll(position, max_records)
        return [PartnerRecord(r.key, int(r.key.rsplit("@", 1)[1]), r.raw) for r in records]


class IgnoresMaxRecords(CommunityOfficeSource):
    """Reads every line there is, whatever ``max_records`` says."""

    kind = "kit-mutant-ignores-max-records"

    def _poll(self, position: int | None, max_records: int) -> Sequence[PartnerRecord]:
        return super()._poll(position, 1_000_000)


class DropsBoundaryRecord(CommunityOfficeSource):
    """A full batch reads one line too many to find out that it is full, and drops it."""

    kind = "kit-mutant-drops-boundary-record"

    def _poll(self, position: int | None, max_records: int) -> Sequence[PartnerRecord]:
        records = super()._poll(position, max_records + 1)
        if len(records) <= max_records:
            return records
        kept = list(records[:max_records])
        kept[-1] = PartnerRecord(kept[-1].key, records[-1].position, kept[-1].raw)
        return kept


class ReadsPartialLine(CommunityOfficeSource):
    """Takes the line the office is still writing for a record."""

    kind = "kit-mutant-reads-partial-line"

    def _poll(self, position: int | None, max_records: int) -> Sequence[PartnerRecord]:
        records = list(super()._poll(position, max_records))
        offset = records[-1].position if records else (position or 0)
        if len(records) < max_records:
            with self.log_file.open("rb") as fh:
                fh.seek(offset)
                rest = fh.read()
            if rest:
                records.append(PartnerRecord(f"{self.log_file.name}@{offset}",
                                             offset + len(rest), rest))
        return records


class OutageMidRunIsNoNews(CommunityOfficeSource):
    """A share that disappears once reading has begun is taken for "nothing new"."""

    kind = "kit-mutant-outage-mid-run-is-no-news"

    def _poll(self, position: int | None, max_records: int) -> Sequence[PartnerRecord]:
        try:
            return super()._poll(position, max_records)
        except PartnerUnavailable:
            if position is None:
                raise
            return []

    def _lag(self, position: int | None) -> int | None:
        try:
            return super()._lag(position)
        except PartnerUnavailable:
            return 0


class LagIgnoresPosition(CommunityOfficeSource):
    """Reports every line of the log as waiting: the lag metric never falls."""

    kind = "kit-mutant-lag-ignores-position"

    def _lag(self, position: int | None) -> int | None:
        return super()._lag(None)


class NoLag(CommunityOfficeSource):
    """Never tells its lag (the SDK's default), though the partner could."""

    kind = "kit-mutant-no-lag"

    def _lag(self, position: int | None) -> int | None:
        return None
